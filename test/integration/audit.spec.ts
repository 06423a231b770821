/**
 * The audit log through the gateway, with real stores: one record per mutation and per denial
 * (401, 403, also on the event stream), secrets masked, tenants kept apart in GET /audit with
 * filters, cursors and JSON lines; fail-closed with the store down (a redis-server this suite
 * starts and kills); tamper detection by `npm run audit -- verify` (the built dist/bin/audit.js);
 * a chain kept valid by two writers at once; write-ahead entries completed after a crash.
 */
import { spawn, spawnSync } from "child_process";
import fs from "fs";
import os from "os";
import path from "path";
import Database from "better-sqlite3";
import { ServiceBroker } from "moleculer";
import request from "supertest";
import AuditService from "../../services/audit.service";
import ConfigService from "../../services/config.service";
import GatewayService from "../../services/gateway.service";
import { mintToken } from "../../services/gateway/jwt";
import { AuditLog } from "../../services/audit/log";
import { systemFields, type AuditRecord } from "../../services/audit/record";
import { RedisStore } from "../../services/shared/store/redis";
import { SqliteStore } from "../../services/shared/store/sqlite";
import type { Store } from "../../services/shared/store/store";
import { freePort, waitForPort } from "../helpers/servers";
import { withSettings } from "../helpers/services";

const SECRET = "audit-test-secret";
const AUDIT_KEY = "audit-test-key";
const AUDIT_BIN = path.join(__dirname, "../../dist/bin/audit.js");

type Tokens = Record<string, string>;

async function tokensFor(): Promise<Tokens> {
	const t: Tokens = {};
	const mint = (sub: string, tenant: string, role: "admin" | "operator" | "viewer") =>
		mintToken({ secret: SECRET, sub, tenant, roles: [role], ttl: 600 });
	t.admin = await mint("root", "ops", "admin");
	t.op1 = await mint("alice", "t1", "operator");
	t.viewer1 = await mint("vera", "t1", "viewer");
	t.op2 = await mint("bob", "t2", "operator");
	return t;
}

function startApi(store: string, dataDir: string) {
	const broker = new ServiceBroker({ logger: false });
	broker.createService(withSettings(ConfigService, { store }));
	broker.createService(withSettings(AuditService, { store, auditKey: AUDIT_KEY, dataDir }));
	const gateway = broker.createService(
		withSettings(GatewayService, { port: 0, jwtSecret: SECRET, store, dataDir })
	);
	return { broker, server: () => (gateway as any).server };
}

describe("audit log through the gateway (SQLite)", () => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), "isa-audit-"));
	const store = path.join(dir, "isa.db");
	const { broker, server } = startApi(store, dir);
	let t: Tokens;

	const call = (method: "get" | "put" | "post" | "delete", url: string, token?: string) => {
		const req = request(server())[method](url);
		return token ? req.set("Authorization", `Bearer ${token}`) : req;
	};
	const records = async (query = "", token = t.admin): Promise<AuditRecord[]> => {
		const res = await call("get", `/api/v1/audit?limit=1000${query}`, token);
		expect(res.status).toBe(200);
		return res.body.items;
	};
	const byRequest = async (requestId: string) =>
		(await records()).filter(r => r.requestId === requestId);

	beforeAll(async () => {
		t = await tokensFor();
		await broker.start();
	});
	afterAll(async () => {
		await broker.stop();
		fs.rmSync(dir, { recursive: true, force: true });
	});

	it("records a mutation once, with who, what, target, source, request id and outcome", async () => {
		const res = await call("put", "/api/v1/config/ui.banner", t.admin)
			.set("User-Agent", "audit-test/1")
			.send({ value: "hello" });
		expect(res.status).toBe(200);
		const requestId = res.headers["x-request-id"];
		expect(requestId).toEqual(expect.any(String));
		const mine = await byRequest(requestId);
		expect(mine).toHaveLength(1);
		expect(mine[0]).toMatchObject({
			kind: "request",
			actor: "root",
			tenant: "ops",
			roles: ["admin"],
			action: "config.set",
			method: "PUT",
			route: "/api/v1/config/:key",
			path: "/api/v1/config/ui.banner",
			target: "ui.banner",
			userAgent: "audit-test/1",
			outcome: { status: 200, succeeded: true },
			body: { value: "hello" }
		});
		expect(mine[0].source).toMatch(/127\.0\.0\.1/);
		expect(mine[0].durationMs).toBeGreaterThanOrEqual(0);
		expect(mine[0].hash).toMatch(/^[0-9a-f]{64}$/);
	});

	it("keeps a client's X-Request-Id and records a failed mutation as failed", async () => {
		const res = await call("put", "/api/v1/config/ui.banner", t.admin)
			.set("X-Request-Id", "client-req-1")
			.send({ value: "x", version: 99 });
		expect(res.status).toBe(409);
		expect(res.headers["x-request-id"]).toBe("client-req-1");
		const mine = await byRequest("client-req-1");
		expect(mine).toHaveLength(1);
		expect(mine[0].outcome).toEqual({ status: 409, errorType: "CONFLICT", succeeded: false });
	});

	it("records every denial once: 401 without a token, 403 for a viewer, 401 on the event stream", async () => {
		const noToken = await call("get", "/api/v1/config").set("X-Request-Id", "deny-401");
		expect(noToken.status).toBe(401);
		const viewer = await call("put", "/api/v1/config/ui.x", t.viewer1)
			.set("X-Request-Id", "deny-403")
			.send({ value: 1 });
		expect(viewer.status).toBe(403);
		expect(viewer.body.type).toBe("FORBIDDEN");
		const events = await call("get", "/api/v1/events").set("X-Request-Id", "deny-events");
		expect(events.status).toBe(401);
		const [r401] = await byRequest("deny-401");
		expect(r401).toMatchObject({
			actor: null,
			method: "GET",
			action: "config.list",
			outcome: { status: 401, succeeded: false }
		});
		expect(await byRequest("deny-401")).toHaveLength(1);
		expect(await byRequest("deny-403")).toEqual([
			expect.objectContaining({
				actor: "vera",
				tenant: "t1",
				action: "config.set",
				target: "ui.x",
				outcome: { status: 403, errorType: "FORBIDDEN", succeeded: false }
			})
		]);
		expect(await byRequest("deny-events")).toEqual([
			expect.objectContaining({
				route: "/api/v1/events",
				outcome: expect.objectContaining({ status: 401 })
			})
		]);
		// A GET that succeeds is no mutation and no denial: not recorded.
		const read = await call("get", "/api/v1/config", t.viewer1).set("X-Request-Id", "read-ok");
		expect(read.status).toBe(200);
		expect(await byRequest("read-ok")).toEqual([]);
	});

	it("records an event-stream ticket only when it is denied: issuing one changes nothing", async () => {
		const issued = await call("post", "/api/v1/events/ticket", t.viewer1).set(
			"X-Request-Id",
			"ticket-ok"
		);
		expect(issued.status).toBe(200);
		expect(issued.body).toEqual({ ticket: expect.any(String), expiresIn: 30 });
		const denied = await call("post", "/api/v1/events/ticket").set(
			"X-Request-Id",
			"ticket-401"
		);
		expect(denied.status).toBe(401);
		expect(await byRequest("ticket-ok")).toEqual([]);
		expect(await byRequest("ticket-401")).toEqual([
			expect.objectContaining({
				action: "gateway.eventTicket",
				outcome: expect.objectContaining({ status: 401 })
			})
		]);
	});

	it("masks secrets of the body with the registry's rules", async () => {
		const res = await call("put", "/api/v1/config/db.main", t.admin)
			.set("X-Request-Id", "secret-body")
			.send({
				value: {
					url: "postgres://app:s3cr3t@db:5432/x?sslpassword=p4ss",
					password: "hunter2"
				}
			});
		expect(res.status).toBe(200);
		const [rec] = await byRequest("secret-body");
		expect(rec.body).toEqual({
			value: { url: "postgres://app:***@db:5432/x?sslpassword=***", password: "***" }
		});
		const raw = new Database(store, { readonly: true })
			.prepare("SELECT group_concat(entry) AS all_entries FROM logs WHERE log = 'audit'")
			.get() as { all_entries: string };
		expect(raw.all_entries).not.toMatch(/s3cr3t|hunter2|p4ss/);
	});

	it("shows admins everything and others only their tenant, with filters, cursors and JSON lines", async () => {
		for (const [token, key] of [
			[t.op1, "t1.a"],
			[t.op1, "t1.b"],
			[t.op2, "t2.a"]
		])
			expect(
				(await call("put", `/api/v1/config/${key}`, token).send({ value: 1 })).status
			).toBe(403);
		const t1 = await records("", t.viewer1);
		expect(t1.length).toBeGreaterThanOrEqual(3);
		expect(t1.every(r => r.tenant === "t1")).toBe(true);
		const t2 = await records("", t.op2);
		expect(t2.map(r => r.target)).toEqual(["t2.a"]);
		// A non-admin's ?tenant= is ignored: still their own.
		expect((await records("&tenant=t1", t.op2)).map(r => r.target)).toEqual(["t2.a"]);
		expect((await records("&tenant=t2")).map(r => r.target)).toEqual(["t2.a"]);
		const all = await records();
		expect(new Set(all.map(r => r.tenant))).toEqual(new Set([null, "ops", "t1", "t2"]));

		expect((await records("&actor=alice")).map(r => r.target)).toEqual(["t1.b", "t1.a"]);
		expect(
			(await records("&outcome=denied")).every(r => [401, 403].includes(r.outcome.status!))
		).toBe(true);
		expect((await records("&outcome=succeeded")).every(r => r.outcome.succeeded)).toBe(true);
		expect((await records("&target=db.main")).map(r => r.requestId)).toEqual(["secret-body"]);
		expect((await records("&action=config.")).length).toBe(
			all.filter(r => r.action?.startsWith("config.")).length
		);
		const future = new Date(Date.now() + 3_600_000).toISOString();
		expect(await records(`&since=${encodeURIComponent(future)}`)).toEqual([]);
		expect((await records(`&until=${Date.now() + 1000}`)).length).toBe(all.length);

		// Cursor pages, newest first, then oldest first: the same records, each once.
		const seen: number[] = [];
		let cursor: string | null = "";
		while (cursor !== null) {
			const res = await call("get", `/api/v1/audit?limit=2&cursor=${cursor}`, t.admin);
			expect(res.status).toBe(200);
			expect(res.body.items.length).toBeLessThanOrEqual(2);
			seen.push(...res.body.items.map((r: AuditRecord) => r.seq));
			cursor = res.body.nextCursor;
		}
		expect(seen).toEqual(all.map(r => r.seq));
		const asc = await call("get", "/api/v1/audit?order=asc&limit=3", t.admin);
		expect(asc.body.items.map((r: AuditRecord) => r.seq)).toEqual([1, 2, 3]);
		const next = await call(
			"get",
			`/api/v1/audit?order=asc&limit=3&cursor=${asc.body.nextCursor}`,
			t.admin
		);
		expect(next.body.items[0].seq).toBe(4);

		const jsonl = await call("get", "/api/v1/audit?format=jsonl&limit=3", t.admin);
		expect(jsonl.status).toBe(200);
		expect(jsonl.headers["content-type"]).toMatch(/application\/x-ndjson/);
		const lines = jsonl.text
			.trim()
			.split("\n")
			.map(line => JSON.parse(line));
		expect(lines.map(r => r.seq)).toEqual(all.slice(0, 3).map(r => r.seq));

		for (const bad of ["since=yesterday", "outcome=maybe", "cursor=abc", "limit=0"]) {
			const res = await call("get", `/api/v1/audit?${bad}`, t.admin);
			expect(res.status).toBeGreaterThanOrEqual(400);
			expect(res.status).toBeLessThan(500);
		}
	});

	it("verify says OK, and names the record edited directly in the store", () => {
		const env = { ...process.env, STORE: store, ISA_AUDIT_KEY: AUDIT_KEY, ISA_DATA_DIR: dir };
		const ok = spawnSync(process.execPath, [AUDIT_BIN, "verify"], { env, encoding: "utf8" });
		expect(ok.stdout).toMatch(/^OK: \d+ audit records, seq 1\.\.\d+/);
		expect(ok.status).toBe(0);
		const db = new Database(store);
		const row = db.prepare("SELECT entry FROM logs WHERE log = 'audit' AND seq = 3").get() as {
			entry: string;
		};
		const edited = { ...JSON.parse(row.entry), actor: "someone-else" };
		db.prepare("UPDATE logs SET entry = ? WHERE log = 'audit' AND seq = 3").run(
			JSON.stringify(edited)
		);
		db.close();
		const bad = spawnSync(process.execPath, [AUDIT_BIN, "verify"], { env, encoding: "utf8" });
		expect(bad.status).toBe(1);
		expect(bad.stdout).toContain(`BROKEN at seq 3 (record ${edited.id}): hash does not match`);
		const wrongKey = spawnSync(process.execPath, [AUDIT_BIN, "verify"], {
			env: { ...env, ISA_AUDIT_KEY: "not-the-key" },
			encoding: "utf8"
		});
		expect(wrongKey.status).toBe(1);
		expect(wrongKey.stdout).toContain("BROKEN at seq 1");
	});
});

/** A redis-server that keeps its data (AOF, fsync always), so a kill and restart loses nothing. */
async function durableRedis(dir: string, port: number) {
	const proc = spawn(
		"redis-server",
		[
			"--bind",
			"127.0.0.1",
			"--port",
			String(port),
			"--dir",
			dir,
			"--save",
			"",
			"--appendonly",
			"yes",
			"--appendfsync",
			"always"
		],
		{ stdio: "ignore" }
	);
	await waitForPort(port);
	return {
		url: `redis://127.0.0.1:${port}`,
		stop: () =>
			new Promise<void>(resolve => {
				if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
				proc.once("exit", () => resolve());
				proc.kill("SIGKILL");
			})
	};
}

describe("audit fails closed (Redis)", () => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), "isa-audit-redis-"));
	let redis: Awaited<ReturnType<typeof durableRedis>>;
	let port: number;
	let api: ReturnType<typeof startApi>;
	let t: Tokens;

	beforeAll(async () => {
		t = await tokensFor();
		port = await freePort();
		redis = await durableRedis(dir, port);
		api = startApi(redis.url, dir);
		await api.broker.start();
	});
	afterAll(async () => {
		await api.broker.stop();
		await redis.stop();
		fs.rmSync(dir, { recursive: true, force: true });
	});

	const put = (value: unknown, requestId: string) =>
		request(api.server())
			.put("/api/v1/config/flag")
			.set("Authorization", `Bearer ${t.admin}`)
			.set("X-Request-Id", requestId)
			.send({ value });

	it("refuses a mutation with 503 while the store is down, changes nothing, and works again after", async () => {
		expect((await put("before", "fc-1")).status).toBe(200);
		await redis.stop();
		const refused = await put("during", "fc-2");
		expect(refused.status).toBe(503);
		expect(refused.body).toMatchObject({ type: "AUDIT_UNAVAILABLE", code: 503 });
		redis = await durableRedis(dir, port);
		let after = await put("after", "fc-3");
		for (let i = 0; i < 50 && after.status !== 200; i++) {
			await new Promise(r => setTimeout(r, 100));
			after = await put("after", `fc-3-${i}`);
		}
		expect(after.status).toBe(200);
		// The refused value never took effect: "before" at version 1, then "after" at 2.
		const flag = await request(api.server())
			.get("/api/v1/config/flag")
			.set("Authorization", `Bearer ${t.admin}`);
		expect(flag.body).toMatchObject({ value: "after", version: 2 });
		const store = new RedisStore(redis.url, { prefix: "isa" });
		try {
			const log = await store.readLog<AuditRecord>("audit", { limit: 1000 });
			const count = (id: string) => log.filter(e => e.entry.requestId === id).length;
			expect(count("fc-1")).toBe(1);
			expect(count("fc-2")).toBe(0);
			expect(count(after.headers["x-request-id"])).toBe(1);
			const history = log.filter(e => e.entry.action === "config.set").map(e => e.entry.body);
			expect(history).not.toContainEqual({ value: "during" });
			expect(await new AuditLog(store, AUDIT_KEY).verify()).toMatchObject({ ok: true });
		} finally {
			await store.close();
		}
	});
});

describe("audit chain with two writers and after a crash", () => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), "isa-audit-chain-"));
	afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

	it("stays valid when two audit instances (two SQLite handles on one file) append at once", async () => {
		const file = path.join(dir, "two.db");
		const stores: Store[] = [new SqliteStore(file), new SqliteStore(file)];
		const logs = stores.map(s => new AuditLog(s, AUDIT_KEY));
		await Promise.all(
			Array.from({ length: 200 }, (_, i) =>
				logs[i % 2].append(
					systemFields({ actor: `w${i % 2}`, action: "test.append", target: String(i) })
				)
			)
		);
		const result = await logs[0].verify();
		expect(result).toMatchObject({ ok: true, count: 200, first: 1, last: 200 });
		await Promise.all(stores.map(s => s.close()));
	});

	it("stays valid with two brokers' audit services sharing one Redis", async () => {
		const port = await freePort();
		const redis = await durableRedis(dir, port);
		const brokers = [1, 2].map(n => new ServiceBroker({ nodeID: `audit-${n}`, logger: false }));
		for (const b of brokers)
			b.createService(
				withSettings(AuditService, { store: redis.url, auditKey: AUDIT_KEY, dataDir: dir })
			);
		await Promise.all(brokers.map(b => b.start()));
		try {
			await Promise.all(
				Array.from({ length: 200 }, (_, i) =>
					brokers[i % 2].call("audit.record", {
						actor: "system:test",
						action: "test.append",
						target: String(i)
					})
				)
			);
			expect(await brokers[0].call("audit.verify")).toMatchObject({ ok: true, count: 200 });
		} finally {
			await Promise.all(brokers.map(b => b.stop()));
			await redis.stop();
		}
	});

	it("completes a write-ahead entry whose request never ended, exactly once", async () => {
		const store = new SqliteStore(path.join(dir, "crash.db"));
		const log = new AuditLog(store, AUDIT_KEY);
		const fields = systemFields({ actor: "alice", action: "scheduler.create" });
		await log.begin(fields);
		const ended = systemFields({ actor: "alice", action: "config.set" });
		await log.begin(ended);
		// This one's final record was written, but its entry was not removed (a crash in between).
		await log.append({ ...ended, outcome: { status: 200, succeeded: true } });
		expect(await log.recover(60_000)).toBe(0);
		expect(await log.recover(0)).toBe(1);
		expect(await log.recover(0)).toBe(0);
		const page = await log.page({}, { limit: 10, order: "asc" });
		expect(page.items.map(r => [r.id, r.outcome.succeeded])).toEqual([
			[ended.id, true],
			[fields.id, null]
		]);
		expect(page.items[1].outcome).toEqual({
			status: null,
			errorType: "UNKNOWN",
			succeeded: null
		});
		expect(await store.list("audit-pending")).toEqual([]);
		expect((await log.verify()).ok).toBe(true);
		await store.close();
	});

	it("verifies from the anchor after retention trims the oldest records", async () => {
		const store = new SqliteStore(path.join(dir, "trim.db"));
		const log = new AuditLog(store, AUDIT_KEY);
		for (let i = 0; i < 10; i++) await log.append(systemFields({ actor: "a", action: "x" }));
		expect(await log.trim({ maxRecords: 4, maxAgeMs: null })).toBe(6);
		expect(await log.verify()).toMatchObject({
			ok: true,
			count: 4,
			first: 7,
			anchor: { seq: 7 }
		});
		// Dropping a kept record at the start is found: the chain no longer starts at the anchor.
		await store.trimLog("audit", 8);
		expect((await log.verify()).broken).toMatchObject({
			seq: 8,
			reason: expect.stringMatching(/start at seq 7/)
		});
		await store.close();
	});
});
