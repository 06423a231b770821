import { Errors } from "moleculer";
import { type PendingRequest, resendPending } from "../../../services/shared/transport";

/** A call as Moleculer's transit keeps it, with what it was rejected with. */
function pending(name: string, idempotent: PendingRequest["action"]["idempotent"], key?: string) {
	const req = {
		action: { name, idempotent },
		nodeID: "control",
		ctx: { meta: key ? { idempotencyKey: key } : {} },
		rejected: null as Error | null,
		reject(err: Error) {
			req.rejected = err;
		}
	};
	return req;
}

describe("resendPending", () => {
	it("rejects the calls safe to repeat as a node that left would, and keeps the others waiting", () => {
		const calls = {
			read: pending("scheduler.get", true),
			keyed: pending("scheduler.create", "with-key", "k-1"),
			unkeyed: pending("scheduler.create", "with-key"),
			write: pending("audit.begin", false),
			undeclared: pending("api.rest", undefined)
		};
		const map = new Map<string, PendingRequest>(Object.entries(calls));
		expect(resendPending(map)).toBe(2);
		expect([...map.keys()]).toEqual(["unkeyed", "write", "undeclared"]);
		for (const req of [calls.read, calls.keyed]) {
			expect(req.rejected).toBeInstanceOf(Errors.RequestRejectedError);
			// Retryable: the Retry middleware makes the call again.
			expect((req.rejected as Errors.MoleculerRetryableError).retryable).toBe(true);
		}
		expect(calls.read.rejected!.message).toContain("scheduler.get");
		for (const req of [calls.unkeyed, calls.write, calls.undeclared])
			expect(req.rejected).toBeNull();
	});
});
