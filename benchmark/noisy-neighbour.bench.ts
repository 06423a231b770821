/**
 * Noisy-neighbour suite: tenant "quiet" creates a workload every 1000/BENCH_QUIET_RATE ms
 * (default 10/s, open loop: it does not wait for one answer to send the next) while tenant
 * "flood" has BENCH_FLOOD_CLIENTS clients (default 48, as in the issue) sending creates as fast
 * as they are answered, from a process of its own (benchmark/noisy-flood.ts); a flood client
 * answered 503 waits its Retry-After. The cluster (benchmark/noisy-cluster.ts)
 * is a process too: the gateway, inventory, scheduler, tenants and audit services of a single
 * node on its embedded store, and three stub agents. Same run, BENCH_SECONDS (default 15) each:
 * the quiet tenant alone on an empty store, the flood alone (its throughput without a
 * neighbour, to show what the fair share costs it: nothing while it is alone), the quiet
 * tenant alone again, now with the flood's workloads in the store, then both. The flood's
 * creates past its tenant's bounds get 503 with Retry-After and are counted apart.
 * Target: the quiet tenant's P99 beside the flood within 2× of its P99 alone after the flood
 * (the same store, tens of thousands of workloads, only without the flood's requests), and
 * every quiet create answered 201. The ratio to the empty store is in the table too.
 */
import { fork } from "child_process";
import fs from "fs";
import os from "os";
import path from "path";
import { performance } from "perf_hooks";
import { mintToken } from "../services/gateway/jwt";
import { freePort } from "../test/helpers/servers";
import { createBody, latencyStats } from "./noisy-common";

const SECRET = "noisy-secret";
const SECONDS = Number(process.env.BENCH_SECONDS ?? 15);
const QUIET_RATE = Number(process.env.BENCH_QUIET_RATE ?? 10);
const FLOOD_CLIENTS = Number(process.env.BENCH_FLOOD_CLIENTS ?? 48);
const MAX_RATIO = 2;

interface FloodStats {
	/** Requests sent per second. */
	rps: number;
	p99Ms: number;
	created: number;
	overloaded: number;
	other: number;
}

export interface NoisyRow {
	phase:
		| "quiet alone, empty store"
		| "flood alone"
		| "quiet alone, after the flood"
		| "quiet beside the flood";
	quietCreates: number;
	/** Quiet creates not answered 201 (none expected). */
	quietFailed: number;
	p50Ms: number;
	p99Ms: number;
	/** null: no flood in this phase. */
	flood: FloodStats | null;
}

/** The quiet tenant's figures of the phase it sends nothing in. */
const NO_QUIET = { quietCreates: 0, quietFailed: 0, p50Ms: NaN, p99Ms: NaN };

/** The quiet tenant's creates for `seconds`, open loop; each one's latency in ms. */
async function quiet(url: string, auth: string, prefix: string, seconds: number) {
	const latencies: number[] = [];
	let failed = 0;
	const fail = (why: string) => {
		if (failed++ < 3) console.log(`quiet create failed: ${why}`);
	};
	const sent: Promise<void>[] = [];
	const end = performance.now() + seconds * 1000;
	for (let i = 0; performance.now() < end; i++) {
		const start = performance.now();
		sent.push(
			fetch(url, {
				method: "POST",
				headers: { Authorization: auth, "Content-Type": "application/json" },
				body: createBody(`${prefix}-${i}`),
				signal: AbortSignal.timeout(30_000)
			})
				.then(async res => {
					const text = await res.text();
					if (res.status === 201) latencies.push(performance.now() - start);
					else fail(`${res.status} ${text.slice(0, 200)}`);
				})
				.catch((err: Error) => fail(err.message))
		);
		await new Promise(resolve => setTimeout(resolve, 1000 / QUIET_RATE));
	}
	await Promise.all(sent);
	return {
		quietCreates: latencies.length + failed,
		quietFailed: failed,
		...latencyStats(latencies)
	};
}

/** The flood, from its own process. */
function flood(url: string, auth: string, prefix: string): Promise<FloodStats> {
	const child = fork(path.join(__dirname, "noisy-flood.js"), [], {
		env: {
			...process.env,
			BENCH_URL: url,
			BENCH_AUTH: auth,
			BENCH_FLOOD_CLIENTS: String(FLOOD_CLIENTS),
			BENCH_SECONDS: String(SECONDS),
			BENCH_FLOOD_PREFIX: prefix
		}
	});
	return new Promise((resolve, reject) => {
		child.once("message", stats => resolve(stats as FloodStats));
		child.once("exit", code => reject(new Error(`the flood exited with ${code}`)));
	});
}

export async function run(): Promise<NoisyRow[]> {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), "isa-noisy-"));
	const port = await freePort();
	const cluster = fork(path.join(__dirname, "noisy-cluster.js"), [], {
		env: { ...process.env, BENCH_DIR: dir, PORT: String(port), ISA_JWT_SECRET: SECRET },
		stdio: "inherit"
	});
	try {
		await new Promise<void>((resolve, reject) => {
			cluster.once("message", () => resolve());
			cluster.once("exit", code => reject(new Error(`the cluster exited with ${code}`)));
		});
		const token = async (tenant: string) =>
			`Bearer ${await mintToken({ secret: SECRET, sub: tenant, tenant, roles: ["operator"], ttl: 3600 })}`;
		const quietAuth = await token("quiet");
		const url = `http://127.0.0.1:${port}/api/v1/workloads`;
		// Warm-up: the code paths compiled, the store's first pages written.
		await quiet(url, quietAuth, "warm", 2);
		const floodAuth = await token("flood");
		const empty = await quiet(url, quietAuth, "empty", SECONDS);
		const floodAlone = await flood(url, floodAuth, "flood-alone");
		// The baseline: alone again, with the flood's workloads in the store, as beside it.
		const alone = await quiet(url, quietAuth, "alone", SECONDS);
		const [beside, floodStats] = await Promise.all([
			quiet(url, quietAuth, "beside", SECONDS),
			flood(url, floodAuth, "flood-beside")
		]);
		return [
			{ phase: "quiet alone, empty store", ...empty, flood: null },
			{ phase: "flood alone", ...NO_QUIET, flood: floodAlone },
			{ phase: "quiet alone, after the flood", ...alone, flood: null },
			{ phase: "quiet beside the flood", ...beside, flood: floodStats }
		];
	} finally {
		await new Promise<void>(resolve => {
			if (cluster.exitCode !== null) return resolve();
			cluster.once("exit", () => resolve());
			cluster.kill("SIGTERM");
		});
		fs.rmSync(dir, { recursive: true, force: true });
	}
}

/** The quiet tenant's P99 without the flood, on a store as full as beside it. */
const baseline = (rows: NoisyRow[]): NoisyRow =>
	rows.find(r => r.phase === "quiet alone, after the flood")!;

export function table(rows: NoisyRow[]): string {
	const base = baseline(rows);
	const fixed = (v: number, digits: number) => (Number.isNaN(v) ? "-" : v.toFixed(digits));
	const ms = (v: number) => fixed(v, 1);
	const lines = [
		"| phase | quiet creates | quiet failed | quiet P50 ms | quiet P99 ms | P99 × alone | flood sent/s | flood 201/s | flood 201 | flood 503 | flood other | flood P99 ms |",
		"|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	];
	for (const r of rows) {
		const f = r.flood;
		lines.push(
			`| ${r.phase} | ${r.quietCreates} | ${r.quietFailed} | ${ms(r.p50Ms)} | ${ms(r.p99Ms)} | ` +
				`${fixed(r.p99Ms / base.p99Ms, 2)} | ${f ? Math.round(f.rps) : "-"} | ${f ? Math.round(f.created / SECONDS) : "-"} | ${f?.created ?? "-"} | ` +
				`${f?.overloaded ?? "-"} | ${f?.other ?? "-"} | ${f ? f.p99Ms.toFixed(1) : "-"} |`
		);
	}
	return lines.join("\n");
}

export function verdict(rows: NoisyRow[]): string[] {
	const base = baseline(rows);
	const misses: string[] = [];
	for (const r of rows) {
		if (r.quietFailed) misses.push(`${r.phase}: ${r.quietFailed} quiet creates not 201`);
		if (r.flood && r.p99Ms > MAX_RATIO * base.p99Ms)
			misses.push(
				`${r.phase}: quiet P99 ${r.p99Ms.toFixed(1)} ms is over ${MAX_RATIO}× alone`
			);
		if (r.flood?.other)
			misses.push(`${r.phase}: ${r.flood.other} flood answers neither 201 nor 503`);
	}
	return misses;
}
