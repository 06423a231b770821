import { Errors, ServiceBroker } from "moleculer";
import {
	retryDelay,
	SafeRetry,
	safeToRepeat,
	shouldRetry,
	worthRetrying
} from "../../../services/shared/retry";
import {
	AuditUnavailableError,
	ServiceUnavailableError,
	StoreUnavailableError
} from "../../../services/shared/errors";

describe("safeToRepeat", () => {
	it("repeats idempotent actions, keyed ones only with their key, nothing else", () => {
		expect(safeToRepeat(true, false)).toBe(true);
		expect(safeToRepeat("with-key", true)).toBe(true);
		expect(safeToRepeat("with-key", false)).toBe(false);
		expect(safeToRepeat(false, true)).toBe(false);
		expect(safeToRepeat(undefined, true)).toBe(false);
	});
});

describe("shouldRetry", () => {
	const base = { idempotent: true, hasKey: false, retryable: true, attempts: 0, maxAttempts: 3 };

	it("retries a retryable error of an idempotent action while tries are left", () => {
		expect(shouldRetry(base)).toBe(true);
		expect(shouldRetry({ ...base, attempts: 2 })).toBe(true);
		expect(shouldRetry({ ...base, attempts: 3 })).toBe(false);
		expect(shouldRetry({ ...base, maxAttempts: 0 })).toBe(false);
	});

	it("never retries an error that is not retryable, nor a call that is not safe to repeat", () => {
		expect(shouldRetry({ ...base, retryable: false })).toBe(false);
		expect(shouldRetry({ ...base, idempotent: undefined })).toBe(false);
		expect(shouldRetry({ ...base, idempotent: "with-key" })).toBe(false);
		expect(shouldRetry({ ...base, idempotent: "with-key", hasKey: true })).toBe(true);
	});
});

describe("worthRetrying (the broker's retry check)", () => {
	it("retries faults that may pass: a timeout, a node that left", () => {
		expect(worthRetrying(new Errors.RequestTimeoutError({ action: "a", nodeID: "n" }))).toBe(
			true
		);
		expect(worthRetrying(new Errors.RequestRejectedError({ action: "a", nodeID: "n" }))).toBe(
			true
		);
	});

	it("does not retry a dependency's refusal, nor a client's mistake or a plain error", () => {
		expect(worthRetrying(new StoreUnavailableError("down"))).toBe(false);
		expect(worthRetrying(new AuditUnavailableError("down"))).toBe(false);
		expect(worthRetrying(new ServiceUnavailableError("No endpoint …", {}))).toBe(false);
		expect(worthRetrying(new Errors.ValidationError("bad", "VALIDATION_ERROR", {}))).toBe(
			false
		);
		expect(worthRetrying(new Error("x"))).toBe(false);
		expect(worthRetrying(null)).toBe(false);
	});
});

describe("retryDelay", () => {
	it("doubles from the delay up to maxDelay (the broker's policy: 100 ms ×2 to 1 s)", () => {
		const policy = { delay: 100, maxDelay: 1000, factor: 2 };
		expect([1, 2, 3, 4, 5].map(n => retryDelay(n, policy))).toEqual([100, 200, 400, 800, 1000]);
	});
});

describe("SafeRetry on a broker", () => {
	const calls: Record<string, number> = {};
	const count = (name: string) => {
		calls[name] = (calls[name] ?? 0) + 1;
	};
	const broker = new ServiceBroker({
		logger: false,
		internalMiddlewares: false,
		middlewares: [SafeRetry()],
		retryPolicy: {
			enabled: true,
			retries: 3,
			delay: 1,
			maxDelay: 4,
			factor: 2,
			check: (err: Error) => !!(err as Errors.MoleculerError).retryable
		}
	});
	broker.createService({
		name: "t",
		actions: {
			read: {
				idempotent: true,
				handler() {
					count("read");
					throw new StoreUnavailableError("down");
				}
			},
			create: {
				idempotent: "with-key",
				handler() {
					count("create");
					throw new Errors.RequestTimeoutError({ action: "t.create", nodeID: "x" });
				}
			},
			mutate: {
				handler() {
					count("mutate");
					throw new StoreUnavailableError("down");
				}
			},
			// As moleculer-web's `rest`: private, declares nothing.
			rest: {
				visibility: "private",
				handler() {
					count("rest");
					throw new StoreUnavailableError("down");
				}
			},
			flaky: {
				idempotent: true,
				handler() {
					count("flaky");
					if (calls.flaky < 3) throw new StoreUnavailableError("down");
					return "ok";
				}
			}
		}
	});
	beforeAll(() => broker.start());
	afterAll(() => broker.stop());
	beforeEach(() => Object.keys(calls).forEach(k => delete calls[k]));

	it("retries an idempotent action (1 call + 3 retries), and the error comes back intact", async () => {
		const err = await broker.call("t.read").catch(e => e);
		expect(calls.read).toBe(4);
		expect(err).toBeInstanceOf(StoreUnavailableError);
		expect(err).toMatchObject({ code: 503, type: "STORE_UNAVAILABLE" });
	});

	it("returns the answer of a retry that works", async () => {
		expect(await broker.call("t.flaky")).toBe("ok");
		expect(calls.flaky).toBe(3);
	});

	it("runs a mutation once, and a keyed create once unless it has its key", async () => {
		await expect(broker.call("t.mutate")).rejects.toMatchObject({ type: "STORE_UNAVAILABLE" });
		expect(calls.mutate).toBe(1);
		await expect(broker.call("t.create")).rejects.toMatchObject({ code: 504 });
		expect(calls.create).toBe(1);
		await expect(
			broker.call("t.create", {}, { meta: { idempotencyKey: "k1" } })
		).rejects.toMatchObject({ code: 504 });
		expect(calls.create).toBe(1 + 4);
	});

	it("never repeats a private action that declares nothing (moleculer-web's rest)", async () => {
		const svc = broker.getLocalService("t") as unknown as {
			actions: Record<string, (p: object) => Promise<unknown>>;
		};
		await expect(svc.actions.rest({})).rejects.toMatchObject({ type: "STORE_UNAVAILABLE" });
		expect(calls.rest).toBe(1);
	});

	it("takes the caller's `retries` as the number of tries, not as leave to repeat", async () => {
		await expect(broker.call("t.read", {}, { retries: 1 })).rejects.toBeDefined();
		expect(calls.read).toBe(2);
		await expect(broker.call("t.mutate", {}, { retries: 2 })).rejects.toBeDefined();
		expect(calls.mutate).toBe(1);
	});
});

describe("SafeRetry across nodes", () => {
	// Moleculer's in-memory transporter: the callee's action schema, `idempotent` included,
	// reaches the caller in its service info, as over NATS. (The check here is Moleculer's
	// default, `retryable`, so that a store error stands in for any fault that may pass.)
	const namespace = `retry-${process.pid}`;
	const options = (nodeID: string) => ({
		nodeID,
		namespace,
		transporter: "Fake",
		logger: false,
		internalMiddlewares: false,
		middlewares: [SafeRetry()],
		retryPolicy: { enabled: true, retries: 2, delay: 1, maxDelay: 2, factor: 2 }
	});
	const caller = new ServiceBroker(options("caller"));
	const callee = new ServiceBroker(options("callee"));
	const runs = { read: 0, write: 0 };
	callee.createService({
		name: "remote",
		actions: {
			read: {
				idempotent: true,
				handler() {
					runs.read++;
					throw new StoreUnavailableError("down");
				}
			},
			write: {
				handler() {
					runs.write++;
					throw new StoreUnavailableError("down");
				}
			}
		}
	});
	beforeAll(async () => {
		await Promise.all([caller.start(), callee.start()]);
		await caller.waitForServices("remote", 5000);
	});
	afterAll(() => Promise.all([caller.stop(), callee.stop()]));

	it("retries a remote idempotent call on the caller (once per try), a mutation never", async () => {
		const err = await caller.call("remote.read").catch(e => e);
		expect(err).toMatchObject({ code: 503, type: "STORE_UNAVAILABLE", retryable: true });
		expect(runs.read).toBe(3);
		await expect(caller.call("remote.write")).rejects.toMatchObject({
			type: "STORE_UNAVAILABLE"
		});
		expect(runs.write).toBe(1);
	});
});
