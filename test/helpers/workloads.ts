/** Workload documents for unit tests of the scheduler's modules. */
import { newWorkload, type Workload } from "../../services/scheduler/workload";

/** A workload of tenant acme whose replicas run on these nodes at fence 1 (null: pending). */
export function placedWorkload(id: string, nodes: Array<string | null>): Workload {
	const w = newWorkload(
		{
			name: id,
			kind: "process",
			process: { command: "sleep" },
			resources: { cpu: 1, memory: "1Gi" },
			replicas: nodes.length
		},
		{ id, tenant: "acme", createdBy: "alice", seq: 1, now: 1000 }
	);
	nodes.forEach((node, i) => {
		const r = w.replicas[i];
		if (!node) return;
		r.node = node;
		r.fence = 1;
		r.state = "running";
	});
	return w;
}
