/**
 * Errors keep their meaning from the callee to the client, and only safe calls are retried: a
 * gateway, the registry, the scheduler and the audit service on the broker settings every node
 * runs (moleculer.config.ts: SafeRetry, the retry policy, the circuit breaker), on the embedded
 * store and on a real redis-server, which the last test kills. A middleware counts how often each
 * action's handler runs, so that a retry shows.
 */
import fs from "fs";
import os from "os";
import path from "path";
import {
	Errors,
	ServiceBroker,
	type ActionHandler,
	type ActionSchema,
	type Context,
	type Middleware
} from "moleculer";
import request from "supertest";
import { createBrokerConfig } from "../../moleculer.config";
import GatewayService from "../../services/gateway.service";
import RegistryService from "../../services/registry.service";
import SchedulerService from "../../services/scheduler.service";
import { mintToken } from "../../services/gateway/jwt";
import { loadEnv } from "../../services/shared/env";
import { StoreUnavailableError } from "../../services/shared/errors";
import { eventually } from "../helpers/cluster";
import { freePort, startRedis, type TestServer } from "../helpers/servers";
import { auditService, withSettings } from "../helpers/services";

const SECRET = "errors-test-secret";
jest.setTimeout(60_000);

/** How long the test service's actions take: longer than the calls' timeout below. */
const SLOW_MS = 400;
const CALL_TIMEOUT_MS = 150;

describe.each(["embedded", "redis"] as const)("errors and retries (%s store)", backend => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), "isa-errors-"));
	const runs = new Map<string, number>();
	/** Innermost of the middlewares: counts the runs of each action's handler, retries too. */
	const counter: Middleware = {
		localAction(handler: ActionHandler, action: ActionSchema) {
			return (ctx: Context) => {
				runs.set(action.name!, (runs.get(action.name!) ?? 0) + 1);
				return handler(ctx);
			};
		}
	};
	const config = createBrokerConfig(loadEnv({ ISA_DATA_DIR: dir }));
	let redis: TestServer | null = null;
	let broker: ServiceBroker;
	let server: any;
	let token: string;

	const api = (method: "get" | "post", url: string) =>
		request(server)[method](url).set("Authorization", `Bearer ${token}`);
	const call = (body: object, key?: string) => {
		const req = api("post", "/api/v1/services/call");
		return (key ? req.set("Idempotency-Key", key) : req).send(body);
	};

	beforeAll(async () => {
		if (backend === "redis") redis = await startRedis();
		const store = redis ? redis.url : path.join(dir, "isa.db");
		broker = new ServiceBroker({
			...config,
			nodeID: `errors-${backend}`,
			transporter: undefined,
			logger: false,
			metrics: { enabled: false },
			middlewares: [counter, ...(config.middlewares ?? [])]
		});
		broker.createService(
			withSettings(RegistryService, { store, tickInterval: 100, applyFile: null })
		);
		broker.createService(withSettings(SchedulerService, { store }));
		broker.createService(auditService(store));
		// A workload's service as a tenant would run it: reached through services/call.
		broker.createService({
			name: "slow",
			actions: {
				read: { idempotent: true, handler: () => wait(SLOW_MS) },
				create: { idempotent: "with-key", handler: () => wait(SLOW_MS) },
				mutate: { handler: () => wait(SLOW_MS) }
			}
		});
		// A service that fails by itself (500), until the broker's circuit breaker opens, and
		// one that answers a dependency's 503.
		broker.createService({
			name: "broken",
			actions: {
				storeDown: {
					idempotent: true,
					handler() {
						throw new StoreUnavailableError("connection refused");
					}
				},
				boom: {
					handler() {
						throw new Errors.MoleculerServerError("It broke.", 500, "BROKEN");
					}
				}
			}
		});
		const gateway = broker.createService(
			withSettings(GatewayService, { port: 0, jwtSecret: SECRET, store })
		);
		await broker.start();
		server = (gateway as any).server;
		token = await mintToken({
			secret: SECRET,
			sub: "admin",
			tenant: "default",
			roles: ["admin"],
			ttl: 600
		});
	});
	afterAll(async () => {
		await broker.stop();
		await redis?.stop();
		fs.rmSync(dir, { recursive: true, force: true });
	});
	beforeEach(() => runs.clear());

	it("answers services/call with no healthy endpoint 503 at once, with each endpoint's health", async () => {
		const closed = await freePort();
		const created = await api("post", "/api/v1/services").send({
			name: "isa_model",
			type: "http",
			endpoints: [`http://127.0.0.1:${closed}`],
			healthCheck: { interval: "500ms", timeout: "200ms", unhealthyThreshold: 1 }
		});
		expect(created.status).toBe(201);
		await eventually(
			async () =>
				(await api("get", "/api/v1/services/isa_model")).body.endpoints[0].health.status ===
				"unhealthy",
			10_000,
			"isa_model's endpoint unhealthy"
		);
		runs.clear();
		const started = Date.now();
		const res = await call({ service: "isa_model", path: "/v1/models" });
		const took = Date.now() - started;
		expect(res.status).toBe(503);
		expect(res.body).toMatchObject({
			name: "ServiceUnavailableError",
			code: 503,
			type: "SERVICE_UNAVAILABLE",
			data: {
				service: "isa_model",
				endpoints: [
					{
						url: `http://127.0.0.1:${closed}`,
						status: "unhealthy",
						error: expect.stringMatching(/ECONNREFUSED|refused/i)
					}
				]
			}
		});
		expect(res.body.message).toMatch(
			new RegExp(
				`^No endpoint of 'isa_model' is healthy: http://127\\.0\\.0\\.1:${closed} unhealthy \\(.*(ECONNREFUSED|refused).*, \\d+ s ago\\)\\.$`,
				"i"
			)
		);
		expect(typeof res.body.data.endpoints[0].checkedAt).toBe("number");
		expect(res.headers["retry-after"]).toBe("1");
		// Once through the gateway and the registry: nothing retried (it took 0.8 s with retries).
		expect(runs.get("registry.call")).toBe(1);
		expect(runs.get("gateway.rest")).toBe(1);
		expect(took).toBeLessThan(500);
	});

	it("answers a route whose service no node runs with 503 naming the action", async () => {
		// No nodes service on this broker: GET /api/v1/nodes routes to nodes.list.
		const res = await api("get", "/api/v1/nodes");
		expect(res.status).toBe(503);
		expect(res.body).toEqual({
			name: "ActionUnavailableError",
			code: 503,
			type: "SERVICE_NOT_AVAILABLE",
			message: "No node offers the action 'nodes.list' now.",
			data: { action: "nodes.list", nodes: [] }
		});
		expect(res.headers["retry-after"]).toBe("5");
		expect(runs.get("gateway.rest")).toBe(1);
	});

	it("answers services/call of an action no node offers with 503 naming it", async () => {
		const res = await call({ service: "slow", action: "missing" });
		expect(res.status).toBe(503);
		expect(res.body).toMatchObject({
			type: "SERVICE_NOT_AVAILABLE",
			message: "No node offers the action 'slow.missing' now.",
			data: { action: "slow.missing" }
		});
		expect(runs.get("registry.call")).toBe(1);
	});

	it("does not repeat a call that timed out unless its action is idempotent", async () => {
		const timeout = { service: "slow", timeout: CALL_TIMEOUT_MS };
		const mutate = await call({ ...timeout, action: "mutate" });
		expect(mutate.status).toBe(504);
		expect(mutate.body).toMatchObject({
			name: "RequestTimeoutError",
			type: "REQUEST_TIMEOUT",
			data: { action: "slow.mutate" }
		});
		expect(runs.get("slow.mutate")).toBe(1);

		const create = await call({ ...timeout, action: "create" });
		expect(create.status).toBe(504);
		expect(runs.get("slow.create")).toBe(1);

		// Idempotent, or keyed with its key: 1 call and the policy's 3 retries.
		const read = await call({ ...timeout, action: "read" });
		expect(read.status).toBe(504);
		expect(runs.get("slow.read")).toBe(4);
		const keyed = await call({ ...timeout, action: "create" }, "create-1");
		expect(keyed.status).toBe(504);
		expect(runs.get("slow.create")).toBe(1 + 4);
		expect(runs.get("registry.call")).toBe(4);
		expect(runs.get("gateway.rest")).toBe(4);
	});

	it("does not open the broker's circuit on a callee that says its dependency is down", async () => {
		// More than the breaker's minRequestCount (20) calls, all a dependency's 503.
		for (let i = 0; i < 25; i++)
			expect((await call({ service: "broken", action: "storeDown" })).body.type).toBe(
				"STORE_UNAVAILABLE"
			);
		const list = (broker.registry as any).getActionEndpoints("broken.storeDown");
		expect(list.endpoints.map((ep: { state: boolean }) => ep.state)).toEqual([true]);
		expect(runs.get("broken.storeDown")).toBe(25);
	});

	it("answers 503 saying that the circuit is open, not 404, once a failing action trips it", async () => {
		// The breaker's minRequestCount (20) calls, all failing: it opens.
		for (let i = 0; i < 20; i++)
			expect((await call({ service: "broken", action: "boom" })).status).toBe(500);
		const res = await call({ service: "broken", action: "boom" });
		expect(res.status).toBe(503);
		expect(res.body).toMatchObject({
			name: "ActionUnavailableError",
			type: "SERVICE_NOT_AVAILABLE",
			message:
				`No node can take the action 'broken.boom' now: the circuit breaker is open on ` +
				`errors-${backend} after repeated failures; it lets a call through again within 10 s.`,
			data: { action: "broken.boom", circuitOpen: [`errors-${backend}`], retryAfter: 10 }
		});
		expect(res.headers["retry-after"]).toBe("10");
		expect(runs.get("broken.boom")).toBe(20);
	});

	if (backend === "redis")
		it("answers GET /api/v1/workloads with 503 STORE_UNAVAILABLE once Redis is killed", async () => {
			expect((await api("get", "/api/v1/workloads")).status).toBe(200);
			runs.clear();
			redis!.proc.kill("SIGKILL");
			await new Promise(done => redis!.proc.once("exit", done));
			const started = Date.now();
			const res = await api("get", "/api/v1/workloads");
			expect(res.status).toBe(503);
			expect(res.body).toMatchObject({
				name: "StoreUnavailableError",
				code: 503,
				type: "STORE_UNAVAILABLE",
				message: expect.stringMatching(/^The store is unavailable: /),
				data: { reason: expect.any(String) }
			});
			expect(res.headers["retry-after"]).toBe("2");
			expect(runs.get("gateway.rest")).toBe(1);
			expect(Date.now() - started).toBeLessThan(15_000);
			// Not repeated: every node shares the store, a repeat at once meets it down too.
			expect(runs.get("scheduler.list")).toBe(1);
			// The same answer while it stays down.
			expect((await api("get", "/api/v1/workloads")).body.type).toBe("STORE_UNAVAILABLE");
		});
});

function wait(ms: number): Promise<string> {
	return new Promise(done => setTimeout(() => done("done"), ms));
}
