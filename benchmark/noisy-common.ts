/** What the noisy-neighbour suite's two tenants share: the create they send, and percentiles. */

/** A small process workload's create, named `name`. */
export function createBody(name: string): string {
	return JSON.stringify({
		name,
		kind: "process",
		process: { command: "x" },
		resources: { cpu: 0.01, memory: "1Mi" }
	});
}

/** P50 and P99 of latencies in ms (0 for none). */
export function latencyStats(latencies: number[]): { p50Ms: number; p99Ms: number } {
	const sorted = [...latencies].sort((a, b) => a - b);
	const at = (p: number) =>
		sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)] : 0;
	return { p50Ms: at(0.5), p99Ms: at(0.99) };
}
