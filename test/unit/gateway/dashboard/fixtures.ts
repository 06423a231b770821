/** Nodes and workloads as the server makes them, for the dashboard's unit tests. */
import type { NodeInfo } from "../../../../services/shared/types";
import { newWorkload, workloadView } from "../../../../services/scheduler/workload";
import type { WorkloadView } from "../../../../services/gateway/dashboard/types";

const GiB = 1024 ** 3;

/** A node of `gpus` GPUs (80Gi each), CPU busy `cpu` cores, each GPU `gpuUtil` % busy. */
export function node(
	id: string,
	opts: {
		status?: NodeInfo["status"];
		cpu?: number;
		gpus?: number;
		gpuUtil?: number;
		usage?: boolean;
		allocated?: NodeInfo["allocated"];
	} = {}
): NodeInfo {
	const gpus = Array.from({ length: opts.gpus ?? 0 }, (_, index) => index);
	return {
		id,
		hostname: `${id}.example`,
		status: opts.status ?? "ready",
		labels: { zone: "a" },
		capacity: {
			cpu: 32,
			memory: 128 * GiB,
			gpus: gpus.map(index => ({
				index,
				uuid: `${id}-${index}`,
				model: "L4",
				memory: 80 * GiB
			}))
		},
		usage:
			opts.usage === false
				? null
				: {
						cpu: opts.cpu ?? 8,
						cpuPercent: ((opts.cpu ?? 8) / 32) * 100,
						memory: 32 * GiB,
						gpus: gpus.map(index => ({
							index,
							utilization: opts.gpuUtil ?? 50,
							memoryUsed: 40 * GiB,
							temperature: 60
						})),
						loadAvg: [1, 1, 1]
					},
		allocated: opts.allocated ?? { cpu: 4, memory: 16 * GiB, gpus: 1 },
		lastSeen: 1000,
		reportInterval: 2000,
		cordoned: false
	};
}

/** A workload as GET /api/v1/workloads lists it, its replicas placed as given. */
export function workload(
	name: string,
	seq: number,
	replicas: {
		node: string | null;
		gpus?: number[];
		state: WorkloadView["replicas"][0]["state"];
	}[]
): WorkloadView {
	const w = newWorkload(
		{
			name,
			kind: "process",
			process: { command: "sleep" },
			resources: { cpu: 1, memory: "1Gi", gpu: 1 },
			replicas: replicas.length
		},
		{ id: `w-${name}`, tenant: "acme", createdBy: "ann", seq, now: 0 }
	);
	replicas.forEach((r, i) => Object.assign(w.replicas[i], { ...r, gpus: r.gpus ?? [] }));
	return workloadView(w);
}
