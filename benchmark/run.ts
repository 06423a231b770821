/**
 * Benchmark runner: `npm run bench -- gateway` (or no name for every suite). Each suite measures
 * its baseline in the same run and prints a table with the ratio.
 */
import * as gateway from "./gateway.bench";
import * as scheduler from "./scheduler.bench";

const SUITES: Record<string, () => Promise<void>> = {
	async gateway() {
		console.log(
			`gateway: wrk -t1 -c50, ${process.env.BENCH_ROUNDS ?? 3} alternating rounds of ${process.env.BENCH_SECONDS ?? 5} s (about 2 min)…`
		);
		const rows = await gateway.run();
		console.log(gateway.table(rows));
		const misses = gateway.verdict(rows);
		console.log(
			misses.length
				? `MISSED: ${misses.join("; ")}`
				: "Targets met: ≥70% of bare, P99 < 10 ms."
		);
		if (misses.length) process.exitCode = 1;
	},
	async scheduler() {
		console.log(
			`scheduler: 5,000 nodes, ${process.env.BENCH_PLACEMENTS ?? "1,000,000"} placements per store, each scenario in a child process (a few minutes)…`
		);
		const rows = await scheduler.run();
		console.log(scheduler.table(rows));
		const misses = scheduler.verdict(rows);
		console.log(
			misses.length
				? `MISSED: ${misses.join("; ")}`
				: "Targets met: ≥20,000 placements/s with the embedded store, ≥5,000/s with Redis; the stores add up."
		);
		if (misses.length) process.exitCode = 1;
	}
};

async function main(): Promise<void> {
	const names = process.argv.slice(2);
	const unknown = names.filter(n => !SUITES[n]);
	if (unknown.length) {
		console.error(
			`Unknown suite ${unknown.join(", ")}; suites: ${Object.keys(SUITES).join(", ")}`
		);
		process.exit(2);
	}
	for (const name of names.length ? names : Object.keys(SUITES)) await SUITES[name]();
}

void main();
