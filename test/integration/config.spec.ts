/**
 * Dynamic config: the config service's actions (versions, compare-and-set, validation, events),
 * the same through the HTTP API, and a service on another OS process that follows keys with
 * ConfigMixin over a real nats-server.
 */
import { spawn, ChildProcess } from "child_process";
import fs from "fs";
import os from "os";
import path from "path";
import { Context, Errors, ServiceBroker } from "moleculer";
import request from "supertest";
import ConfigService, { ConfigChange, ConfigRecord } from "../../services/config.service";
import GatewayService from "../../services/gateway.service";
import { mintToken } from "../../services/gateway/jwt";
import { Principal } from "../../services/shared/principal";
import { ConflictError, InvalidInputError, NotFoundError } from "../../services/shared/errors";
import { EVENTS } from "../../services/shared/events";
import { eventually, ROOT } from "../helpers/cluster";
import { startNats, TestServer } from "../helpers/servers";
import { withSettings } from "../helpers/services";

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
	const { dir, store } = tempStore();
	const broker = new ServiceBroker({ nodeID: "cfg", logger: false });
	broker.createService(withSettings(ConfigService, { store }));
	const heard: ConfigChange[] = [];
	broker.createService({
		name: "listener",
		events: {
			[EVENTS.configChanged](ctx: Context<ConfigChange>) {
				heard.push(ctx.params);
			}
		}
	});
	const ann: Principal = { sub: "ann", tenant: "ops", roles: ["admin"], exp: 0 };

	function call<T = ConfigRecord>(action: string, params: Record<string, unknown>) {
		return broker.call<T, Record<string, unknown>>(`config.${action}`, params, {
			meta: { user: ann }
		});
	}

	beforeAll(() => broker.start());
	afterAll(async () => {
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
	const { dir, store } = tempStore();
	const broker = new ServiceBroker({ nodeID: "api", logger: false });
	broker.createService(withSettings(ConfigService, { store }));
	const gateway = broker.createService(
		withSettings(GatewayService, { port: 0, jwtSecret: SECRET, store })
	);
	const tokens: Record<string, string> = {};

	function api(method: "get" | "put" | "delete", url: string, role = "admin") {
		const agent = request((gateway as any).server);
		return agent[method](url).set("Authorization", `Bearer ${tokens[role]}`);
	}

	beforeAll(async () => {
		await broker.start();
		for (const role of ["admin", "operator", "viewer"] as const)
			tokens[role] = await mintToken({
				secret: SECRET,
				sub: `${role}-user`,
				tenant: "acme",
				roles: [role],
				ttl: 600
			});
	});
	afterAll(async () => {
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
		expect((await api("delete", "/api/v1/config/ui.banner?version=9")).status).toBe(409);
		const del = await api("delete", "/api/v1/config/ui.banner?version=1");
		expect(del.status).toBe(200);
		expect(del.body).toEqual({ key: "ui.banner", version: 2, deleted: true });
		expect((await api("get", "/api/v1/config/ui.banner")).status).toBe(404);
		expect((await api("put", "/api/v1/config/bad%20key").send({ value: 1 })).status).toBe(422);
	});
});

describe("a service on another process follows config keys", () => {
	const { dir, store } = tempStore();
	const namespace = `config-${process.pid}`;
	let nats: TestServer;
	let config: ServiceBroker | null = null;
	let watcher: ChildProcess;
	let output = "";
	const news: Record<string, any>[] = [];

	async function startConfig(nodeID: string): Promise<ServiceBroker> {
		const broker = new ServiceBroker({
			nodeID,
			namespace,
			transporter: nats.url,
			logger: false
		});
		broker.createService(withSettings(ConfigService, { store }));
		await broker.start();
		return broker;
	}

	const set = (key: string, value: unknown) =>
		config!.call<ConfigRecord, Record<string, unknown>>("config.set", { key, value });

	/** The watcher's next news that matches, within `ms`. */
	function heard(match: (n: Record<string, any>) => boolean, ms: number, what: string) {
		return eventually(async () => news.find(match), ms, what);
	}

	beforeAll(async () => {
		nats = await startNats();
		// Set before the watcher runs, then gone: the watcher starts without a config service.
		config = await startConfig("config-1");
		await set("demo.limits", { cpu: 4 });
		await config.stop();
		config = null;

		watcher = spawn(
			process.execPath,
			["-r", "ts-node/register/transpile-only", "test/fixtures/config-watcher.ts"],
			{
				cwd: ROOT,
				env: {
					...process.env,
					TRANSPORTER: nats.url,
					NAMESPACE: namespace,
					NODEID: "watcher",
					LOGLEVEL: "warn",
					CONFIG_WAIT_TIMEOUT: "500"
				},
				stdio: ["ignore", "pipe", "pipe"]
			}
		);
		let partial = "";
		watcher.stdout!.on("data", chunk => {
			output += chunk;
			const lines = (partial + chunk).split("\n");
			partial = lines.pop()!;
			for (const line of lines)
				if (line.startsWith("CONFIG-WATCHER "))
					news.push(JSON.parse(line.slice("CONFIG-WATCHER ".length)));
		});
		watcher.stderr!.on("data", chunk => (output += chunk));
	});

	afterAll(async () => {
		if (watcher.exitCode === null && watcher.signalCode === null) {
			const exited = new Promise(resolve => watcher.once("exit", resolve));
			watcher.kill("SIGTERM");
			await exited;
		}
		await config?.stop();
		await nats?.stop();
		fs.rmSync(dir, { recursive: true, force: true });
	});

	afterEach(() => {
		// On failure, what the watcher printed is the first thing to read.
		const state = expect.getState();
		if (state.assertionCalls > state.numPassingAsserts)
			console.log(`--- watcher\n${output.slice(-3000)}`);
	});

	it("starts with its defaults while no config service runs, and reads the keys when one appears", async () => {
		const ready = await heard(n => "ready" in n, 15_000, "the watcher started");
		expect(ready.ready).toEqual({ greeting: "hello", limits: { cpu: 1 } });
		config = await startConfig("config-2");
		await heard(
			n => n.changed === "limits" && n.value?.cpu === 4,
			5000,
			"limits from the store"
		);
	});

	it("sees a new value within a second, without a restart", async () => {
		const t0 = Date.now();
		await set("demo.greeting", "bonjour");
		await heard(n => n.changed === "greeting" && n.value === "bonjour", 1000, "bonjour");
		expect(Date.now() - t0).toBeLessThan(1000);
	});

	it("goes back to the default within a second when the key is deleted", async () => {
		const t0 = Date.now();
		await config!.call("config.remove", { key: "demo.greeting" });
		await heard(n => n.changed === "greeting" && n.value === "hello", 1000, "hello again");
		expect(Date.now() - t0).toBeLessThan(1000);
	});
});
