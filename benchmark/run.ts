/**
 * Benchmark runner: `npm run bench -- gateway` (or no name for every suite). Each suite measures
 * its baseline in the same run and prints a table with the ratio.
 */
import * as availability from "./availability.bench";
import * as gateway from "./gateway.bench";
import * as noisy from "./noisy-neighbour.bench";
import * as scheduler from "./scheduler.bench";

interface Suite<Row> {
	run(): Promise<Row[]>;
	table(rows: Row[]): string;
	/** What missed its target; empty when every target was met. */
	verdict(rows: Row[]): string[];
}

/** Runs a suite, prints its table and verdict; a missed target fails the run. */
async function report<Row>(header: string, suite: Suite<Row>, met: string): Promise<void> {
	console.log(header);
	const rows = await suite.run();
	console.log(suite.table(rows));
	const misses = suite.verdict(rows);
	console.log(misses.length ? `MISSED: ${misses.join("; ")}` : met);
	if (misses.length) process.exitCode = 1;
}

const SUITES: Record<string, () => Promise<void>> = {
	gateway: () =>
		report(
			`gateway: wrk -t1 -c50, ${process.env.BENCH_ROUNDS ?? 3} alternating rounds of ${process.env.BENCH_SECONDS ?? 5} s (about 2 min)…`,
			gateway,
			"Targets met: reads ≥70% of bare with P99 < 10 ms, over HTTPS ≥70% of bare HTTPS; writes with audit ≥80% of audit off."
		),
	scheduler: () =>
		report(
			`scheduler: 5,000 nodes, ${process.env.BENCH_PLACEMENTS ?? "1,000,000"} placements per store, each scenario in a child process (a few minutes)…`,
			scheduler,
			"Targets met: ≥20,000 placements/s with the embedded store, ≥5,000/s with Redis; the stores add up."
		),
	availability: () =>
		report(
			`availability: ${process.env.BENCH_BASELINE_SECONDS ?? 60} s without faults, then ${process.env.BENCH_SECONDS ?? 600} s with a control process, a NATS server or the Redis primary killed every ${process.env.BENCH_CHAOS_EVERY ?? 60} s (about ${Math.ceil((Number(process.env.BENCH_BASELINE_SECONDS ?? 60) + Number(process.env.BENCH_SECONDS ?? 600)) / 60) + 2} min)…`,
			availability,
			"Target met: ≥99.9% of requests answered correctly under chaos; nothing lost, nothing twice."
		),
	noisy: () =>
		report(
			`noisy: a quiet tenant's creates (10/s) alone, then beside another tenant's flood (${process.env.BENCH_FLOOD_CLIENTS ?? 48} clients), ${process.env.BENCH_SECONDS ?? 15} s each…`,
			noisy,
			"Target met: the quiet tenant's P99 with the flood within 2× of alone; every quiet create 201."
		)
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

// A missing tool or a suite that could not start: one line, not a stack trace (each suite
// stops what it started in its own finally).
main().catch((err: Error) => {
	console.error(`Benchmark stopped: ${err.message}`);
	process.exit(1);
});
