/**
 * The flooding tenant of the noisy-neighbour suite, in a process of its own so that its sending
 * does not delay the quiet tenant's measurements: BENCH_FLOOD_CLIENTS clients (the issue's 48)
 * each send creates (named BENCH_FLOOD_PREFIX-n, new in each phase) to BENCH_URL one after another, as fast as they are answered, for
 * BENCH_SECONDS; a client answered 503 waits the Retry-After it was given, as HTTP asks. Then it
 * sends its counts of statuses and its latencies' P99 to the parent.
 */
import { performance } from "perf_hooks";
import { createBody, latencyStats } from "./noisy-common";

async function main(): Promise<void> {
	const url = process.env.BENCH_URL!;
	const auth = process.env.BENCH_AUTH!;
	const clients = Number(process.env.BENCH_FLOOD_CLIENTS);
	const seconds = Number(process.env.BENCH_SECONDS);
	const prefix = process.env.BENCH_FLOOD_PREFIX!;
	const counts = { created: 0, overloaded: 0, other: 0 };
	const latencies: number[] = [];
	const start = performance.now();
	const end = start + seconds * 1000;
	let n = 0;
	const client = async () => {
		while (performance.now() < end) {
			const t = performance.now();
			try {
				const res = await fetch(url, {
					method: "POST",
					headers: { Authorization: auth, "Content-Type": "application/json" },
					body: createBody(`${prefix}-${n++}`),
					signal: AbortSignal.timeout(30_000)
				});
				await res.arrayBuffer();
				latencies.push(performance.now() - t);
				if (res.status === 201) counts.created++;
				else if (res.status === 503) {
					counts.overloaded++;
					const wait = Number(res.headers.get("retry-after") ?? 1) * 1000;
					await new Promise(resolve => setTimeout(resolve, wait));
				} else counts.other++;
			} catch {
				counts.other++;
			}
		}
	};
	await Promise.all(Array.from({ length: clients }, client));
	const elapsed = (performance.now() - start) / 1000;
	process.send?.({ ...counts, rps: n / elapsed, p99Ms: latencyStats(latencies).p99Ms });
}

void main();
