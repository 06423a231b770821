/**
 * Dynamic config: the config service's actions (versions, compare-and-set, validation, events),
 * the same through the HTTP API, and a service on another OS process that follows keys with
 * ConfigMixin over a real nats-server.
 */
import { spawn, ChildProcess } from "child_process";
import fs from "fs";
import os from "os";
import path from "path";
import { Context, Errors, Service, ServiceBroker } from "moleculer";
import request from "supertest";
import ConfigService, { ConfigChange, ConfigRecord } from "../../services/config.service";
import GatewayService from "../../services/gateway.service";
import { mintToken } from "../../services/gateway/jwt";
import { Principal } from "../../services/shared/principal";
import { ConflictError, InvalidInputError, NotFoundError } from "../../services/shared/errors";
import { EVENTS } from "../../services/shared/events";
import { eventually, ROOT } from "../helpers/cluster";
import { startNats, TestServer } from "../helpers/servers";
import { auditService, withSettings } from "../helpers/services";

const SECRET = "config-test-secret";

function tempStore(): { dir: string; store: string } {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), "isa-config-"));
	return { dir, store: path.join(dir, "isa.db") };
}

/** What a call rejects with, to assert its class, code, type and data. */
async function failure(promise: Promise<unknown>): Promise<Errors.MoleculerError> {
	try {
		await promise;
	} catch (err) {
		return err as Errors.MoleculerError;
	}
	throw new Error("The call did not fail.");
}

describe("config service", () => {
	const ann: Principal = { sub: "ann", tenant: "ops", roles: ["admin"], exp: 0 };
	/** Each test gets its own store and broker, so it starts with no keys and no events heard. */
	let dir: string;
	let broker: ServiceBroker;
	let heard: ConfigChange[];

	function call<T = ConfigRecord>(action: string, params: Record<string, unknown>) {
		return broker.call<T, Record<string, unknown>>(`config.${action}`, params, {
			meta: { user: ann }
		});
	}

	/** Sets `key` to each value in turn: the key ends at version `values.length`. */
	async function setEach(key: string, values: unknown[]) {
		for (const value of values) await call("set", { key, value });
	}

	/** sched.policy at version 3, its history as the first tests below write it. */
	const setPolicyToVersion3 = () =>
		setEach("sched.policy", [{ mode: "binpack" }, { mode: "spread" }, "any"]);

	beforeEach(async () => {
		let store: string;
		({ dir, store } = tempStore());
		broker = new ServiceBroker({ nodeID: "cfg", logger: false });
		broker.createService(withSettings(ConfigService, { store }));
		heard = [];
		broker.createService({
			name: "listener",
			events: {
				[EVENTS.configChanged](ctx: Context<ConfigChange>) {
					heard.push(ctx.params);
				}
			}
		});
		await broker.start();
	});
	afterEach(async () => {
		await broker.stop();
		fs.rmSync(dir, { recursive: true, force: true });
	});

	it("sets a key at version 1 with who and when, and broadcasts the change", async () => {
		const before = Date.now();
		const rec = await call("set", { key: "sched.policy", value: { mode: "binpack" } });
		expect(rec).toEqual({
			key: "sched.policy",
			value: { mode: "binpack" },
			version: 1,
			updatedAt: expect.any(Number),
			updatedBy: "ann"
		});
		expect(rec.updatedAt).toBeGreaterThanOrEqual(before);
		expect(await call("get", { key: "sched.policy" })).toEqual(rec);
		expect(heard).toEqual([
			{ key: "sched.policy", value: { mode: "binpack" }, version: 1, deleted: false }
		]);
	});

	it("counts versions up; with a version it is a compare-and-set, 409 naming the current one", async () => {
		await call("set", { key: "sched.policy", value: { mode: "binpack" } });
		expect(
			(await call("set", { key: "sched.policy", value: { mode: "spread" }, version: 1 }))
				.version
		).toBe(2);
		const err = await failure(
			call("set", { key: "sched.policy", value: { mode: "x" }, version: 1 })
		);
		expect(err).toBeInstanceOf(ConflictError);
		expect(err).toMatchObject({
			code: 409,
			type: "CONFLICT",
			data: { key: "sched.policy", expected: 1, version: 2 }
		});
		expect(err.message).toMatch(/at version 2, not 1/);
		expect((await call("get", { key: "sched.policy" })).value).toEqual({ mode: "spread" });
		// Without a version, the last writer wins.
		expect((await call("set", { key: "sched.policy", value: "any" })).version).toBe(3);
	});

	it("creates only when absent with version 0", async () => {
		expect((await call("set", { key: "a.new", value: 1, version: 0 })).version).toBe(1);
		expect(await failure(call("set", { key: "a.new", value: 2, version: 0 }))).toMatchObject({
			code: 409,
			data: { expected: 0, version: 1 }
		});
	});

	it("takes any JSON value, null included", async () => {
		for (const value of [null, false, 0, "", [1, "two"], { deep: { list: [] } }])
			expect((await call("set", { key: "any.value", value })).value).toEqual(value);
	});

	it("answers 404 for a key that does not exist", async () => {
		const err = await failure(call("get", { key: "no.such" }));
		expect(err).toBeInstanceOf(NotFoundError);
		expect(err).toMatchObject({
			code: 404,
			type: "NOT_FOUND",
			data: { kind: "Config key", id: "no.such" }
		});
	});

	it("refuses bad keys, a missing value and unknown fields with 422", async () => {
		for (const key of ["", "-lead", ".lead", "a/b", "with space", "k".repeat(201)]) {
			const err = await failure(call("set", { key, value: 1 }));
			expect(err).toBeInstanceOf(Errors.ValidationError);
			expect(err).toMatchObject({ code: 422, type: "VALIDATION_ERROR" });
		}
		expect(await failure(call("set", { key: "ok.key" }))).toMatchObject({ code: 422 });
		const extra = await failure(call("set", { key: "ok.key", value: 1, ttl: 5 }));
		expect(extra).toMatchObject({ code: 422, type: "VALIDATION_ERROR" });
		expect(await failure(call("get", { key: "ok.key", x: 1 }))).toMatchObject({ code: 422 });
		expect(await failure(call("list", { sort: "key" }))).toMatchObject({ code: 422 });
	});

	it("refuses a value over 64 KiB of JSON with 422 and keeps the old one", async () => {
		await setPolicyToVersion3();
		const err = await failure(call("set", { key: "sched.policy", value: "x".repeat(65536) }));
		expect(err).toBeInstanceOf(InvalidInputError);
		expect(err).toMatchObject({
			code: 422,
			type: "INVALID_INPUT",
			data: { key: "sched.policy", size: 65538, limit: 65536 }
		});
		expect((await call("get", { key: "sched.policy" })).version).toBe(3);
	});

	it("lists live keys in key order, by prefix, with limit and offset", async () => {
		await call("set", { key: "a.new", value: 1 });
		await call("set", { key: "any.value", value: { deep: { list: [] } } });
		await setPolicyToVersion3();
		await call("set", { key: "sched.weight", value: 2 });
		const all = await call<{ items: ConfigRecord[]; total: number }>("list", {});
		expect(all.items.map(r => r.key)).toEqual([
			"a.new",
			"any.value",
			"sched.policy",
			"sched.weight"
		]);
		expect(all.items[2]).toMatchObject({ value: "any", version: 3, updatedBy: "ann" });
		const sched = await call<{ items: ConfigRecord[]; total: number }>("list", {
			prefix: "sched.",
			limit: 1,
			offset: 1
		});
		expect(sched).toEqual({
			items: [expect.objectContaining({ key: "sched.weight" })],
			total: 2
		});
	});

	it("deletes (with a version, only at that one), then 404, and a new write continues the versions", async () => {
		await setPolicyToVersion3();
		await call("set", { key: "sched.weight", value: 2 });
		expect(await failure(call("remove", { key: "sched.weight", version: 7 }))).toMatchObject({
			code: 409,
			data: { expected: 7, version: 1 }
		});
		heard.length = 0;
		expect(await call("remove", { key: "sched.weight", version: 1 })).toEqual({
			key: "sched.weight",
			version: 2,
			deleted: true
		});
		expect(heard).toEqual([{ key: "sched.weight", version: 2, deleted: true }]);
		expect(await failure(call("get", { key: "sched.weight" }))).toMatchObject({ code: 404 });
		expect(await failure(call("remove", { key: "sched.weight" }))).toMatchObject({
			code: 404
		});
		expect((await call<{ total: number }>("list", { prefix: "sched." })).total).toBe(1);
		// A client holding version 1 from before the delete cannot overwrite the new key.
		expect(
			await failure(call("set", { key: "sched.weight", value: 5, version: 1 }))
		).toMatchObject({ code: 409, data: { expected: 1, version: 0 } });
		expect((await call("set", { key: "sched.weight", value: 5, version: 0 })).version).toBe(3);
	});

	it("records a call from inside the cluster as its node", async () => {
		const rec = await broker.call<ConfigRecord, Record<string, unknown>>("config.set", {
			key: "internal.key",
			value: true
		});
		expect(rec.updatedBy).toBe("node:cfg");
	});
});

describe("config over the HTTP API", () => {
	const tokens: Record<string, string> = {};
	/** Each test gets its own store, broker and gateway. */
	let dir: string;
	let broker: ServiceBroker;
	let gateway: Service;

	function api(method: "get" | "put" | "delete", url: string, role = "admin") {
		const agent = request((gateway as any).server);
		return agent[method](url).set("Authorization", `Bearer ${tokens[role]}`);
	}

	beforeAll(async () => {
		for (const role of ["admin", "operator", "viewer"] as const)
			tokens[role] = await mintToken({
				secret: SECRET,
				sub: `${role}-user`,
				tenant: "acme",
				roles: [role],
				ttl: 600
			});
	});
	beforeEach(async () => {
		let store: string;
		({ dir, store } = tempStore());
		broker = new ServiceBroker({ nodeID: "api", logger: false });
		broker.createService(withSettings(ConfigService, { store }));
		broker.createService(auditService(store));
		gateway = broker.createService(
			withSettings(GatewayService, { port: 0, jwtSecret: SECRET, store })
		);
		await broker.start();
	});
	afterEach(async () => {
		await broker.stop();
		fs.rmSync(dir, { recursive: true, force: true });
	});

	it("PUT sets (admins only), GET reads (any role), a stale version gets 409 with the current one", async () => {
		expect(
			(await api("put", "/api/v1/config/ui.banner", "operator").send({ value: 1 })).status
		).toBe(403);
		const put = await api("put", "/api/v1/config/ui.banner").send({ value: "hi" });
		expect(put.status).toBe(200);
		expect(put.body).toMatchObject({
			key: "ui.banner",
			value: "hi",
			version: 1,
			updatedBy: "admin-user"
		});
		const stale = await api("put", "/api/v1/config/ui.banner").send({ value: "x", version: 0 });
		expect(stale.status).toBe(409);
		expect(stale.body).toMatchObject({ type: "CONFLICT", data: { version: 1 } });
		const list = await api("get", "/api/v1/config?prefix=ui.", "viewer");
		expect(list.status).toBe(200);
		expect(list.body).toEqual({ items: [put.body], total: 1 });
		expect((await api("get", "/api/v1/config/ui.banner", "viewer")).body.value).toBe("hi");
	});

	it("DELETE with ?version= is a compare-and-set; then 404", async () => {
		expect((await api("put", "/api/v1/config/ui.banner").send({ value: "hi" })).status).toBe(
			200
		);
		expect((await api("delete", "/api/v1/config/ui.banner?version=9")).status).toBe(409);
		const del = await api("delete", "/api/v1/config/ui.banner?version=1");
		expect(del.status).toBe(200);
		expect(del.body).toEqual({ key: "ui.banner", version: 2, deleted: true });
		expect((await api("get", "/api/v1/config/ui.banner")).status).toBe(404);
		expect((await api("put", "/api/v1/config/bad%20key").send({ value: 1 })).status).toBe(422);
	});
});

/** A watcher process (test/fixtures/config-watcher.ts) in a namespace and store of its own. */
interface WatcherFixture {
	namespace: string;
	dir: string;
	store: string;
	proc: ChildProcess;
	/** Everything the process printed. */
	output: string;
	/** Its news lines, parsed, in the order printed. */
	news: Record<string, any>[];
	/** The config node running in its namespace, if any. */
	config: ServiceBroker | null;
}

describe("a service on another process follows config keys", () => {
	let nats: TestServer;
	/**
	 * One watcher per test, so that no test sees the keys or the news of another. Starting a
	 * watcher process takes seconds, so beforeAll starts them all at once; each test then uses
	 * only its own.
	 */
	const TESTS = ["start", "change", "delete"] as const;
	const fixtures = {} as Record<(typeof TESTS)[number], WatcherFixture>;
	let current: WatcherFixture | null = null;

	async function startConfig(f: WatcherFixture, nodeID: string): Promise<ServiceBroker> {
		const broker = new ServiceBroker({
			nodeID,
			namespace: f.namespace,
			transporter: nats.url,
			logger: false
		});
		broker.createService(withSettings(ConfigService, { store: f.store }));
		await broker.start();
		f.config = broker;
		return broker;
	}

	const set = (f: WatcherFixture, key: string, value: unknown) =>
		f.config!.call<ConfigRecord, Record<string, unknown>>("config.set", { key, value });

	/** The first of the watcher's news that matches, waiting up to `ms` for it. */
	function heard(
		f: WatcherFixture,
		match: (n: Record<string, any>) => boolean,
		ms: number,
		what: string
	) {
		return eventually(async () => f.news.find(match), ms, what);
	}

	/**
	 * Writes demo.limits = { cpu: 4 } through a config service and stops that service, then
	 * starts the watcher process: the watcher starts while no config service runs.
	 */
	async function startWatcherWithoutConfig(name: string): Promise<WatcherFixture> {
		const { dir, store } = tempStore();
		const f = {
			namespace: `config-${process.pid}-${name}`,
			dir,
			store,
			output: "",
			news: [],
			config: null
		} as unknown as WatcherFixture;
		const config = await startConfig(f, "config-1");
		await set(f, "demo.limits", { cpu: 4 });
		await config.stop();
		f.config = null;

		f.proc = spawn(
			process.execPath,
			["-r", "ts-node/register/transpile-only", "test/fixtures/config-watcher.ts"],
			{
				cwd: ROOT,
				env: {
					...process.env,
					TRANSPORTER: nats.url,
					NAMESPACE: f.namespace,
					NODEID: "watcher",
					LOGLEVEL: "warn",
					CONFIG_WAIT_TIMEOUT: "500"
				},
				stdio: ["ignore", "pipe", "pipe"]
			}
		);
		let partial = "";
		f.proc.stdout!.on("data", chunk => {
			f.output += chunk;
			const lines = (partial + chunk).split("\n");
			partial = lines.pop()!;
			for (const line of lines)
				if (line.startsWith("CONFIG-WATCHER "))
					f.news.push(JSON.parse(line.slice("CONFIG-WATCHER ".length)));
		});
		f.proc.stderr!.on("data", chunk => (f.output += chunk));
		return f;
	}

	/**
	 * Starts a config service for a watcher that started without one, and waits until the
	 * watcher has read demo.limits from it. From then on the config node knows the watcher's
	 * event listener, so every change it broadcasts reaches the watcher.
	 */
	async function followConfig(f: WatcherFixture) {
		await heard(f, n => "ready" in n, 15_000, "the watcher started");
		await startConfig(f, "config-2");
		await heard(
			f,
			n => n.changed === "limits" && n.value?.cpu === 4,
			5000,
			"limits from the store"
		);
	}

	beforeAll(async () => {
		nats = await startNats();
		const started = await Promise.all(TESTS.map(name => startWatcherWithoutConfig(name)));
		TESTS.forEach((name, i) => (fixtures[name] = started[i]));
		// Three processes starting at once on a busy machine take longer than one: 15 s each,
		// the time the tests allow one watcher to start.
		await eventually(
			async () => started.every(f => f.news.some(n => "ready" in n)),
			TESTS.length * 15_000,
			"every watcher started"
		);
	}, 75_000);

	afterAll(async () => {
		for (const f of Object.values(fixtures)) {
			if (f.proc.exitCode === null && f.proc.signalCode === null) {
				const exited = new Promise(resolve => f.proc.once("exit", resolve));
				f.proc.kill("SIGTERM");
				await exited;
			}
			await f.config?.stop();
			fs.rmSync(f.dir, { recursive: true, force: true });
		}
		await nats?.stop();
	});

	afterEach(() => {
		// On failure, what the test's watcher printed is the first thing to read.
		const state = expect.getState();
		if (current && state.assertionCalls > state.numPassingAsserts)
			console.log(`--- watcher\n${current.output.slice(-3000)}`);
		current = null;
	});

	it("starts with its defaults while no config service runs, and reads the keys when one appears", async () => {
		const f = (current = fixtures.start);
		const ready = await heard(f, n => "ready" in n, 15_000, "the watcher started");
		expect(ready.ready).toEqual({ greeting: "hello", limits: { cpu: 1 } });
		await startConfig(f, "config-2");
		await heard(
			f,
			n => n.changed === "limits" && n.value?.cpu === 4,
			5000,
			"limits from the store"
		);
	});

	it("sees a new value within a second, without a restart", async () => {
		const f = (current = fixtures.change);
		await followConfig(f);

		const t0 = Date.now();
		await set(f, "demo.greeting", "bonjour");
		await heard(f, n => n.changed === "greeting" && n.value === "bonjour", 1000, "bonjour");
		expect(Date.now() - t0).toBeLessThan(1000);
	});

	it("goes back to the default within a second when the key is deleted", async () => {
		const f = (current = fixtures.delete);
		await followConfig(f);
		await set(f, "demo.greeting", "bonjour");
		await heard(f, n => n.changed === "greeting" && n.value === "bonjour", 5000, "bonjour");

		const t0 = Date.now();
		await f.config!.call("config.remove", { key: "demo.greeting" });
		await heard(f, n => n.changed === "greeting" && n.value === "hello", 1000, "hello again");
		expect(Date.now() - t0).toBeLessThan(1000);
	});
});
