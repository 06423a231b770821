import http from "http";
import net from "net";
import type { Context } from "moleculer";
import { Breakers } from "../../../services/registry/breaker";
import type { HealthState } from "../../../services/registry/health";
import type { ExternalService } from "../../../services/registry/model";
import {
	attemptOrder,
	CallParams,
	CallProxy,
	CONTROL_SERVICES,
	forwardUrl,
	noHealthyEndpoint
} from "../../../services/registry/proxy";
import { endpointKey } from "../../../services/registry/targets";
import {
	ActionUnavailableError,
	ForbiddenError,
	NotFoundError,
	ServiceUnavailableError
} from "../../../services/shared/errors";
import type { Principal } from "../../../services/shared/principal";

const state = (status: HealthState["status"]): HealthState => ({
	status,
	checkedAt: 1,
	latencyMs: 2,
	successes: 0,
	failures: 0
});

function service(endpoints: string[]): ExternalService {
	return {
		name: "model",
		type: "http",
		endpoints,
		healthCheck: { interval: 1000, timeout: 100, healthyThreshold: 1, unhealthyThreshold: 1 },
		resources: {},
		dependencies: [],
		createdAt: 0,
		updatedAt: 0
	};
}

/** A catalog that knows the health of each endpoint URL given. */
const catalogOf = (byUrl: Record<string, HealthState["status"]>) => ({
	healthMany: async () =>
		new Map(Object.entries(byUrl).map(([url, s]) => [endpointKey("model", url), state(s)]))
});

const breakers = () => new Breakers({ threshold: 1, cooldownMs: 60_000 });
const noBroker = { findNextActionEndpoint: () => new Error("unused") } as never;
/** Discovery that finds every service running, the cluster's (no tenant's workload runs it). */
const running = { find: (name: string) => ({ name, nodes: ["n1"], actions: [], tenants: [] }) };

describe("attemptOrder", () => {
	const healthy = ["a", "b", "c"];
	it("starts at the turn's endpoint and goes round for idempotent methods", () => {
		expect(attemptOrder(healthy, 0, "GET")).toEqual(["a", "b", "c"]);
		expect(attemptOrder(healthy, 1, "PUT")).toEqual(["b", "c", "a"]);
		expect(attemptOrder(healthy, 5, "DELETE")).toEqual(["c", "a", "b"]);
	});

	it("tries a non-idempotent method on one endpoint only", () => {
		expect(attemptOrder(healthy, 1, "POST")).toEqual(["b"]);
		expect(attemptOrder(healthy, 2, "PATCH")).toEqual(["c"]);
	});
});

describe("forwardUrl", () => {
	it("puts the path below the endpoint's own path, keeping its query", () => {
		expect(forwardUrl("http://svc:8080/api", "/v1/chat?stream=1").href).toBe(
			"http://svc:8080/api/v1/chat?stream=1"
		);
		expect(forwardUrl("http://svc:8080/api/", "/health").href).toBe(
			"http://svc:8080/api/health"
		);
		expect(forwardUrl("http://svc:8080", "/x").href).toBe("http://svc:8080/x");
	});
});

describe("CONTROL_SERVICES", () => {
	it("holds every service of the cluster, the tenants service among them", () => {
		for (const name of ["tenants", "registry", "config", "monitor", "audit", "scheduler"])
			expect(CONTROL_SERVICES.has(name)).toBe(true);
		expect(CONTROL_SERVICES.has("isa_model")).toBe(false);
	});
});

describe("CallProxy.callAction", () => {
	const user: Principal = { sub: "ana", tenant: "acme", roles: ["operator"], exp: 0 };

	function ctxFor(params: CallParams) {
		const call = jest.fn(async () => "answer");
		const ctx = { params, meta: { user }, call } as unknown as Context<
			CallParams,
			{ user?: Principal }
		>;
		return { ctx, call };
	}

	it.each(["tenants", "scheduler", "$node"])("refuses the cluster's own '%s'", async name => {
		const proxy = new CallProxy(noBroker, catalogOf({}), breakers(), running);
		const { ctx, call } = ctxFor({ service: name, action: "list" });
		const err = await proxy.callAction(ctx, "list").catch(e => e);
		expect(err).toBeInstanceOf(ForbiddenError);
		expect(err).toMatchObject({ code: 403, type: "FORBIDDEN", data: { service: name } });
		expect(call).not.toHaveBeenCalled();
	});

	it("answers 503 when no node offers the action", async () => {
		const broker = {
			findNextActionEndpoint: () => new ServiceUnavailableError("x", {}),
			registry: { getActionEndpoints: () => undefined },
			options: {}
		};
		const proxy = new CallProxy(broker as never, catalogOf({}), breakers(), running);
		const err = await proxy.callAction(ctxFor({ service: "agentx" }).ctx, "run").catch(e => e);
		expect(err).toBeInstanceOf(ActionUnavailableError);
		expect(err).toMatchObject({
			code: 503,
			type: "SERVICE_NOT_AVAILABLE",
			message: "No node offers the action 'agentx.run' now.",
			data: { action: "agentx.run", nodes: [] }
		});
	});

	it("answers 404 for an action that is not published", async () => {
		const broker = { findNextActionEndpoint: () => ({ action: { visibility: "protected" } }) };
		const proxy = new CallProxy(broker as never, catalogOf({}), breakers(), running);
		const err = await proxy.callAction(ctxFor({ service: "agentx" }).ctx, "run").catch(e => e);
		expect(err).toBeInstanceOf(NotFoundError);
		expect(err).toMatchObject({
			code: 404,
			type: "NOT_FOUND",
			data: { kind: "Action", id: "agentx.run" }
		});
	});

	it("calls a published action with the caller's user and tenant in meta", async () => {
		const broker = { findNextActionEndpoint: () => ({ action: {} }) };
		const proxy = new CallProxy(broker as never, catalogOf({}), breakers(), running);
		const { ctx, call } = ctxFor({ service: "agentx", params: { q: 1 }, timeout: 500 });
		expect(await proxy.callAction(ctx, "run")).toBe("answer");
		expect(call).toHaveBeenCalledWith(
			"agentx.run",
			{ q: 1 },
			{ timeout: 500, meta: { user, tenant: "acme" } }
		);
	});
});

describe("noHealthyEndpoint", () => {
	it("says each endpoint's status, its last error and how long ago it was checked", () => {
		const now = 10_000;
		expect(
			noHealthyEndpoint(
				"isa_model",
				[
					{
						url: "http://127.0.0.1:1/",
						status: "unhealthy",
						checkedAt: 7_000,
						latencyMs: 1,
						error: "connect ECONNREFUSED 127.0.0.1:1"
					},
					{ url: "http://b/", status: "unknown", checkedAt: 9_600, latencyMs: 2 },
					{ url: "http://c/", status: "unknown", checkedAt: null, latencyMs: null }
				],
				now
			)
		).toBe(
			"No endpoint of 'isa_model' is healthy: http://127.0.0.1:1/ unhealthy " +
				"(connect ECONNREFUSED 127.0.0.1:1, 3 s ago); http://b/ unknown (0 s ago); " +
				"http://c/ unknown (not checked yet)."
		);
	});
});

describe("CallProxy.callHttp", () => {
	const servers: http.Server[] = [];
	/** A server that answers `status` with its own name as JSON. */
	async function serve(name: string, status = 200): Promise<string> {
		const server = http.createServer((req, res) => {
			res.writeHead(status, { "content-type": "application/json" });
			res.end(JSON.stringify({ name, method: req.method, url: req.url }));
		});
		await new Promise<void>(done => server.listen(0, "127.0.0.1", done));
		servers.push(server);
		return `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
	}
	afterAll(async () => {
		await Promise.all(servers.map(s => new Promise(done => s.close(done))));
	});

	it("answers 503 with each endpoint's health, masked, when none is healthy", async () => {
		const urls = ["http://u:pw@a:1", "http://b:1"];
		const proxy = new CallProxy(
			noBroker,
			catalogOf({ [urls[0]]: "unhealthy" }),
			breakers(),
			running,
			() => 3001
		);
		const err = await proxy.callHttp(service(urls), { service: "model" }).catch(e => e);
		expect(err).toBeInstanceOf(ServiceUnavailableError);
		expect(err.message).toBe(
			"No endpoint of 'model' is healthy: http://u:***@a:1 unhealthy (3 s ago); " +
				"http://b:1 unknown (not checked yet)."
		);
		expect(err.data).toEqual({
			service: "model",
			endpoints: [
				{ url: "http://u:***@a:1", status: "unhealthy", checkedAt: 1, latencyMs: 2 },
				{ url: "http://b:1", status: "unknown", checkedAt: null, latencyMs: null }
			],
			retryAfter: 1
		});
	});

	it("balances over the healthy endpoints, round robin", async () => {
		const a = await serve("a");
		const b = await serve("b");
		const down = "http://127.0.0.1:1";
		const proxy = new CallProxy(
			noBroker,
			catalogOf({ [a]: "healthy", [down]: "unhealthy", [b]: "healthy" }),
			breakers(),
			running
		);
		const names: string[] = [];
		for (let i = 0; i < 4; i++) {
			const res = await proxy.callHttp(service([a, down, b]), {
				service: "model",
				path: "/v1/x?y=1"
			});
			expect(res).toMatchObject({ service: "model", status: 200 });
			names.push((res.body as { name: string }).name);
			expect(res.body).toMatchObject({ method: "GET", url: "/v1/x?y=1" });
		}
		expect(names).toEqual(["a", "b", "a", "b"]);
	});

	it("moves an idempotent request on after a 5xx, and opens that endpoint's breaker", async () => {
		const failing = await serve("failing", 502);
		const ok = await serve("ok");
		const b = breakers();
		const proxy = new CallProxy(
			noBroker,
			catalogOf({ [failing]: "healthy", [ok]: "healthy" }),
			b,
			running
		);
		const res = await proxy.callHttp(service([failing, ok]), { service: "model" });
		expect(res).toMatchObject({ endpoint: ok, status: 200 });
		expect(b.isOpen(endpointKey("model", failing))).toBe(true);
		expect(b.isOpen(endpointKey("model", ok))).toBe(false);
	});

	it("answers a non-idempotent request's 5xx as it came, trying no other endpoint", async () => {
		const failing = await serve("failing", 500);
		const ok = await serve("ok");
		const proxy = new CallProxy(
			noBroker,
			catalogOf({ [failing]: "healthy", [ok]: "healthy" }),
			breakers(),
			running
		);
		const res = await proxy.callHttp(service([failing, ok]), {
			service: "model",
			method: "POST",
			body: { q: 1 }
		});
		expect(res).toMatchObject({ endpoint: failing, status: 500, body: { method: "POST" } });
	});

	it("skips endpoints whose circuit is open, and says so when none answered", async () => {
		const a = await serve("a");
		const b = breakers();
		b.failure(endpointKey("model", a));
		const proxy = new CallProxy(noBroker, catalogOf({ [a]: "healthy" }), b, running);
		const err = await proxy.callHttp(service([a]), { service: "model" }).catch(e => e);
		expect(err).toBeInstanceOf(ServiceUnavailableError);
		expect(err.message).toBe("No endpoint of 'model' answered.");
		expect(err.data).toEqual({ service: "model", failures: [`${a}: circuit open`] });
	});
});
