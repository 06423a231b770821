/**
 * The fault suite's harness: a cluster of real processes (a control node and agents, over a
 * nats-server and a redis-server of the suite's own), and a watcher that samples, every 250 ms,
 * the three sides of the truth: what the API says runs, the replica processes the OS runs
 * (/proc), and the store's placement records. A scenario faults the cluster, lets the watcher
 * record what happened, and ends with `agreement()`: the three sides say the same.
 */
import fs from "fs";
import os from "os";
import path from "path";
import { RedisStore } from "../../services/shared/store";
import { COLLECTIONS } from "../../services/shared/collections";
import type { Workload } from "../../services/scheduler/workload";
import {
	ClusterFixture,
	clusterFixture,
	eventually,
	NodeProcess,
	ROOT,
	startNode
} from "../helpers/cluster";
import type { RedisOptions } from "../helpers/servers";

/** A replica process as the OS shows it: its workload and replica from its environment, its
 * node from its working directory (<dataDir>/workloads/<node>/<workload>/<replica>). */
export interface ReplicaProcess {
	pid: number;
	workloadId: string;
	replica: number;
	node: string;
}

/** The replica processes of this machine that carry `marker` among their arguments. */
export function replicaProcesses(marker: string): ReplicaProcess[] {
	const found: ReplicaProcess[] = [];
	for (const entry of fs.readdirSync("/proc")) {
		if (!/^\d+$/.test(entry)) continue;
		try {
			const stat = fs.readFileSync(`/proc/${entry}/stat`, "utf8");
			if (/\) Z /.test(stat)) continue; // a zombie has ended, only not yet been reaped
			const argv = fs.readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0");
			if (argv[0] !== process.execPath || !argv.includes(marker)) continue;
			const env = Object.fromEntries(
				fs
					.readFileSync(`/proc/${entry}/environ`, "utf8")
					.split("\0")
					.filter(Boolean)
					.map(kv => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)])
			);
			const cwd = fs.readlinkSync(`/proc/${entry}/cwd`).split(path.sep);
			found.push({
				pid: Number(entry),
				workloadId: env.ISA_WORKLOAD_ID,
				replica: Number(env.ISA_REPLICA),
				node: cwd[cwd.length - 3]
			});
		} catch {
			// The process ended while we looked.
		}
	}
	return found;
}

/** One look at the three sides. */
export interface Sample {
	at: number;
	/** "workloadId/replica" → node, for replicas the API says run. */
	api: Map<string, string> | null;
	/** "workloadId/replica" → the processes running it. */
	procs: Map<string, ReplicaProcess[]>;
	/** "workloadId/replica" → node, for replicas the store has placed. */
	store: Map<string, string> | null;
}

const slot = (workloadId: string, replica: number) => `${workloadId}/${replica}`;

export interface FaultCluster extends ClusterFixture {
	nodes: Map<string, NodeProcess>;
	/** Every replica process of this suite carries it (see `sleeper`). */
	marker: string;
	agentEnv: Record<string, string>;
	controlEnv: Record<string, string>;
	startAgent(id: string, env?: Record<string, string>): NodeProcess;
	/** A process workload whose replicas sleep until stopped; resolves to its id. */
	sleeper(name: string, replicas: number, extra?: Record<string, unknown>): Promise<string>;
	/** The store as the cluster sees it, for its placement records. */
	store: RedisStore;
	sample(): Promise<Sample>;
	/** Waits until the API, the OS and the store agree that `expected` replicas run. */
	agreement(expected: number, timeoutMs?: number): Promise<Sample>;
	/** Waits until the inventory has `count` nodes `ready`. */
	readyAgents(count: number, timeoutMs?: number): Promise<void>;
	close(): Promise<void>;
}

export async function faultCluster(opts: {
	name: string;
	agents: string[];
	/** Simulated capacity of each agent. */
	capacity?: Record<string, unknown>;
	env?: Record<string, string>;
	/** How the suite's redis-server keeps its data (default: nothing on disk). */
	redis?: RedisOptions;
}): Promise<FaultCluster> {
	const secret = `${opts.name}-secret`;
	// A data directory of the cluster's own: agents of other suites may bear the same node ids,
	// and an agent keeps its node's replica records there (node-agent/runner/adoption.ts).
	const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), `isa-fault-${opts.name}-`));
	const fixture = await clusterFixture({
		name: opts.name,
		secret,
		token: { sub: "admin", tenant: "lab", roles: ["admin"] },
		env: { LOGLEVEL: "warn", ISA_DATA_DIR: dataDir, ...opts.env },
		redis: opts.redis
	});
	const marker = `isa-fault-${opts.name}-${process.pid}`;
	const common = fixture.common;
	const agentEnv = {
		...common,
		SERVICES: "agent",
		ISA_ALLOWED_COMMANDS: process.execPath,
		ISA_SERVICE_DIRS: path.join(ROOT, "test/fixtures/workloads"),
		ISA_NODE_CAPACITY: JSON.stringify(opts.capacity ?? { cpu: 8, memory: "16Gi", gpus: 4 })
	};
	const controlEnv = {
		...common,
		// The audit service too: the gateway refuses every mutation without it (fail closed).
		SERVICES: "nodes,scheduler,tenants,registry,config,monitor,audit,gateway",
		PORT: String(fixture.port)
	};
	const nodes = new Map<string, NodeProcess>();
	nodes.set("control", startNode("control", controlEnv));
	const startAgent = (id: string, env: Record<string, string> = {}) => {
		const node = startNode(id, { ...agentEnv, ...env });
		nodes.set(id, node);
		return node;
	};
	for (const id of opts.agents) startAgent(id);
	// The cluster's STORE (`env` may name another than the fixture's own redis-server).
	const store = new RedisStore(common.STORE, { prefix: common.NAMESPACE });

	const cluster: FaultCluster = {
		...fixture,
		nodes,
		marker,
		agentEnv,
		controlEnv,
		startAgent,
		store,

		async sleeper(name, replicas, extra = {}) {
			// Set-up, not what a scenario measures: a 503 (a store still settling, say a WAIT
			// that timed out on a busy machine) is sent again after a second, with the same key.
			const create = () =>
				fixture.api("/api/v1/workloads", {
					method: "POST",
					headers: { "Idempotency-Key": `sleeper-${name}-${marker}` },
					body: JSON.stringify({
						name,
						kind: "process",
						process: {
							command: process.execPath,
							args: ["-e", "setInterval(() => {}, 1000)", marker]
						},
						resources: { cpu: 1, memory: "1Gi" },
						replicas,
						...extra
					})
				});
			let res = await create();
			for (let attempt = 1; res.status === 503 && attempt < 5; attempt++) {
				await new Promise(r => setTimeout(r, 1000));
				res = await create();
			}
			if (res.status !== 201 && res.status !== 200)
				throw new Error(`creating ${name}: ${res.status} ${JSON.stringify(res.body)}`);
			return res.body.id as string;
		},

		async sample() {
			const at = Date.now();
			const procs = new Map<string, ReplicaProcess[]>();
			for (const p of replicaProcesses(marker))
				procs.set(slot(p.workloadId, p.replica), [
					...(procs.get(slot(p.workloadId, p.replica)) ?? []),
					p
				]);
			let api: Map<string, string> | null = null;
			try {
				const res = await fixture.api("/api/v1/workloads?limit=1000");
				if (res.status === 200) {
					api = new Map();
					for (const w of res.body.items as Workload[])
						for (const r of w.replicas)
							if (r.state === "running" && r.node)
								api.set(slot(w.id, r.index), r.node);
				}
			} catch {
				// The gateway is down or unreachable: this side is unknown in this sample.
			}
			let placed: Map<string, string> | null = new Map();
			try {
				for (const doc of await store.list<Workload>(COLLECTIONS.workloads))
					for (const r of doc.value.replicas)
						if (r.node) placed.set(slot(doc.value.id, r.index), r.node);
			} catch {
				placed = null;
			}
			return { at, api, procs, store: placed };
		},

		async agreement(expected, timeoutMs = 20_000) {
			let last: Sample | null = null;
			try {
				return await eventually(
					async () => {
						last = await cluster.sample();
						return agrees(last, expected) ? last : null;
					},
					timeoutMs,
					`API, processes and store agreeing on ${expected} replicas`
				);
			} catch (err) {
				throw new Error(`${(err as Error).message}\nlast sample: ${describe(last)}`, {
					cause: err
				});
			}
		},

		async readyAgents(count, timeoutMs = 30_000) {
			await eventually(
				async () => (await fixture.api("/api/v1/nodes?status=ready")).body.total === count,
				timeoutMs,
				`${count} ready agent(s)`
			);
		},

		async close() {
			await Promise.all([...nodes.values()].map(n => n.stop()));
			await store.close();
			await fixture.stop();
			fs.rmSync(dataDir, { recursive: true, force: true });
		}
	};
	return cluster;
}

/** Whether every running replica runs exactly once, where the API and the store say it does. */
export function agrees(s: Sample, expected: number): boolean {
	if (!s.api || !s.store || s.api.size !== expected || s.procs.size !== expected) return false;
	for (const [key, node] of s.api) {
		const procs = s.procs.get(key) ?? [];
		if (procs.length !== 1 || procs[0].node !== node || s.store.get(key) !== node) return false;
	}
	return true;
}

export function describe(s: Sample | null): string {
	if (!s) return "none";
	const show = (m: Map<string, unknown> | null) =>
		m ? JSON.stringify(Object.fromEntries(m)) : "unknown";
	return `api=${show(s.api)} store=${show(s.store)} procs=${JSON.stringify(
		Object.fromEntries([...s.procs].map(([k, ps]) => [k, ps.map(p => `${p.node}:${p.pid}`)]))
	)}`;
}

/**
 * Samples every `intervalMs` until stopped: what a scenario measures (copies at once, PIDs
 * that changed, when a side changed) is read from the samples afterwards.
 */
export class Watcher {
	readonly samples: Sample[] = [];
	private timer: NodeJS.Timeout | null = null;
	private busy = false;

	constructor(
		private readonly cluster: Pick<FaultCluster, "sample">,
		private readonly intervalMs = 250
	) {}

	start(): this {
		this.timer = setInterval(() => {
			if (this.busy) return;
			this.busy = true;
			void this.cluster
				.sample()
				.then(s => this.samples.push(s))
				.finally(() => (this.busy = false));
		}, this.intervalMs);
		// A scenario that fails before stop() must not keep jest from exiting.
		this.timer.unref();
		return this;
	}

	stop(): Sample[] {
		if (this.timer) clearInterval(this.timer);
		this.timer = null;
		return this.samples;
	}

	/** The most processes that ran one replica at the same time. */
	maxCopies(): number {
		return Math.max(0, ...this.samples.flatMap(s => [...s.procs.values()].map(p => p.length)));
	}

	/** The PIDs seen, per replica: more than one means it was restarted or ran twice. */
	pids(): Map<string, Set<number>> {
		const seen = new Map<string, Set<number>>();
		for (const s of this.samples)
			for (const [key, procs] of s.procs)
				for (const p of procs) seen.set(key, (seen.get(key) ?? new Set()).add(p.pid));
		return seen;
	}

	/** Replicas the processes of which changed while watched. */
	restarted(): string[] {
		return [...this.pids()].filter(([, pids]) => pids.size > 1).map(([key]) => key);
	}
}
