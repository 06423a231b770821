import type { NodeReport } from "../../services/shared/types";

/**
 * The report of an idle node (4 cores, 8 GiB, no GPU, nothing used) that a test broadcasts as
 * `node.report` in place of an agent; `interval` is how often it claims to report (ms).
 */
export function idleReport(nodeID: string, interval = 60_000): NodeReport {
	return {
		nodeID,
		hostname: nodeID,
		labels: {},
		capacity: { cpu: 4, memory: 8 * 1024 ** 3, gpus: [] },
		usage: { cpu: 0, cpuPercent: 0, memory: 0, gpus: [], loadAvg: [0, 0, 0] },
		interval,
		sentAt: Date.now()
	};
}
