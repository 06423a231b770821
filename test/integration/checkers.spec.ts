/**
 * The registry's health checkers against real servers: PostgreSQL on 127.0.0.1:5432 (CI installs
 * it; without it this suite fails, it does not skip), a redis-server and a nats-server started
 * here, HTTP and TCP servers of the test (also standing in for Qdrant and MinIO), a DuckDB file
 * and temporary directories. No Neo4j server is available on this machine: its checker is tested
 * against a port where nothing listens and a server that never answers.
 */
import fs from "fs";
import http from "http";
import net from "net";
import os from "os";
import path from "path";
import { DuckDBInstance } from "@duckdb/node-api";
import { Errors } from "moleculer";
import { CheckResult, CheckTarget, HealthChecker } from "../../services/registry/checkers/base";
import { register, resolve, runCheck } from "../../services/registry/checkers";
import { initialHealth, nextHealth } from "../../services/registry/health";
import { freePort, startNats, startRedis, TestServer } from "../helpers/servers";

const TIMEOUT_MS = 300;
/** What a check may take beyond its timeout: timers, and closing what it opened. */
const SLACK_MS = 250;
const POSTGRES_URL = process.env.TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

function check(
	type: string,
	endpoint: string,
	more: Partial<CheckTarget> = {}
): Promise<CheckResult> {
	return runCheck({ type, endpoint, config: {}, timeoutMs: TIMEOUT_MS, ...more });
}

/** The check's result and how long the caller waited for it. */
async function timed(run: Promise<CheckResult>): Promise<CheckResult & { waitedMs: number }> {
	const started = Date.now();
	const result = await run;
	return { ...result, waitedMs: Date.now() - started };
}

async function listen(server: net.Server): Promise<number> {
	await new Promise<void>(done => server.listen(0, "127.0.0.1", done));
	return (server.address() as net.AddressInfo).port;
}

function close(server: net.Server): Promise<void> {
	return new Promise(done => server.close(() => done()));
}

/** Follows a target's health through the checks, with thresholds of 1: each result decides. */
function tracker(target: () => Promise<CheckResult>) {
	let state = initialHealth();
	return async () => {
		const result = await target();
		state = nextHealth(state, result, Date.now(), {
			healthyThreshold: 1,
			unhealthyThreshold: 1
		}).state;
		return state;
	};
}

describe("the checker index", () => {
	class AlwaysUp extends HealthChecker {
		async check(): Promise<CheckResult> {
			return { ok: true, latencyMs: 0 };
		}
	}

	it("registers and resolves checkers by type, case-insensitively", async () => {
		register("Always_Up", AlwaysUp);
		expect(resolve("always_up")).toBe(AlwaysUp);
		expect(await check("ALWAYS_UP", "anything")).toEqual({ ok: true, latencyMs: 0 });
	});

	it("refuses to resolve an unknown type", () => {
		expect(() => resolve("mongo")).toThrow(Errors.BrokerOptionsError);
		expect(() => resolve("mongo")).toThrow("Invalid health checker type 'mongo'.");
	});

	it("reports an unknown type as a failed check", async () => {
		expect(await check("mongo", "mongodb://db")).toEqual({
			ok: false,
			latencyMs: 0,
			error: "no health checker for type 'mongo'"
		});
	});

	it("masks credentials in errors that quote the endpoint", async () => {
		const result = await check("http", "http://admin:hunter2@bad host/");
		expect(result).toMatchObject({
			ok: false,
			error: expect.stringContaining("invalid endpoint")
		});
		expect(result.error).toContain("admin:***@");
		expect(result.error).not.toContain("hunter2");
	});
});

describe("postgres", () => {
	beforeAll(async () => {
		const reachable = await runCheck({
			type: "postgres",
			endpoint: POSTGRES_URL,
			config: {},
			timeoutMs: 2000
		});
		if (!reachable.ok) {
			throw new Error(
				`These tests need PostgreSQL at ${POSTGRES_URL} (user postgres, trust auth; ` +
					`CI installs it, or set TEST_POSTGRES_URL): ${reachable.error}`
			);
		}
	});

	it("connects and runs SELECT 1", async () => {
		const result = await check("postgres", POSTGRES_URL);
		expect(result).toEqual({ ok: true, latencyMs: expect.any(Number) });
		expect(result.latencyMs).toBeLessThan(TIMEOUT_MS);
	});

	it("takes the user from config when the URL has none", async () => {
		const url = new URL(POSTGRES_URL);
		const config = { username: decodeURIComponent(url.username) || "postgres" };
		url.username = "";
		expect(await check("postgres", url.href, { config })).toMatchObject({ ok: true });
	});

	it("reports a database that does not exist", async () => {
		const url = new URL(POSTGRES_URL);
		url.pathname = "/no_such_db";
		expect(await check("postgres", url.href)).toMatchObject({
			ok: false,
			error: 'database "no_such_db" does not exist'
		});
	});

	it("reports a refused connection, without the password", async () => {
		const port = await freePort();
		const result = await check("postgres", `postgres://app:hunter2@127.0.0.1:${port}/x`);
		expect(result).toMatchObject({
			ok: false,
			error: `connect ECONNREFUSED 127.0.0.1:${port}`
		});
	});
});

describe.each([
	["redis", startRedis],
	["nats", startNats]
])("%s", (type, start) => {
	let server: TestServer;

	beforeAll(async () => {
		server = await start();
	});
	afterAll(() => server.stop());

	it("is healthy while the server runs, unhealthy once it is killed, healthy when back", async () => {
		const observe = tracker(() => check(type, server.url));
		expect(await observe()).toMatchObject({ status: "healthy" });

		await server.stop();
		expect(await observe()).toMatchObject({
			status: "unhealthy",
			error: `connect ECONNREFUSED 127.0.0.1:${server.port}`
		});

		server = await start(server.port);
		const back = await observe();
		expect(back).toMatchObject({ status: "healthy" });
		expect(back.error).toBeUndefined();
	});
});

describe("http and the HTTP-based checkers", () => {
	let server: http.Server;
	let base: string;
	let ready = true;

	beforeAll(async () => {
		server = http.createServer((req, res) => {
			const status: Record<string, number> = {
				"/": 200,
				"/health": 200,
				"/down": 503,
				"/moved": 302,
				"/readyz": ready ? 200 : 503,
				"/minio/health/live": 200,
				"/custom/health": 204,
				"/private": req.headers.authorization === basic("svc", "pw") ? 200 : 401
			};
			res.writeHead(status[req.url ?? ""] ?? 404).end();
		});
		base = `http://127.0.0.1:${await listen(server)}`;
	});
	afterAll(() => close(server));

	const basic = (user: string, password: string) =>
		`Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;

	it("accepts any 2xx or 3xx by default, without following redirects", async () => {
		expect(await check("http", base)).toMatchObject({ ok: true });
		expect(await check("http", base, { path: "/moved" })).toMatchObject({ ok: true });
	});

	it("accepts the expected statuses only", async () => {
		expect(await check("http", base, { path: "/health", expectStatus: 200 })).toMatchObject({
			ok: true
		});
		expect(await check("http", base, { path: "/moved", expectStatus: 200 })).toEqual({
			ok: false,
			latencyMs: expect.any(Number),
			error: "HTTP 302 from /moved (expected 200)"
		});
		expect(
			await check("http", base, { path: "/down", expectStatus: [200, 503] })
		).toMatchObject({ ok: true });
	});

	it("reports a 503", async () => {
		expect(await check("http", `${base}/`, { path: "down" })).toMatchObject({
			ok: false,
			error: "HTTP 503 from /down (expected 2xx or 3xx)"
		});
		expect(await check("http", base, { path: "/down", expectStatus: 200 })).toMatchObject({
			ok: false,
			error: "HTTP 503 from /down (expected 200)"
		});
	});

	it("sends the URL's credentials as basic auth", async () => {
		const withAuth = base.replace("http://", "http://svc:pw@");
		expect(await check("http", withAuth, { path: "/private" })).toMatchObject({ ok: true });
		expect(await check("http", base, { path: "/private" })).toMatchObject({
			ok: false,
			error: "HTTP 401 from /private (expected 2xx or 3xx)"
		});
	});

	it("checks Qdrant's /readyz as vector_db", async () => {
		expect(await check("vector_db", base)).toMatchObject({ ok: true });
		ready = false;
		expect(await check("vector_db", base)).toMatchObject({
			ok: false,
			error: "HTTP 503 from /readyz (expected 2xx)"
		});
		ready = true;
	});

	it("checks MinIO's liveness, or config.healthPath, as object_store", async () => {
		expect(await check("object_store", base)).toMatchObject({ ok: true });
		const config = { healthPath: "/custom/health" };
		expect(await check("object_store", base, { config })).toMatchObject({ ok: true });
		expect(await check("object_store", `${base}/bucket-less`)).toMatchObject({
			ok: false,
			error: "HTTP 404 from /minio/health/live (expected 2xx)"
		});
	});

	it("reports a stopped server as a refused connection", async () => {
		const other = http.createServer((_req, res) => res.end());
		const port = await listen(other);
		expect(await check("http", `http://127.0.0.1:${port}`)).toMatchObject({ ok: true });
		await close(other);
		expect(await check("vector_db", `127.0.0.1:${port}`)).toMatchObject({
			ok: false,
			error: `connect ECONNREFUSED 127.0.0.1:${port}`
		});
	});
});

describe("tcp", () => {
	it("is ok while something listens, refused once it stops", async () => {
		const server = net.createServer(socket => socket.end());
		const port = await listen(server);
		expect(await check("tcp", `tcp://127.0.0.1:${port}`)).toMatchObject({ ok: true });
		expect(await check("tcp", `127.0.0.1:${port}`)).toMatchObject({ ok: true });
		await close(server);
		expect(await check("tcp", `127.0.0.1:${port}`)).toMatchObject({
			ok: false,
			error: `connect ECONNREFUSED 127.0.0.1:${port}`
		});
	});

	it("needs a port", async () => {
		expect(await check("tcp", "tcp://127.0.0.1")).toMatchObject({
			ok: false,
			error: "endpoint 'tcp://127.0.0.1' has no port"
		});
	});
});

describe("neo4j", () => {
	// No Neo4j server is available on this machine, so only failures are tested here.
	it.each(["bolt", "neo4j"])(
		"reports a %s endpoint with nothing listening, without the password",
		async scheme => {
			const port = await freePort();
			const result = await timed(
				check("neo4j", `${scheme}://neo4j:hunter2@127.0.0.1:${port}`)
			);
			expect(result).toMatchObject({
				ok: false,
				error: `connect ECONNREFUSED 127.0.0.1:${port}`
			});
			expect(result.waitedMs).toBeLessThan(TIMEOUT_MS + SLACK_MS);
		}
	);
});

describe("duckdb", () => {
	let dir: string;
	let file: string;

	beforeAll(async () => {
		dir = fs.mkdtempSync(path.join(os.tmpdir(), "isa-duckdb-"));
		file = path.join(dir, "analytics.duckdb");
		const db = await DuckDBInstance.create(file);
		const connection = await db.connect();
		await connection.run("CREATE TABLE runs AS SELECT 42 AS answer");
		connection.closeSync();
		db.closeSync();
	});
	afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

	it("opens the file read-only and runs SELECT 1", async () => {
		expect(await check("duckdb", file)).toMatchObject({ ok: true });
		expect(await check("duckdb", `duckdb://${file}`)).toMatchObject({ ok: true });
	});

	it("reports a missing file, and does not create it", async () => {
		const missing = path.join(dir, "missing.duckdb");
		expect(await check("duckdb", missing)).toMatchObject({
			ok: false,
			error: expect.stringContaining("database does not exist")
		});
		expect(fs.existsSync(missing)).toBe(false);
	});

	it("reports a file that is no DuckDB database", async () => {
		const text = path.join(dir, "notes.txt");
		fs.writeFileSync(text, "not a database\n".repeat(1000));
		expect(await check("duckdb", text)).toMatchObject({ ok: false, error: expect.any(String) });
	});
});

describe("filesystem", () => {
	let dir: string;

	beforeAll(() => {
		dir = fs.mkdtempSync(path.join(os.tmpdir(), "isa-fs-"));
	});
	afterAll(() => {
		fs.chmodSync(dir, 0o700);
		fs.rmSync(dir, { recursive: true, force: true });
	});

	it("is ok for a writable directory with enough free space", async () => {
		expect(await check("filesystem", dir)).toMatchObject({ ok: true });
		const config = { minFreeBytes: "1Ki" };
		expect(await check("filesystem", `file://${dir}`, { config })).toMatchObject({ ok: true });
	});

	it("says which requirement fails", async () => {
		const missing = path.join(dir, "missing");
		expect(await check("filesystem", missing)).toMatchObject({
			ok: false,
			error: `${missing} does not exist`
		});
		const file = path.join(dir, "file");
		fs.writeFileSync(file, "");
		expect(await check("filesystem", file)).toMatchObject({
			ok: false,
			error: `${file} is not a directory`
		});
		const config = { minFreeBytes: "1000000Ti" };
		expect(await check("filesystem", dir, { config })).toMatchObject({
			ok: false,
			error: expect.stringMatching(/^\S+ has \S+ free, less than minFreeBytes 1000000Ti$/)
		});
	});

	// root may write anywhere, so a directory without write permission is only refused to others.
	const asRoot = process.getuid?.() === 0;
	(asRoot ? it.skip : it)("reports a directory it may not write to", async () => {
		const readOnly = path.join(dir, "read-only");
		fs.mkdirSync(readOnly, 0o555);
		expect(await check("filesystem", readOnly)).toMatchObject({
			ok: false,
			error: `${readOnly} is not writable (EACCES)`
		});
	});
});

describe("a server that accepts but never answers", () => {
	let server: net.Server;
	let port: number;
	const sockets = new Set<net.Socket>();

	beforeAll(async () => {
		// Reads everything (so that it sees the client close) and never writes a byte.
		server = net.createServer(socket => {
			sockets.add(socket);
			socket.resume();
			socket.on("close", () => sockets.delete(socket));
		});
		port = await listen(server);
	});
	afterAll(async () => {
		for (const socket of sockets) socket.destroy();
		await close(server);
	});

	it.each([
		["postgres", "postgres://postgres:hunter2@127.0.0.1:PORT/postgres", "connect to"],
		["redis", "redis://127.0.0.1:PORT", "connect to"],
		["nats", "nats://127.0.0.1:PORT", "connect to"],
		["http", "http://127.0.0.1:PORT", "GET /"],
		["vector_db", "http://127.0.0.1:PORT", "GET /readyz"],
		["neo4j", "bolt://127.0.0.1:PORT", "verifyConnectivity on"]
	])("times %s out within the timeout and closes its connection", async (type, url, step) => {
		const result = await timed(check(type, url.replace("PORT", String(port))));
		expect(result).toMatchObject({
			ok: false,
			error: expect.stringContaining(`timed out after ${TIMEOUT_MS} ms (${step}`)
		});
		expect(result.error).not.toContain("hunter2");
		expect(result.latencyMs).toBeGreaterThanOrEqual(TIMEOUT_MS - 1);
		expect(result.waitedMs).toBeLessThan(TIMEOUT_MS + SLACK_MS);
		// The client's close reaches the server a moment later.
		for (let i = 0; i < 50 && sockets.size > 0; i++) await new Promise(r => setTimeout(r, 10));
		expect(sockets.size).toBe(0);
	});
});
