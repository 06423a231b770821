import { Errors, ServiceBroker } from "moleculer";
import ApiGateway from "moleculer-web";
import {
	answerError,
	clientError,
	retryAfterSeconds,
	unavailableAction
} from "../../../services/gateway/errors";
import { actionUnavailable } from "../../../services/shared/availability";
import {
	NotFoundError,
	ServiceUnavailableError,
	StoreIdentityMismatchError,
	StoreUnavailableError
} from "../../../services/shared/errors";

const WebErrors = (
	ApiGateway as unknown as {
		Errors: { ServiceUnavailableError: new (type?: string, data?: unknown) => Error };
	}
).Errors;

describe("unavailableAction", () => {
	it("finds the action in Moleculer's no-endpoint errors (404, retryable)", () => {
		expect(unavailableAction(new Errors.ServiceNotFoundError({ action: "a.b" }), "x.y")).toBe(
			"a.b"
		);
		expect(
			unavailableAction(new Errors.ServiceNotAvailableError({ action: "a.b" }), undefined)
		).toBe("a.b");
	});

	it("takes the route's action for moleculer-web's untyped 503", () => {
		expect(unavailableAction(new WebErrors.ServiceUnavailableError(), "scheduler.list")).toBe(
			"scheduler.list"
		);
	});

	it("leaves every other error alone: typed 503s, 4xx, a service not found", () => {
		for (const err of [
			new WebErrors.ServiceUnavailableError("SERVICE_UNAVAILABLE", { reason: "x" }),
			new StoreUnavailableError("down"),
			new ServiceUnavailableError("No endpoint of 'm' is healthy: …", {}),
			new NotFoundError("Workload", "w1"),
			new Errors.ServiceNotFoundError({ service: "s" }),
			new Error("plain"),
			null
		])
			expect(unavailableAction(err, "scheduler.list")).toBeNull();
	});
});

describe("retryAfterSeconds", () => {
	it("is set on retryable 503s only, from the error's data or its type", () => {
		expect(retryAfterSeconds(new StoreUnavailableError("down"))).toBe(2);
		expect(retryAfterSeconds(actionUnavailable("x.y", { nodes: [], open: [] }, 10))).toBe(5);
		expect(retryAfterSeconds(new ServiceUnavailableError("m", { retryAfter: 9.5 }))).toBe(10);
		expect(retryAfterSeconds(new ServiceUnavailableError("m", {}))).toBe(1);
	});

	it("is not set where a retry cannot help, nor on other codes", () => {
		expect(retryAfterSeconds(new StoreIdentityMismatchError("other store", {}))).toBeNull();
		expect(retryAfterSeconds(new WebErrors.ServiceUnavailableError("X", {}))).toBeNull();
		expect(retryAfterSeconds(new NotFoundError("Workload", "w"))).toBeNull();
		expect(
			retryAfterSeconds(new Errors.RequestTimeoutError({ action: "a", nodeID: "n" }))
		).toBeNull();
		expect(retryAfterSeconds("text")).toBeNull();
	});
});

describe("clientError on a broker", () => {
	const broker = new ServiceBroker({
		logger: false,
		circuitBreaker: { enabled: true, halfOpenTime: 7000 }
	});
	broker.createService({ name: "s", actions: { a: () => 1 } });
	beforeAll(() => broker.start());
	afterAll(() => broker.stop());

	it("turns a 404 of an action no node offers into a 503 naming it", () => {
		const err = clientError(broker, new Errors.ServiceNotFoundError({ action: "x.y" }), "s.a");
		expect(err).toMatchObject({ code: 503, message: "No node offers the action 'x.y' now." });
	});

	it("says so when the breaker is open on the action's only node", () => {
		const list = (broker.registry as any).getActionEndpoints("s.a");
		list.endpoints[0].state = false;
		try {
			const err = clientError(
				broker,
				new Errors.ServiceNotAvailableError({ action: "s.a" }),
				undefined
			);
			expect(err).toMatchObject({
				code: 503,
				type: "SERVICE_NOT_AVAILABLE",
				data: { action: "s.a", circuitOpen: [broker.nodeID], retryAfter: 7 }
			});
		} finally {
			list.endpoints[0].state = true;
		}
	});

	it("keeps every other error as it is, the same object", () => {
		const err = new StoreUnavailableError("down");
		expect(clientError(broker, err, "s.a")).toBe(err);
	});
});

describe("answerError", () => {
	function fixture(headers: Record<string, string> = {}) {
		const sent: unknown[] = [];
		const warnings: string[] = [];
		const host = {
			broker: new ServiceBroker({ logger: false }),
			logger: { warn: (m: string) => warnings.push(m), error: () => undefined },
			settings: {},
			sendError: (_req: unknown, _res: unknown, err: unknown) => sent.push(err)
		};
		const res = {
			headersSent: false,
			headers: { ...headers } as Record<string, string>,
			getHeader(name: string) {
				return this.headers[name];
			},
			setHeader(name: string, value: string) {
				this.headers[name] = value;
			}
		};
		const req = {
			method: "GET",
			originalUrl: "/api/v1/events?token=secret",
			$alias: { action: "scheduler.list" }
		};
		return { host, req, res, sent, warnings };
	}

	it("sends the mapped error with Retry-After, and logs the path without its query", () => {
		const f = fixture();
		answerError(
			f.host,
			f.req as never,
			f.res as never,
			new WebErrors.ServiceUnavailableError()
		);
		expect(f.sent[0]).toMatchObject({ code: 503, data: { action: "scheduler.list" } });
		expect(f.res.headers["Retry-After"]).toBe("5");
		expect(f.warnings).toEqual([
			"GET /api/v1/events: 503 SERVICE_NOT_AVAILABLE No node offers the action 'scheduler.list' now."
		]);
	});

	it("keeps a Retry-After that was set before, and sets none where a retry cannot help", () => {
		const f = fixture({ "Retry-After": "30" });
		answerError(f.host, f.req as never, f.res as never, new StoreUnavailableError("down"));
		expect(f.res.headers["Retry-After"]).toBe("30");
		const g = fixture();
		const err = new NotFoundError("Workload", "w1");
		answerError(g.host, g.req as never, g.res as never, err);
		expect(g.sent[0]).toBe(err);
		expect(g.res.headers["Retry-After"]).toBeUndefined();
	});
});
