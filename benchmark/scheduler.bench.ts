/**
 * Scheduler suite: 5,000 simulated nodes (40% CPU-only, 30% with 1 GPU, 20% with 2, 10% with 8;
 * H100 and A100 models; three zones) take BENCH_PLACEMENTS placements (default 1,000,000)
 * through the Reserver (services/scheduler/reservations.ts): placed with the PlacementIndex and
 * committed with version checks, in group commits, to the embedded SQLite store (a temp file)
 * and to Redis.
 *
 * Requests mix small CPU-only work, 1, 2 and 8 whole GPUs, shared GPU memory and node selectors
 * (zone, GPU model), mostly binpack and some spread. Whenever the CPU or GPU in use passes 80%,
 * a random earlier placement is released (beside the next request, in its batch), so the
 * cluster stays busy without filling up; a request that finds no room releases one too and is
 * not counted. Only committed reservations count; a placement's latency runs from the request
 * to its commit, waiting for its batch included. BENCH_CONCURRENCY callers (default 512) each
 * wait for their answer before asking again, as the scheduler's callers do; BENCH_MAX_BATCH
 * overrides the Reserver's batch size. At the end the store must add up: every node's
 * allocation is the sum of its placement records and within its capacity.
 *
 * Each scenario runs in a child process of its own, so that its peak memory (RSS and heap,
 * sampled every 50 ms) is the scheduler's alone. The baseline, measured in the same run: the
 * same placements in memory with `referencePlace()`, which scans every node (BENCH_BASELINE of
 * them, default 2,000, since it is slow), and with the index alone.
 * Targets: at least 20,000 placements/s with the embedded store, 5,000/s with Redis.
 */
import { fork } from "child_process";
import fs from "fs";
import os from "os";
import path from "path";
import { performance } from "perf_hooks";
import { COLLECTIONS } from "../services/shared/collections";
import { RedisStore } from "../services/shared/store/redis";
import { SqliteStore } from "../services/shared/store/sqlite";
import type { Store } from "../services/shared/store/store";
import type { GpuCapacity } from "../services/shared/types";
import {
	Allocation,
	emptyAllocation,
	PlacementNode,
	PlacementRequest,
	release,
	reserve
} from "../services/scheduler/placement";
import { referencePlace } from "../services/scheduler/placement/reference";
import { PlacementIndex } from "../services/scheduler/placement-index";
import {
	InventoryNode,
	PLACEMENTS,
	PlacementRecord,
	Reserver
} from "../services/scheduler/reservations";
import { ServiceBroker } from "moleculer";
import SchedulerService from "../services/scheduler.service";
import { audit } from "../services/scheduler/assign";
import { replicaKey, type Workload } from "../services/scheduler/workload";
import type { ResourceRequest } from "../services/shared/types";
import { startRedis } from "../test/helpers/servers";
import { withSettings } from "../test/helpers/services";

const GiB = 1024 ** 3;
const NODES = 5000;
const PLACEMENTS_WANTED = Number(process.env.BENCH_PLACEMENTS ?? 1_000_000);
const BASELINE = Number(process.env.BENCH_BASELINE ?? 2000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 512);
/** The Reserver's group commit size (its default unless set). */
const MAX_BATCH = process.env.BENCH_MAX_BATCH ? Number(process.env.BENCH_MAX_BATCH) : undefined;
/** Release before placing while CPU or GPU use is above this share. */
const THRESHOLD = 0.8;
/** The targets are the scheduler service's: its own path, rounds and workload writes included. */
const TARGETS: Record<string, number> = { "service-sqlite": 20_000, "service-redis": 5_000 };
/** Replicas per workload in the service scenarios. */
const REPLICAS = Number(process.env.BENCH_REPLICAS ?? 50);

type Scenario = "scan" | "index" | "sqlite" | "redis" | "service-sqlite" | "service-redis";

export interface SchedulerRow {
	scenario: Scenario;
	placements: number;
	releases: number;
	/** Requests that found no room (not counted as placements). */
	unplaced: number;
	seconds: number;
	perSecond: number;
	p50Ms: number;
	p99Ms: number;
	peakRssMiB: number;
	peakHeapMiB: number;
	transactions: number;
	conflicts: number;
	/** The store's allocations equal its placements' sum, and no node is over capacity. */
	consistent: boolean | null;
}

const LABELS: Record<Scenario, string> = {
	scan: "baseline: place() scan, in memory",
	index: "PlacementIndex, in memory",
	sqlite: "Reserver alone, embedded store",
	redis: "Reserver alone, Redis",
	"service-sqlite": "scheduler service, embedded store",
	"service-redis": "scheduler service, Redis"
};

/** mulberry32: the same cluster and requests in every scenario and run. */
function rng(seed: number): () => number {
	let a = seed >>> 0;
	return () => {
		a = (a + 0x6d2b79f5) >>> 0;
		let t = a;
		t = Math.imul(t ^ (t >>> 15), t | 1);
		t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
		return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
	};
}

function cluster(): InventoryNode[] {
	const models = ["NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-80GB"];
	const cards = (id: string, n: number, model: string): GpuCapacity[] =>
		Array.from({ length: n }, (_, index) => ({
			index,
			uuid: `GPU-${id}-${index}`,
			model,
			memory: 80 * GiB
		}));
	return Array.from({ length: NODES }, (_, i) => {
		const id = `node-${String(i).padStart(4, "0")}`;
		const share = i % 10;
		const [cpu, memory, gpus] =
			share < 4
				? [32, 128, 0]
				: share < 7
					? [16, 128, 1]
					: share < 9
						? [32, 256, 2]
						: [96, 1024, 8];
		return {
			id,
			status: "ready",
			labels: { zone: `zone-${"abc"[i % 3]}` },
			capacity: { cpu, memory: memory * GiB, gpus: cards(id, gpus, models[(i >> 1) % 2]) }
		};
	});
}

const NO_AVOID: ReadonlySet<string> = new Set();

function request(
	cpu: number,
	memoryGiB: number,
	gpu = 0,
	gpuMemoryGiB = 0,
	more: Partial<PlacementRequest> = {}
): PlacementRequest {
	return {
		resources: { cpu, memory: memoryGiB * GiB, gpu, gpuMemory: gpuMemoryGiB * GiB },
		strategy: "binpack",
		nodeSelector: {},
		avoid: NO_AVOID,
		...more
	};
}

/** The request mix, by weight in percent. */
const MIX: [number, PlacementRequest][] = [
	[20, request(0.5, 1)],
	[15, request(1, 2)],
	[10, request(2, 4)],
	[5, request(1, 2, 0, 0, { strategy: "spread" })],
	[3, request(2, 8, 0, 0, { nodeSelector: { zone: "zone-b" } })],
	[13, request(4, 32, 1)],
	[4, request(4, 32, 1, 0, { nodeSelector: { "gpu.model": "H100" } })],
	[2, request(4, 32, 1, 0, { strategy: "spread" })],
	[7, request(8, 64, 2)],
	[1, request(32, 256, 8)],
	[12, request(1, 8, 0, 10)],
	[8, request(2, 16, 0, 20, { nodeSelector: { zone: "zone-a" } })]
];

function picker(random: () => number): () => PlacementRequest {
	const table: PlacementRequest[] = [];
	for (const [weight, r] of MIX) for (let i = 0; i < weight; i++) table.push(r);
	return () => table[Math.floor(random() * table.length)];
}

/** Replica keys as the scheduler makes them, REPLICAS to a workload (allocations count by workload). */
function keyOf(seq: number): string {
	return replicaKey(`w${Math.floor(seq / REPLICAS)}`, seq % REPLICAS, 1);
}

/** What the simulated callers hold: to release at random, and to know how busy the cluster is. */
class Load {
	private readonly keys: string[] = [];
	private readonly reqs: PlacementRequest[] = [];
	private cpu = 0;
	private gpu = 0;
	private readonly totalCpu: number;
	private readonly totalGpu: number;

	constructor(
		nodes: InventoryNode[],
		private readonly random: () => number
	) {
		this.totalCpu = nodes.reduce((s, n) => s + n.capacity.cpu, 0);
		this.totalGpu = nodes.reduce((s, n) => s + n.capacity.gpus.length, 0);
	}

	get size(): number {
		return this.keys.length;
	}

	busy(): boolean {
		return this.cpu > THRESHOLD * this.totalCpu || this.gpu > THRESHOLD * this.totalGpu;
	}

	add(key: string, r: PlacementRequest): void {
		this.keys.push(key);
		this.reqs.push(r);
		this.count(r, 1);
	}

	/** Takes a random held placement out (swap-remove). */
	take(): string {
		const i = Math.floor(this.random() * this.keys.length);
		const key = this.keys[i];
		const r = this.reqs[i];
		this.keys[i] = this.keys[this.keys.length - 1];
		this.reqs[i] = this.reqs[this.reqs.length - 1];
		this.keys.pop();
		this.reqs.pop();
		this.count(r, -1);
		return key;
	}

	private count(r: PlacementRequest, sign: number): void {
		this.cpu += sign * r.resources.cpu;
		this.gpu += sign * (r.resources.gpu + r.resources.gpuMemory / (80 * GiB));
	}
}

class Memory {
	rss = 0;
	heap = 0;
	private timer?: NodeJS.Timeout;

	start(): void {
		this.sample();
		this.timer = setInterval(() => this.sample(), 50);
		this.timer.unref();
	}

	stop(): void {
		clearInterval(this.timer);
		this.sample();
	}

	private sample(): void {
		const m = process.memoryUsage();
		this.rss = Math.max(this.rss, m.rss);
		this.heap = Math.max(this.heap, m.heapUsed);
	}
}

function quantile(sorted: Float64Array, q: number): number {
	return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : 0;
}

function row(
	scenario: Scenario,
	latencies: Float64Array,
	seconds: number,
	memory: Memory,
	extra: Partial<SchedulerRow>
): SchedulerRow {
	const sorted = latencies.slice().sort();
	return {
		scenario,
		placements: latencies.length,
		releases: 0,
		unplaced: 0,
		seconds,
		perSecond: latencies.length / seconds,
		p50Ms: quantile(sorted, 0.5),
		p99Ms: quantile(sorted, 0.99),
		peakRssMiB: memory.rss / 2 ** 20,
		peakHeapMiB: memory.heap / 2 ** 20,
		transactions: 0,
		conflicts: 0,
		consistent: null,
		...extra
	};
}

/** In memory, one placement at a time: with `referencePlace()` over every node, or the index. */
function inMemory(scenario: "scan" | "index", wanted: number): SchedulerRow {
	const memory = new Memory();
	memory.start();
	const random = rng(42);
	const nodes = cluster();
	const next = picker(random);
	const load = new Load(nodes, random);
	const byId = new Map<string, PlacementNode>(
		nodes.map(n => [n.id, { ...n, allocated: emptyAllocation() }])
	);
	const index = new PlacementIndex();
	for (const n of byId.values()) index.update(n);
	const held = new Map<string, { nodeID: string; gpus: number[]; r: PlacementRequest }>();
	const latencies = new Float64Array(wanted);
	let placed = 0;
	let releases = 0;
	let unplaced = 0;
	let seq = 0;
	const free = () => {
		const key = load.take();
		const h = held.get(key)!;
		held.delete(key);
		const n = byId.get(h.nodeID)!;
		const after = { ...n, allocated: release(n.allocated, key, h.r.resources, h.gpus) };
		byId.set(n.id, after);
		index.update(after);
		releases++;
	};
	const began = performance.now();
	while (placed < wanted) {
		while (load.busy()) free();
		const r = next();
		const key = keyOf(seq++);
		const t0 = performance.now();
		const spot = scenario === "scan" ? referencePlace(byId.values(), r) : index.place(r);
		if (spot) {
			const n = byId.get(spot.nodeID)!;
			const after = { ...n, allocated: reserve(n.allocated, key, r.resources, spot.gpus) };
			byId.set(n.id, after);
			index.update(after);
			latencies[placed++] = performance.now() - t0;
			held.set(key, { nodeID: n.id, gpus: spot.gpus, r });
			load.add(key, r);
		} else {
			unplaced++;
			if (load.size) free();
		}
	}
	const seconds = (performance.now() - began) / 1000;
	memory.stop();
	return row(scenario, latencies, seconds, memory, { releases, unplaced });
}

/**
 * The store's allocations are the sum of its placement records and within each node's
 * capacity: nothing over-committed, nothing lost between the Reserver and the store.
 */
async function consistent(store: Store, nodes: InventoryNode[]): Promise<boolean> {
	const [allocations, placements] = await Promise.all([
		store.list<Allocation>(COLLECTIONS.allocations),
		store.list<PlacementRecord>(PLACEMENTS)
	]);
	const sums = new Map<string, Allocation>();
	for (const p of placements) {
		const { nodeID, resources, gpus } = p.value;
		sums.set(nodeID, reserve(sums.get(nodeID) ?? emptyAllocation(), p.id, resources, gpus));
	}
	const stored = new Map(allocations.map(a => [a.id, a.value]));
	return nodes.every(n => {
		const a = stored.get(n.id) ?? emptyAllocation();
		const s = sums.get(n.id) ?? emptyAllocation();
		const gpusOk = Object.entries(a.gpus).every(([i, g]) => {
			const card = n.capacity.gpus[Number(i)];
			const want = s.gpus[Number(i)];
			return (
				card &&
				want &&
				g.exclusive === want.exclusive &&
				Math.abs(g.memory - want.memory) < 1 &&
				g.memory <= card.memory &&
				!(g.exclusive && g.memory)
			);
		});
		return (
			gpusOk &&
			Object.keys(a.gpus).length === Object.keys(s.gpus).length &&
			Math.abs(a.cpu - s.cpu) < 1e-6 &&
			Math.abs(a.memory - s.memory) < 1 &&
			a.cpu <= n.capacity.cpu + 1e-6 &&
			a.memory <= n.capacity.memory
		);
	});
}

/** Through the Reserver and a store, CONCURRENCY callers at a time. */
async function stored(scenario: "sqlite" | "redis", wanted: number): Promise<SchedulerRow> {
	const memory = new Memory();
	memory.start();
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), "isa-bench-scheduler-"));
	const store: Store =
		scenario === "sqlite"
			? new SqliteStore(path.join(dir, "store.db"))
			: new RedisStore(process.env.BENCH_REDIS_URL!, { prefix: `bench${process.pid}` });
	try {
		const random = rng(42);
		const nodes = cluster();
		const next = picker(random);
		const load = new Load(nodes, random);
		const reserver = new Reserver(store, { maxBatch: MAX_BATCH });
		await reserver.load(nodes);
		const latencies = new Float64Array(wanted);
		let placed = 0;
		let asked = 0;
		let releases = 0;
		let unplaced = 0;
		let seq = 0;
		// Releases go out beside the next request (in its batch) rather than before it: the
		// capacity they free is already there when that request is placed.
		let lost: unknown;
		const releasing = new Set<Promise<void>>();
		const free = () => {
			releases++;
			const done = reserver.release(load.take()).then(
				ok => {
					if (!ok) lost ??= new Error("A placement the benchmark held was not there.");
				},
				err => void (lost ??= err)
			);
			releasing.add(done);
			void done.finally(() => releasing.delete(done));
		};
		const caller = async () => {
			while (asked < wanted && !lost) {
				asked++;
				while (load.busy() && load.size) free();
				const r = next();
				const key = keyOf(seq++);
				const t0 = performance.now();
				const spot = await reserver.reserve(key, r);
				if (spot) {
					latencies[placed++] = performance.now() - t0;
					load.add(key, r);
				} else {
					asked--;
					if (++unplaced > wanted) throw new Error("The cluster stays full.");
					if (load.size) free();
				}
			}
		};
		const began = performance.now();
		await Promise.all(Array.from({ length: CONCURRENCY }, caller));
		await Promise.all(releasing);
		const seconds = (performance.now() - began) / 1000;
		if (lost) throw lost;
		memory.stop();
		return row(scenario, latencies.subarray(0, placed), seconds, memory, {
			releases,
			unplaced,
			transactions: reserver.stats.transactions,
			conflicts: reserver.stats.conflicts,
			consistent: await consistent(store, nodes)
		});
	} finally {
		await store.close();
		fs.rmSync(dir, { recursive: true, force: true });
	}
}

/**
 * Through the scheduler service itself, on a broker of its own: `scheduler.create` of workloads
 * of REPLICAS replicas each, CONCURRENCY / 8 callers at a time (each create waits for its
 * round), and `scheduler.remove` of a random held workload whenever the cluster is busy. The
 * inventory is a stub `nodes` service that lists the 5,000 nodes; the agents' syncs find no
 * agent and fail fast. Reconcile runs at its default interval. A placement's latency runs from
 * the scheduler's reservation request to its commit (the Reserver's part of a create).
 */
async function service(scenario: "service-sqlite" | "service-redis", wanted: number) {
	const memory = new Memory();
	memory.start();
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), "isa-bench-service-"));
	const store =
		scenario === "service-sqlite" ? path.join(dir, "store.db") : process.env.BENCH_REDIS_URL!;
	const nodes = cluster();
	const broker = new ServiceBroker({ nodeID: "bench", logger: false, metrics: false });
	broker.createService({
		name: "nodes",
		actions: { list: () => ({ items: nodes, total: nodes.length }) }
	});
	broker.createService(
		withSettings(SchedulerService, { store, storePrefix: `bench${process.pid}` })
	);
	try {
		await broker.start();
		const scheduler = broker.getLocalService("scheduler") as unknown as { reserver: Reserver };
		const reserver = scheduler.reserver;
		const latencies: number[] = [];
		const reserveTimed = reserver.reserve.bind(reserver);
		reserver.reserve = (key, req) => {
			const t0 = performance.now();
			return reserveTimed(key, req).then(spot => {
				if (spot) latencies.push(performance.now() - t0);
				return spot;
			});
		};
		const random = rng(42);
		const next = picker(random);
		const load = new Load(nodes, random);
		const meta = { user: { sub: "bench", tenant: "bench", roles: ["admin"] } };
		const held = new Map<string, PlacementRequest>();
		let creates = 0;
		let removes = 0;
		let seq = 0;
		const asGiB = (bytes: number) => `${bytes / GiB}Gi`;
		const remove = async () => {
			const key = load.take();
			held.delete(key);
			removes++;
			await broker.call("scheduler.remove", { id: key }, { meta });
		};
		const caller = async () => {
			while (latencies.length < wanted) {
				while (load.busy() && load.size) await remove();
				const r = next();
				const w = (await broker.call(
					"scheduler.create",
					{
						name: `w${seq++}`,
						kind: "process",
						process: { command: "sleep" },
						resources: {
							cpu: r.resources.cpu,
							memory: asGiB(r.resources.memory),
							gpu: r.resources.gpu,
							...(r.resources.gpuMemory
								? { gpuMemory: asGiB(r.resources.gpuMemory) }
								: {})
						},
						replicas: REPLICAS,
						placement: { strategy: r.strategy, nodeSelector: r.nodeSelector }
					},
					{ meta }
				)) as { id: string };
				creates++;
				held.set(w.id, r);
				// The load counts a workload as its replicas' sum, placed or waiting.
				load.add(w.id, { ...r, resources: scaled(r.resources, REPLICAS) });
			}
		};
		const began = performance.now();
		await Promise.all(Array.from({ length: Math.max(1, CONCURRENCY / 8) }, caller));
		const seconds = (performance.now() - began) / 1000;
		memory.stop();
		// Read the end state before stopping: the scheduler's store connection is the one open.
		const state = (scheduler as unknown as { store: Store }).store;
		{
			const consistentNow = (await consistent(state, nodes)) && (await matches(state));
			return row(scenario, Float64Array.from(latencies), seconds, memory, {
				releases: removes * REPLICAS,
				unplaced: creates * REPLICAS - latencies.length,
				transactions: reserver.stats.transactions,
				conflicts: reserver.stats.conflicts,
				consistent: consistentNow
			});
		}
	} finally {
		await broker.stop();
		fs.rmSync(dir, { recursive: true, force: true });
	}
}

/** Each replica a workload places has its reservation, and each reservation a replica. */
async function matches(store: Store): Promise<boolean> {
	const workloads = await store.list<Workload>(COLLECTIONS.workloads);
	const placements = await store.list<PlacementRecord>(PLACEMENTS);
	const { lost, orphans } = await audit(
		workloads.map(d => d.value),
		placements.map(p => [p.id, p.value] as [string, PlacementRecord]),
		Number.MAX_SAFE_INTEGER,
		0
	);
	return lost.length === 0 && orphans.length === 0;
}

function scaled(r: ResourceRequest, n: number): ResourceRequest {
	return { cpu: r.cpu * n, memory: r.memory * n, gpu: r.gpu * n, gpuMemory: r.gpuMemory * n };
}

/** Runs one scenario in a child process and returns its row. */
function child(scenario: Scenario, env: Record<string, string> = {}): Promise<SchedulerRow> {
	return new Promise((resolve, reject) => {
		const proc = fork(__filename, [], {
			env: { ...process.env, BENCH_SCHEDULER_SCENARIO: scenario, ...env },
			stdio: ["ignore", "inherit", "inherit", "ipc"]
		});
		let result: SchedulerRow | undefined;
		proc.once("message", m => (result = m as SchedulerRow));
		proc.once("error", reject);
		proc.once("exit", code =>
			result ? resolve(result) : reject(new Error(`${scenario} exited with ${code}`))
		);
	});
}

export async function run(): Promise<SchedulerRow[]> {
	const only = process.env.BENCH_SCENARIOS?.split(",") as Scenario[] | undefined;
	const wanted = (s: Scenario) => !only || only.includes(s);
	const rows: SchedulerRow[] = [];
	for (const s of ["scan", "index", "sqlite", "service-sqlite"] as const)
		if (wanted(s)) rows.push(await child(s));
	const redis = await startRedis();
	try {
		for (const s of ["redis", "service-redis"] as const)
			if (wanted(s)) rows.push(await child(s, { BENCH_REDIS_URL: redis.url }));
	} finally {
		await redis.stop();
	}
	return rows;
}

export function table(rows: SchedulerRow[]): string {
	const lines = [
		`${NODES.toLocaleString("en-US")} nodes, ${CONCURRENCY} concurrent callers; node ${process.version}, ${os.cpus().length} cores.`,
		"",
		"| store | placements | releases | placements/s | × scan | P50 ms | P99 ms | peak RSS MiB | peak heap MiB | transactions | conflicts | consistent |",
		"|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
	];
	const n = (x: number) => Math.round(x).toLocaleString("en-US");
	const scan = rows.find(r => r.scenario === "scan")?.perSecond;
	for (const r of rows)
		lines.push(
			`| ${LABELS[r.scenario]} | ${n(r.placements)} | ${n(r.releases)} | ${n(r.perSecond)} | ` +
				`${scan ? (r.perSecond / scan).toFixed(r.perSecond < 10 * scan ? 1 : 0) : "–"} | ` +
				`${r.p50Ms.toFixed(3)} | ${r.p99Ms.toFixed(3)} | ${n(r.peakRssMiB)} | ${n(r.peakHeapMiB)} | ` +
				`${r.transactions ? n(r.transactions) : "–"} | ${r.transactions ? n(r.conflicts) : "–"} | ` +
				`${r.consistent === null ? "–" : r.consistent ? "yes" : "NO"} |`
		);
	return lines.join("\n");
}

export function verdict(rows: SchedulerRow[]): string[] {
	const misses: string[] = [];
	// A run of some rows only (BENCH_SCENARIOS) cannot say the targets were met.
	for (const scenario of Object.keys(TARGETS))
		if (!rows.some(r => r.scenario === scenario))
			misses.push(`${LABELS[scenario as Scenario]}: not run`);
	for (const r of rows) {
		const target = TARGETS[r.scenario];
		if (target && r.perSecond < target)
			misses.push(`${LABELS[r.scenario]}: ${Math.round(r.perSecond)}/s is under ${target}/s`);
		if (r.consistent === false)
			misses.push(`${LABELS[r.scenario]}: the store's allocations do not add up`);
	}
	return misses;
}

const scenario = process.env.BENCH_SCHEDULER_SCENARIO as Scenario | undefined;
if (scenario && require.main === module) {
	const go =
		scenario === "scan" || scenario === "index"
			? Promise.resolve().then(() =>
					inMemory(scenario, scenario === "scan" ? BASELINE : PLACEMENTS_WANTED)
				)
			: scenario === "sqlite" || scenario === "redis"
				? stored(scenario, PLACEMENTS_WANTED)
				: service(scenario, PLACEMENTS_WANTED);
	go.then(
		r => process.send!(r, () => process.exit(0)),
		err => {
			console.error(err);
			process.exit(1);
		}
	);
}
