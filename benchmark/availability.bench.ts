/**
 * Availability suite: `npm run bench -- availability`. A cluster without a single point of
 * failure, all on loopback: three `nats-server`s with routes, Redis with a primary, two
 * replicas and three sentinels (`ISA_REDIS_WAIT_REPLICAS=1`), two control nodes each running
 * every control service and a gateway, and two agents running a 4-replica workload.
 *
 * A client sends BENCH_RATE (default 20) requests/s, open loop, spread over both gateways as a
 * load balancer would, moving to the other gateway only when one refuses the connection (it
 * never reached a server): reads (nodes, workloads, alerts, config), config writes over 30 keys,
 * creates with an Idempotency-Key of workloads that wait for capacity, each deleted again 5 s
 * later (the store stays the same size). First BENCH_BASELINE_SECONDS (default 60) without faults: the same
 * run's baseline. Then BENCH_SECONDS (default 600) of chaos: every BENCH_CHAOS_EVERY seconds
 * (default 60) one of a control process, a NATS server or the Redis primary, in turn, is
 * killed with SIGKILL and started again BENCH_CHAOS_DOWN seconds (default 10) later.
 *
 * A request is answered correctly with a 2xx or 4xx; a 5xx, a timeout (10 s) or a broken
 * connection is not. Target: at least 99.9% of the chaos phase's requests. The share a client
 * gets that sends a 503 again after its Retry-After (within 10 s) is beside it. At the end,
 * nothing lost and nothing twice: every acknowledged create is there once (or gone, when its
 * delete was acknowledged), every config key holds its last acknowledged write, the API,
 * the OS processes (/proc) and the store agree on the workload's replicas, and none of them was
 * restarted or ran twice.
 */
import fs from "fs";
import os from "os";
import path from "path";
import Redis from "ioredis";
import { COLLECTIONS } from "../services/shared/collections";
import { eventually, startNode } from "../test/helpers/cluster";
import {
	freePort,
	startNatsCluster,
	startRedis,
	startSentinels,
	type TestServer
} from "../test/helpers/servers";
import { faultCluster, type FaultCluster, Watcher } from "../test/faults/harness";
import { latencyStats } from "./noisy-common";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 600);
const BASELINE_SECONDS = Number(process.env.BENCH_BASELINE_SECONDS ?? 60);
const CHAOS_EVERY_S = Number(process.env.BENCH_CHAOS_EVERY ?? 60);
const DOWN_S = Number(process.env.BENCH_CHAOS_DOWN ?? 10);
const RATE = Number(process.env.BENCH_RATE ?? 20);
const TARGET = 0.999;
const REQUEST_TIMEOUT_MS = 10_000;
const PRIMARY = "isa";
const REPLICAS = 4;

type Kind = "read" | "config write" | "create" | "delete";

interface Outcome {
	at: number;
	ms: number;
	kind: Kind;
	/** The first answer's status; 0: no answer (timeout, reset, refused by both gateways). */
	status: number;
	/** The first answer was correct (2xx or 4xx). */
	ok: boolean;
	/** The last answer within the 10 s was, with 503s sent again after their Retry-After. */
	okRetried: boolean;
	/** The first answer's error type, when it was not correct (STORE_UNAVAILABLE, …). */
	error?: string;
	/** What was written, for the check at the end. */
	created?: { name: string; id: string };
	/** A delete answered 2xx or 404: the workload of that name must be gone. */
	deleted?: string;
	configured?: { key: string; value: number; acked: boolean };
}

interface Fault {
	at: number;
	what: "control" | "nats" | "redis";
	target: string;
}

export interface AvailabilityRow {
	phase: "no faults" | "chaos";
	seconds: number;
	requests: number;
	/** Requests whose first answer was correct. */
	correct: number;
	/** Requests answered correctly within 10 s by a client that follows Retry-After. */
	correctRetried: number;
	p50Ms: number;
	p99Ms: number;
	/** The longest time during which every request of one kind failed (ms). */
	longestOutageMs: number;
	faults: Fault[];
	/** Failed requests by the fault they followed (within its down time and 15 s after). */
	failuresBy: Record<string, number>;
	/** The end's checks that failed (empty: nothing lost, nothing twice, all agree). */
	problems: string[];
}

/** A request as a load balancer in front of both gateways sends it. */
class Client {
	private next = 0;
	constructor(
		private readonly ports: number[],
		private readonly token: string
	) {}

	/**
	 * One request: to the next gateway, or the other one when it refuses the connection. The
	 * first answer decides `ok`; a 503 with Retry-After is then sent again after it, as a client
	 * following the API's contract would (every request of the soak is safe to repeat: reads,
	 * config writes of a value, creates with an Idempotency-Key), and the last answer within
	 * the 10 s decides `okRetried`.
	 */
	async send(kind: Kind, method: string, url: string, body?: unknown, headers = {}) {
		const at = Date.now();
		let answer = await this.once(method, url, body, headers, at);
		const first = answer.status;
		const firstType = String((answer.json as { type?: string } | null)?.type ?? "no answer");
		for (;;) {
			const wait = answer.retryAfter * 1000;
			if (answer.status !== 503 || !wait || Date.now() + wait >= at + REQUEST_TIMEOUT_MS)
				break;
			await new Promise(r => setTimeout(r, wait));
			answer = await this.once(method, url, body, headers, at);
		}
		const good = (status: number) => status >= 200 && status < 500;
		const outcome: Outcome = {
			at,
			ms: Date.now() - at,
			kind,
			status: first,
			ok: good(first),
			okRetried: good(answer.status),
			...(good(first) ? {} : { error: firstType })
		};
		return { outcome, status: answer.status, json: answer.json };
	}

	private async once(method: string, url: string, body: unknown, headers: object, at: number) {
		const start = this.next++ % this.ports.length;
		for (let i = 0; i < this.ports.length; i++) {
			const port = this.ports[(start + i) % this.ports.length];
			try {
				const res = await fetch(`http://127.0.0.1:${port}${url}`, {
					method,
					headers: {
						Authorization: `Bearer ${this.token}`,
						"Content-Type": "application/json",
						...headers
					},
					body: body === undefined ? undefined : JSON.stringify(body),
					signal: AbortSignal.timeout(Math.max(1, REQUEST_TIMEOUT_MS - (Date.now() - at)))
				});
				const json = await res.json().catch(() => null);
				return {
					status: res.status,
					json,
					retryAfter: Number(res.headers.get("retry-after")) || 0
				};
			} catch (err) {
				// Refused: that gateway is down, and the request never reached it.
				const code = (err as { cause?: { code?: string } }).cause?.code;
				if (code !== "ECONNREFUSED") break;
			}
		}
		return { status: 0, json: null, retryAfter: 0 };
	}
}

/** Config keys the writes go round: the store stays the same size however long the soak. */
const CONFIG_KEYS = 30;
/** ms after a create's answer that its workload is deleted again. */
const DELETE_AFTER_MS = 5000;

/**
 * Mixed load for `seconds` at RATE/s, in a steady state (the store does not grow): of every 10
 * requests 6 reads, 3 config writes over CONFIG_KEYS keys, 1 create of a workload that waits
 * for capacity no node has (a write, no process), deleted again DELETE_AFTER_MS later.
 */
async function load(client: Client, seconds: number, tag: string): Promise<Outcome[]> {
	const sent: Promise<Outcome>[] = [];
	const deletes: Promise<Outcome>[] = [];
	const start = Date.now();
	const reads = [
		"/api/v1/nodes",
		"/api/v1/workloads?limit=20",
		"/api/v1/alerts",
		"/api/v1/config"
	];
	const remove = (id: string, name: string) =>
		client.send("delete", "DELETE", `/api/v1/workloads/${id}`).then(r => ({
			...r.outcome,
			deleted: r.status < 300 || r.status === 404 ? name : undefined
		}));
	for (let i = 0; Date.now() - start < seconds * 1000; i++) {
		const wait = start + (i * 1000) / RATE - Date.now();
		if (wait > 0) await new Promise(r => setTimeout(r, wait));
		const pick = i % 10;
		if (pick < 6) {
			sent.push(client.send("read", "GET", reads[i % reads.length]).then(r => r.outcome));
		} else if (pick < 9) {
			const key = `soak.${tag}.${i % CONFIG_KEYS}`;
			sent.push(
				client
					.send("config write", "PUT", `/api/v1/config/${key}`, { value: i })
					.then(r => ({
						...r.outcome,
						configured: { key, value: i, acked: r.status === 200 || r.status === 201 }
					}))
			);
		} else {
			const name = `soak-${tag}-${i}`;
			const body = {
				name,
				kind: "process",
				process: { command: process.execPath, args: ["-e", "0"] },
				resources: { cpu: 1000, memory: "1Gi" }
			};
			sent.push(
				client
					.send("create", "POST", "/api/v1/workloads", body, { "Idempotency-Key": name })
					.then(r => {
						const id = (r.json as { id?: string } | null)?.id;
						const acked = (r.status === 201 || r.status === 200) && id !== undefined;
						if (acked)
							deletes.push(
								new Promise(done => setTimeout(done, DELETE_AFTER_MS)).then(() =>
									remove(id, name)
								)
							);
						return { ...r.outcome, created: acked ? { name, id } : undefined };
					})
			);
		}
	}
	const outcomes = await Promise.all(sent);
	return [...outcomes, ...(await Promise.all(deletes))];
}

/**
 * The longest outage seen by one kind of request: from a failed request (by send time) to the
 * next one of its kind answered correctly. Reads the gateway answers from memory (the node
 * list) go on through a store failover while writes wait for it, so kinds are apart.
 */
function longestOutage(outcomes: Outcome[]): number {
	let longest = 0;
	for (const kind of new Set(outcomes.map(o => o.kind))) {
		const sorted = outcomes.filter(o => o.kind === kind).sort((a, b) => a.at - b.at);
		let since: number | null = null;
		for (const o of sorted) {
			if (!o.ok) since ??= o.at;
			else if (since !== null) {
				longest = Math.max(longest, o.at - since);
				since = null;
			}
		}
		if (since !== null) longest = Math.max(longest, sorted[sorted.length - 1].at - since);
	}
	return longest;
}

function summarize(
	phase: AvailabilityRow["phase"],
	seconds: number,
	outcomes: Outcome[],
	faults: Fault[],
	problems: string[]
): AvailabilityRow {
	const stats = latencyStats(outcomes.filter(o => o.ok).map(o => o.ms));
	const failuresBy: Record<string, number> = {};
	for (const o of outcomes) {
		if (o.ok) continue;
		const fault = [...faults]
			.reverse()
			.find(f => f.at <= o.at && o.at <= f.at + (DOWN_S + 15) * 1000);
		const key = `${fault ? fault.what : "no fault"} ${o.kind} ${o.status || ""} ${o.error}`;
		failuresBy[key] = (failuresBy[key] ?? 0) + 1;
	}
	return {
		phase,
		seconds,
		requests: outcomes.length,
		correct: outcomes.filter(o => o.ok).length,
		correctRetried: outcomes.filter(o => o.okRetried).length,
		p50Ms: stats.p50Ms,
		p99Ms: stats.p99Ms,
		longestOutageMs: longestOutage(outcomes),
		faults,
		failuresBy,
		problems
	};
}

interface Soak {
	cluster: FaultCluster;
	nats: TestServer[];
	redis: TestServer[];
	sentinels: TestServer[];
	ports: number[];
	dir: string;
}

async function ask<T>(port: number, ...args: [string, ...(string | number)[]]): Promise<T> {
	const c = new Redis({ host: "127.0.0.1", port, lazyConnect: true, maxRetriesPerRequest: 0 });
	try {
		await c.connect();
		return (await c.call(...args)) as T;
	} finally {
		c.disconnect();
	}
}

async function startSoak(): Promise<Soak> {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), "isa-availability-"));
	const nats = await startNatsCluster(3, dir);
	const primary = await startRedis();
	const replicas = await Promise.all(
		[1, 2].map(() => startRedis(undefined, { replicaOf: primary.port }))
	);
	const redis = [primary, ...replicas];
	await eventually(
		async () =>
			(await ask<string>(primary.port, "INFO", "replication")).includes("connected_slaves:2"),
		10_000,
		"two Redis replicas in sync"
	);
	const { sentinels, url } = await startSentinels(3, primary.port, PRIMARY, dir);
	await eventually(
		async () =>
			(
				await Promise.all(
					sentinels.map(s => ask<unknown[]>(s.port, "SENTINEL", "REPLICAS", PRIMARY))
				)
			).every(r => r.length === 2),
		20_000,
		"every sentinel knowing both replicas"
	);
	const cluster = await faultCluster({
		name: "availability",
		agents: ["soak-agent-1", "soak-agent-2"],
		env: {
			TRANSPORTER: nats.map(s => s.url).join(","),
			STORE: url,
			ISA_REDIS_WAIT_REPLICAS: "1",
			// The soak's own load is one tenant at 20 requests/s: far from any limit.
			ISA_RATE_READS: "100000",
			ISA_RATE_WRITES: "100000"
		}
	});
	const second = await freePort();
	cluster.nodes.set(
		"control-2",
		startNode("control-2", { ...cluster.controlEnv, PORT: String(second) })
	);
	const ports = [cluster.port, second];
	await cluster.readyAgents(2, 60_000);
	for (const port of ports)
		await eventually(
			async () =>
				(
					await fetch(`http://127.0.0.1:${port}/api/v1/nodes`, {
						headers: { Authorization: `Bearer ${cluster.token}` }
					})
				).status === 200,
			30_000,
			`the gateway on ${port}`
		);
	return { cluster, nats, redis, sentinels, ports, dir };
}

/** The chaos schedule: one fault every CHAOS_EVERY_S, in turn, each undone DOWN_S later. */
async function chaos(soak: Soak, seconds: number, faults: Fault[]): Promise<void> {
	const kinds: Fault["what"][] = ["control", "nats", "redis"];
	const start = Date.now();
	const restarts: Promise<void>[] = [];
	for (let n = 0; (n + 1) * CHAOS_EVERY_S < seconds; n++) {
		const due = start + (n + 1) * CHAOS_EVERY_S * 1000 - Date.now();
		if (due > 0) await new Promise(r => setTimeout(r, due));
		const what = kinds[n % kinds.length];
		const later = (fn: () => Promise<void>) =>
			restarts.push(new Promise(r => setTimeout(r, DOWN_S * 1000)).then(fn));
		if (what === "control") {
			const id = Math.floor(n / kinds.length) % 2 === 0 ? "control" : "control-2";
			const node = soak.cluster.nodes.get(id)!;
			const env =
				id === "control"
					? soak.cluster.controlEnv
					: { ...soak.cluster.controlEnv, PORT: String(soak.ports[1]) };
			faults.push({ at: Date.now(), what, target: id });
			await node.kill();
			later(async () => void soak.cluster.nodes.set(id, startNode(id, env)));
		} else if (what === "nats") {
			// Each kind's faults go round its targets: n / kinds is this kind's count so far.
			const server = soak.nats[Math.floor(n / kinds.length) % soak.nats.length];
			faults.push({ at: Date.now(), what, target: `nats :${server.port}` });
			await server.stop();
			later(() => server.restart());
		} else {
			const [, port] = await ask<string[]>(
				soak.sentinels[0].port,
				"SENTINEL",
				"GET-MASTER-ADDR-BY-NAME",
				PRIMARY
			);
			const server = soak.redis.find(s => s.port === Number(port))!;
			faults.push({ at: Date.now(), what, target: `redis primary :${port}` });
			await server.stop();
			later(() => server.restart());
		}
		console.log(
			`  ${new Date().toISOString().slice(11, 19)} killed ${faults[faults.length - 1].target}`
		);
	}
	await Promise.all(restarts);
}

/** What must hold at the end: every acknowledged write there once, replicas agreeing. */
async function check(soak: Soak, outcomes: Outcome[], watcher: Watcher): Promise<string[]> {
	const problems: string[] = [];
	const { cluster } = soak;
	const final = await cluster.agreement(REPLICAS, 60_000).catch(async (err: Error) => {
		problems.push(`${err.message}\n${await askGateways(soak)}\n${keepLogs(soak)}`);
		return null;
	});
	watcher.stop();
	if (final && watcher.restarted().length)
		problems.push(`replicas restarted: ${watcher.restarted().join(", ")}`);
	if (watcher.maxCopies() > 1)
		problems.push(`a replica ran ${watcher.maxCopies()} times at once`);
	const stored = await cluster.store.list<{ name: string }>(COLLECTIONS.workloads);
	const names = new Map<string, number>();
	for (const d of stored) names.set(d.value.name, (names.get(d.value.name) ?? 0) + 1);
	const deleted = new Set(outcomes.flatMap(o => (o.deleted ? [o.deleted] : [])));
	const created = outcomes.flatMap(o => (o.created ? [o.created] : []));
	const lost = created.filter(c => !deleted.has(c.name) && !names.has(c.name));
	const back = created.filter(c => deleted.has(c.name) && names.has(c.name));
	const twice = [...names].filter(([, count]) => count > 1);
	if (lost.length)
		problems.push(
			`${lost.length} acknowledged creates lost (${lost
				.slice(0, 3)
				.map(c => c.name)
				.join(", ")})`
		);
	if (back.length) problems.push(`${back.length} acknowledged deletes undone (${back[0].name})`);
	if (twice.length) problems.push(`${twice.length} workloads stored twice (${twice[0][0]})`);
	// A key holds its last acknowledged value, or that of a later write (one whose answer was
	// lost may still have been made).
	const config = await cluster.store.list<{ value: unknown }>(COLLECTIONS.config);
	const values = new Map(config.map(d => [d.id, d.value.value]));
	const writes = outcomes.flatMap(o => (o.configured ? [o.configured] : []));
	let wrong = 0;
	for (const key of new Set(writes.map(w => w.key))) {
		const ofKey = writes.filter(w => w.key === key).sort((a, b) => a.value - b.value);
		const lastAcked = ofKey.filter(w => w.acked).at(-1);
		if (!lastAcked) continue;
		const value = values.get(key);
		if (!ofKey.some(w => w.value >= lastAcked.value && w.value === value)) wrong++;
	}
	if (wrong) problems.push(`${wrong} config keys lost their last acknowledged write`);
	// Correct answers, but not to what the soak asks: its token or address was refused.
	const refused = outcomes.filter(o => o.status === 401 || o.status === 403 || o.status === 429);
	if (refused.length)
		problems.push(
			`${refused.length} requests refused (401, 403 or 429): the soak measured refusals`
		);
	return problems;
}

/** What each gateway answers to the list the end check reads, for a soak that went wrong. */
async function askGateways(soak: Soak): Promise<string> {
	const answers = await Promise.all(
		soak.ports.map(async port => {
			try {
				const res = await fetch(`http://127.0.0.1:${port}/api/v1/workloads?limit=1000`, {
					headers: { Authorization: `Bearer ${soak.cluster.token}` },
					signal: AbortSignal.timeout(5000)
				});
				return `:${port} ${res.status} ${(await res.text()).slice(0, 300)}`;
			} catch (err) {
				return `:${port} ${(err as Error).message}`;
			}
		})
	);
	return `the gateways: ${answers.join(" | ")}`;
}

/** Writes every node's output to a directory of its own, for a soak that went wrong. */
function keepLogs(soak: Soak): string {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), "isa-availability-logs-"));
	for (const [id, node] of soak.cluster.nodes)
		fs.writeFileSync(path.join(dir, `${id}.log`), node.output());
	return `the nodes' output: ${dir}`;
}

async function stopSoak(soak: Soak | null): Promise<void> {
	if (!soak) return;
	await soak.cluster.close();
	await Promise.all([...soak.sentinels, ...soak.redis, ...soak.nats].map(s => s.stop()));
	fs.rmSync(soak.dir, { recursive: true, force: true });
}

export async function run(): Promise<AvailabilityRow[]> {
	let soak: Soak | null = null;
	try {
		soak = await startSoak();
		const workload = await soak.cluster.sleeper("soak", REPLICAS, {
			placement: { strategy: "spread" }
		});
		await soak.cluster.agreement(REPLICAS, 60_000);
		const client = new Client(soak.ports, soak.cluster.token);
		console.log(`  cluster up (workload ${workload}); ${BASELINE_SECONDS} s without faults…`);
		const baseline = await load(client, BASELINE_SECONDS, "base");
		const watcher = new Watcher(soak.cluster, 500).start();
		console.log(`  ${SECONDS} s of chaos, a fault every ${CHAOS_EVERY_S} s…`);
		const faults: Fault[] = [];
		const [outcomes] = await Promise.all([
			load(client, SECONDS, "chaos"),
			chaos(soak, SECONDS, faults)
		]);
		console.log("  checking what the cluster kept…");
		const problems = await check(soak, [...baseline, ...outcomes], watcher);
		return [
			summarize("no faults", BASELINE_SECONDS, baseline, [], []),
			summarize("chaos", SECONDS, outcomes, faults, problems)
		];
	} finally {
		await stopSoak(soak);
	}
}

const pct = (row: AvailabilityRow) => (100 * row.correct) / Math.max(1, row.requests);
const pctRetried = (row: AvailabilityRow) => (100 * row.correctRetried) / Math.max(1, row.requests);

export function table(rows: AvailabilityRow[]): string {
	const base = rows.find(r => r.phase === "no faults")!;
	const lines = [
		"| phase | s | requests | answered correctly | share | vs no faults | following Retry-After | P50 ms | P99 ms | P99 vs no faults | longest outage of one kind, ms | faults |",
		"|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
	];
	for (const r of rows) {
		const kinds = ["control", "nats", "redis"]
			.map(k => `${k} ×${r.faults.filter(f => f.what === k).length}`)
			.join(", ");
		lines.push(
			`| ${r.phase} | ${r.seconds} | ${r.requests} | ${r.correct} | ${pct(r).toFixed(3)}% | ${(pct(r) / pct(base)).toFixed(4)} | ${pctRetried(r).toFixed(3)}% | ${r.p50Ms.toFixed(1)} | ${r.p99Ms.toFixed(1)} | ${(r.p99Ms / base.p99Ms).toFixed(2)} | ${r.longestOutageMs} | ${r.faults.length ? kinds : "none"} |`
		);
	}
	const chaosRow = rows.find(r => r.phase === "chaos")!;
	const failures = Object.entries(chaosRow.failuresBy).sort((a, b) => b[1] - a[1]);
	if (failures.length)
		lines.push(
			"",
			"Failed requests during chaos: " + failures.map(([k, n]) => `${k}: ${n}`).join("; ")
		);
	lines.push(
		"",
		chaosRow.problems.length
			? `At the end: ${chaosRow.problems.join("; ")}`
			: "At the end: every acknowledged create and config write kept once; API, processes and store agree; no replica restarted or ran twice."
	);
	return lines.join("\n");
}

export function verdict(rows: AvailabilityRow[]): string[] {
	const chaosRow = rows.find(r => r.phase === "chaos")!;
	const misses: string[] = [];
	if (pct(chaosRow) < TARGET * 100)
		misses.push(
			`${pct(chaosRow).toFixed(3)}% of requests answered correctly under chaos (target ${TARGET * 100}%)`
		);
	misses.push(...chaosRow.problems);
	return misses;
}
