import type { ReplicaState } from "../../../services/shared/types";
import {
	failedReplicas,
	newWorkload,
	type Workload,
	workloadStatus,
	workloadView
} from "../../../services/scheduler/workload";

function withStates(...states: ReplicaState[]): Workload {
	const w = newWorkload(
		{
			name: "w",
			kind: "process",
			process: { command: "sleep" },
			resources: { cpu: 1, memory: 1 },
			replicas: states.length
		},
		{ id: "w1", tenant: "acme", createdBy: "alice", seq: 1, now: 1 }
	);
	states.forEach((state, i) => (w.replicas[i].state = state));
	return w;
}

describe("workloadStatus", () => {
	it.each<[ReplicaState[], string]>([
		[["running", "running"], "running"],
		[["failed", "failed"], "failed"],
		[["running", "failed"], "degraded"],
		[["pending", "failed"], "degraded"],
		[["starting", "failed", "running"], "degraded"],
		[["stopped", "stopped"], "stopped"],
		[["pending", "running"], "pending"],
		[["starting", "running"], "pending"],
		[["stopped", "running"], "running"],
		[[], "stopped"]
	])("%j: %s", (states, status) => {
		expect(workloadStatus(withStates(...states))).toBe(status);
	});

	it("shows each replica's state and reason with the status", () => {
		const w = withStates("running", "failed");
		Object.assign(w.replicas[1], {
			reason: "command 'x' is not allowed",
			lastError: "command 'x' is not allowed"
		});
		expect(workloadView(w)).toMatchObject({
			status: "degraded",
			replicas: [
				{ state: "running" },
				{ state: "failed", reason: "command 'x' is not allowed" }
			]
		});
	});
});

describe("failedReplicas", () => {
	it("lists the failed replicas' indexes", () => {
		expect(failedReplicas(withStates("failed", "running", "failed"))).toEqual([0, 2]);
		expect(failedReplicas(withStates("running"))).toEqual([]);
	});
});
