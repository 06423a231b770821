import { Running, SyncOrder } from "../../../node-agent/sync-order";
import { replicaDigest } from "../../../services/shared/replica-digest";
import type { ReplicaSpec } from "../../../services/shared/types";

function spec(workloadId: string, replica: number, fence: number): ReplicaSpec {
	return {
		workloadId,
		tenant: "acme",
		name: workloadId,
		replica,
		fence,
		kind: "process",
		process: { command: "sleep", args: [], env: {} },
		resources: { cpu: 1, memory: 1, gpu: 0, gpuMemory: 0 },
		gpus: [],
		restart: { policy: "never", maxRestarts: 0 }
	};
}

const running = (workloadId: string, replica: number, fence: number): Running => ({
	workloadId,
	replica,
	fence
});

const keys = (plan: { stop: Running[]; start: ReplicaSpec[] } | null) =>
	plan && {
		stop: plan.stop.map(r => `${r.workloadId}/${r.replica}@${r.fence}`),
		start: plan.start.map(r => `${r.workloadId}/${r.replica}@${r.fence}`)
	};

describe("SyncOrder", () => {
	it("applies a node list: stops what it lacks or has placed anew, starts what it holds", () => {
		const order = new SyncOrder();
		const plan = order.node([spec("a", 0, 2), spec("b", 0, 1)], 10, [
			running("a", 0, 1),
			running("c", 0, 1)
		]);
		expect(keys(plan)).toEqual({ stop: ["a/0@1", "c/0@1"], start: ["a/0@2", "b/0@1"] });
	});

	it("ignores a node list older than one applied", () => {
		const order = new SyncOrder();
		order.node([], 10, []);
		expect(order.node([spec("a", 0, 1)], 9, [])).toBeNull();
		expect(order.node([spec("a", 0, 1)], 10, [])).toBeNull();
	});

	it("changes only the listed workloads with a workload list", () => {
		const order = new SyncOrder();
		const plan = order.workload([{ workloadId: "a", replicas: [spec("a", 1, 3)] }], 10, [
			running("a", 0, 1),
			running("b", 0, 1)
		]);
		expect(keys(plan)).toEqual({ stop: ["a/0@1"], start: ["a/1@3"] });
	});

	it("ignores a workload list older than a node list or than one of its workload", () => {
		const order = new SyncOrder();
		order.node([], 10, []);
		expect(order.workload([{ workloadId: "a", replicas: [] }], 9, [])).toBeNull();
		order.workload([{ workloadId: "a", replicas: [] }], 12, []);
		expect(order.workload([{ workloadId: "a", replicas: [] }], 11, [])).toBeNull();
		// Message 11 is older than a's last workload list (12), so a is skipped; for b only the node
		// list (10) came before it, so b's replica starts.
		expect(
			keys(
				order.workload(
					[
						{ workloadId: "a", replicas: [spec("a", 0, 1)] },
						{ workloadId: "b", replicas: [spec("b", 0, 1)] }
					],
					11,
					[]
				)
			)
		).toEqual({ stop: [], start: ["b/0@1"] });
	});

	it("keeps what a newer workload list said when an older node list arrives", () => {
		const order = new SyncOrder();
		order.workload([{ workloadId: "a", replicas: [spec("a", 0, 5)] }], 20, []);
		// A node list (15) older than a's workload list (20) still holds a's old replica (fence 4):
		// for a the newer workload list stands, for b and c the node list decides.
		const plan = order.node([spec("a", 0, 4), spec("b", 0, 1)], 15, [
			running("a", 0, 5),
			running("c", 0, 1)
		]);
		expect(keys(plan)).toEqual({ stop: ["c/0@1"], start: ["b/0@1"] });
		// A node list (25) newer than a's workload list (20) decides for a again: it lacks a, so
		// a's replica stops.
		expect(keys(order.node([], 25, [running("a", 0, 5)]))).toEqual({
			stop: ["a/0@5"],
			start: []
		});
	});

	it("ignores replicas of other workloads in a workload list", () => {
		const order = new SyncOrder();
		const plan = order.workload([{ workloadId: "a", replicas: [spec("b", 0, 1)] }], 5, [
			running("a", 0, 1)
		]);
		expect(keys(plan)).toEqual({ stop: ["a/0@1"], start: [] });
	});

	describe("matches (the reconcile's digest check)", () => {
		const digest = (...specs: ReplicaSpec[]) => replicaDigest(specs);

		it("says yes to the digest of what the lists applied say, no to any other", () => {
			const order = new SyncOrder();
			order.node([spec("a", 0, 1), spec("b", 0, 1)], 10, []);
			order.workload([{ workloadId: "b", replicas: [spec("b", 0, 2)] }], 11, []);
			order.workload([{ workloadId: "c", replicas: [spec("c", 0, 1)] }], 12, []);
			order.workload([{ workloadId: "a", replicas: [] }], 13, []);
			expect(order.matches(digest(spec("b", 0, 2), spec("c", 0, 1)), 20, [])).toBe(true);
			// A change this node never heard of: the scheduler sends it the whole list.
			expect(order.matches(digest(spec("b", 0, 2), spec("c", 0, 2)), 20, [])).toBe(false);
			expect(order.matches(digest(spec("b", 0, 2)), 20, [])).toBe(false);
		});

		it("leaves out the workloads still to be sent and those a newer workload list spoke for", () => {
			const order = new SyncOrder();
			order.node([spec("a", 0, 1), spec("b", 0, 1)], 10, []);
			// The scheduler placed c anew and has yet to send it: both sides leave c out.
			order.workload([{ workloadId: "c", replicas: [spec("c", 0, 1)] }], 11, []);
			expect(order.matches(digest(spec("a", 0, 1), spec("b", 0, 1)), 20, ["c"])).toBe(true);
			// b's list of generation 30 came after the digest of 20 was made.
			order.workload([{ workloadId: "b", replicas: [spec("b", 0, 9)] }], 30, []);
			expect(order.matches(digest(spec("a", 0, 1)), 20, ["c"])).toBe(true);
		});

		it("says yes when a node list newer than the digest was applied", () => {
			const order = new SyncOrder();
			order.node([spec("a", 0, 1)], 50, []);
			expect(order.matches(digest(spec("z", 0, 1)), 40, [])).toBe(true);
		});

		it("keeps what newer workload lists said across an older node list", () => {
			const order = new SyncOrder();
			order.workload([{ workloadId: "b", replicas: [spec("b", 0, 3)] }], 30, []);
			order.node([spec("a", 0, 1), spec("b", 0, 1)], 20, []);
			expect(order.matches(digest(spec("a", 0, 1), spec("b", 0, 3)), 40, [])).toBe(true);
		});
	});
});
