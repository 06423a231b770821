import { ServiceBroker } from "moleculer";
import { createParams } from "../../../services/scheduler/schemas";
import {
	newWorkload,
	normalizeDisconnect,
	replicaSpec,
	type WorkloadInput
} from "../../../services/scheduler/workload";
import { createValidator } from "../../../services/shared/validator";

const input = (disconnect?: WorkloadInput["disconnect"]): WorkloadInput => ({
	name: "llm",
	kind: "process",
	process: { command: "/bin/true" },
	resources: { cpu: 1, memory: "1Gi" },
	replicas: 1,
	...(disconnect ? { disconnect } : {})
});
const ids = { id: "w1", tenant: "lab", createdBy: "u", seq: 1, now: 0 };

describe("disconnect (Nomad's block)", () => {
	it("reads stopAfter and replaceAfter as durations, in ms", () => {
		expect(normalizeDisconnect({ stopAfter: "3s", replaceAfter: "5m" })).toEqual({
			stopAfterMs: 3000,
			replaceAfterMs: 300_000
		});
		expect(normalizeDisconnect({ stopAfter: 1.5 })).toEqual({ stopAfterMs: 1500 });
		expect(normalizeDisconnect({})).toBeUndefined();
		expect(normalizeDisconnect(undefined)).toBeUndefined();
	});

	it("refuses a bad or out-of-bounds duration with 422 INVALID_INPUT, naming the field", () => {
		for (const [value, field] of [
			[{ stopAfter: "soon" }, "disconnect.stopAfter"],
			[{ stopAfter: "100ms" }, "disconnect.stopAfter"],
			[{ replaceAfter: "30d" }, "disconnect.replaceAfter"]
		] as const)
			expect(() => normalizeDisconnect(value)).toThrow(
				expect.objectContaining({
					code: 422,
					type: "INVALID_INPUT",
					data: expect.objectContaining({ field })
				})
			);
	});

	it("is stored on the workload, and the agent gets stopAfter in the ReplicaSpec", () => {
		const w = newWorkload(input({ stopAfter: "3s", replaceAfter: 10 }), ids);
		expect(w.disconnect).toEqual({ stopAfterMs: 3000, replaceAfterMs: 10_000 });
		const r = { ...w.replicas[0], node: "a1", fence: 1 };
		expect(replicaSpec(w, r).disconnect).toEqual({ stopAfterMs: 3000 });
		// Without it: today's behaviour, nothing in the spec.
		const plain = newWorkload(input(), ids);
		expect(plain.disconnect).toBeUndefined();
		expect(replicaSpec(plain, { ...plain.replicas[0], node: "a1" }).disconnect).toBeUndefined();
	});

	describe("in the create schema", () => {
		const broker = new ServiceBroker({ logger: false, validator: createValidator() });
		const check = (broker.validator as any).compile(createParams);
		it("takes seconds or duration strings, and nothing else", () => {
			expect(check(input({ stopAfter: "3s", replaceAfter: 30 }))).toBe(true);
			expect(check({ ...input(), disconnect: { stopAfter: true } })).not.toBe(true);
			expect(check({ ...input(), disconnect: { stopAfter: -1 } })).not.toBe(true);
			expect(check({ ...input(), disconnect: { after: "3s" } })).not.toBe(true);
		});
	});
});
