/**
 * Usage history in fixed memory, and the samples it is fed with. Pure: no timers, no I/O; the
 * monitor service samples the cluster once per evaluation and hands the samples in.
 *
 * Memory bound: every series keeps one ring buffer per tier, `points` slots of `step` ms each,
 * and every sample goes into every tier, where it is averaged with the other samples of its
 * bucket. Coarser tiers therefore hold the older history already downsampled, with no second
 * pass. A slot costs 20 bytes (bucket number, sum, count), so the default tiers (1 h at 10 s,
 * 24 h at 5 min: 648 slots) take about 13 KiB per series, and `maxSeries` caps the total: past
 * it, the series updated longest ago (a node or workload that went away) is evicted first.
 */
import type { Capacity, NodeStatus, ReplicaState, Usage } from "../shared/types";
import { workloadStatus, Workload, WorkloadStatus } from "../scheduler/workload";

export type Labels = Record<string, string>;

/** One value of one series at the time the samples are recorded. */
export interface Sample {
	metric: string;
	labels: Labels;
	value: number;
}

/** `points` buckets of `step` ms: that tier remembers `step * points` ms. */
export interface Tier {
	step: number;
	points: number;
}

export const DEFAULT_TIERS: Tier[] = [
	{ step: 10_000, points: 360 },
	{ step: 300_000, points: 288 }
];

/** Bytes one slot of a ring takes: Float64 bucket number and sum, Uint32 count. */
export const BYTES_PER_POINT = 20;

/**
 * Every metric the monitor samples, with its labels: what alert rules and `stats` may name.
 * Percentages are 0–100, memory in bytes, CPU in cores, temperature in °C.
 */
export const METRICS: Record<string, { labels: string[]; help: string }> = {
	"node.status": {
		labels: ["node"],
		help: "1 while the node reports (ready or draining), 0 down"
	},
	"node.cpu.usage": { labels: ["node"], help: "CPU busy, % of all cores" },
	"node.memory.usage": { labels: ["node"], help: "memory used, % of capacity" },
	"node.gpu.utilization": { labels: ["node", "gpu"], help: "GPU busy, %" },
	"node.gpu.memory.used": { labels: ["node", "gpu"], help: "GPU memory used, bytes" },
	"node.gpu.temperature": { labels: ["node", "gpu"], help: "GPU temperature, °C" },
	"cluster.cpu.capacity": { labels: [], help: "cores on nodes that are up" },
	"cluster.cpu.used": { labels: [], help: "cores busy" },
	"cluster.cpu.allocated": { labels: [], help: "cores reserved by workloads" },
	"cluster.memory.capacity": { labels: [], help: "bytes on nodes that are up" },
	"cluster.memory.used": { labels: [], help: "bytes used" },
	"cluster.memory.allocated": { labels: [], help: "bytes reserved by workloads" },
	"cluster.gpu.total": { labels: [], help: "GPUs on nodes that are up" },
	"cluster.gpu.free": { labels: [], help: "GPUs not reserved on ready nodes" },
	"cluster.gpu.allocated": { labels: [], help: "GPUs reserved by workloads" },
	"cluster.nodes": { labels: ["status"], help: "nodes by status" },
	workloads: { labels: ["state"], help: "workloads by status" },
	"workloads.pending": { labels: [], help: "workloads waiting for a place" },
	"workload.replicas": {
		labels: ["workload", "name", "tenant", "state"],
		help: "a workload's replicas by state"
	},
	"service.health": {
		labels: ["name", "endpoint"],
		help: "1 healthy, 0 unhealthy, per endpoint (none for Moleculer services)"
	},
	"resource.health": { labels: ["id", "name"], help: "1 healthy, 0 unhealthy" }
};

/** A point of a series: [ms since the epoch (start of its bucket), value]. */
export type Point = [number, number];

export interface SeriesPoints {
	metric: string;
	labels: Labels;
	points: Point[];
}

/** What `snapshot` returns and `restore` takes: plain JSON, bucket means only. */
export interface HistorySnapshot {
	tiers: Tier[];
	series: {
		metric: string;
		labels: Labels;
		updatedAt: number;
		/** Per tier: the newest bucket number and the means of the buckets up to it. */
		rings: { last: number; values: (number | null)[] }[];
	}[];
}

function escapeLabel(value: string): string {
	return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"');
}

/** The canonical name of a series: `metric{a="x",b="y"}` with labels in name order. */
export function seriesKey(metric: string, labels: Labels): string {
	const names = Object.keys(labels).sort();
	if (names.length === 0) return metric;
	return `${metric}{${names.map(n => `${n}="${escapeLabel(labels[n])}"`).join(",")}}`;
}

/** One tier of one series: slot `b % points` holds bucket `b` (its time is `b * step`). */
class Ring {
	private readonly buckets: Float64Array;
	private readonly sums: Float64Array;
	private readonly counts: Uint32Array;
	/** The newest bucket written, -1 while empty. */
	private last = -1;

	constructor(
		readonly step: number,
		readonly points: number
	) {
		this.buckets = new Float64Array(points).fill(-1);
		this.sums = new Float64Array(points);
		this.counts = new Uint32Array(points);
	}

	add(at: number, value: number): void {
		const bucket = Math.floor(at / this.step);
		// Too old to be kept next to what the ring holds now.
		if (bucket <= this.last - this.points) return;
		const slot = bucket % this.points;
		if (this.buckets[slot] !== bucket) {
			this.buckets[slot] = bucket;
			this.sums[slot] = 0;
			this.counts[slot] = 0;
		}
		this.sums[slot] += value;
		this.counts[slot]++;
		if (bucket > this.last) this.last = bucket;
	}

	/** Bucket means from `since` on, oldest first. */
	read(since: number): Point[] {
		const out: Point[] = [];
		if (this.last < 0) return out;
		const first = Math.max(this.last - this.points + 1, Math.floor(since / this.step));
		for (let b = first; b <= this.last; b++) {
			const slot = b % this.points;
			if (this.buckets[slot] === b && this.counts[slot] > 0)
				out.push([b * this.step, this.sums[slot] / this.counts[slot]]);
		}
		return out;
	}

	dump(): { last: number; values: (number | null)[] } {
		const values: (number | null)[] = [];
		for (let b = Math.max(this.last - this.points + 1, 0); b <= this.last; b++) {
			const slot = b % this.points;
			const held = this.buckets[slot] === b && this.counts[slot] > 0;
			// Rounded: the snapshot is JSON, and 17 significant digits only cost bytes.
			values.push(
				held ? Math.round((this.sums[slot] / this.counts[slot]) * 1000) / 1000 : null
			);
		}
		// Leading empty buckets carry nothing.
		while (values.length && values[0] === null) values.shift();
		return { last: this.last, values };
	}

	load(dump: { last: number; values: (number | null)[] }): void {
		const from = dump.last - dump.values.length + 1;
		dump.values.forEach((v, i) => {
			if (v !== null) this.add((from + i) * this.step, v);
		});
	}
}

interface Series {
	metric: string;
	labels: Labels;
	rings: Ring[];
	updatedAt: number;
}

export interface QueryOptions {
	/** Points from this time on (ms since the epoch). */
	since: number;
	/** The time the query is made: picks the tier that still covers `since`. */
	now: number;
	/** Wider buckets than the tier's: points are averaged into `step` ms buckets. */
	step?: number;
	filter?: (metric: string, labels: Labels) => boolean;
}

export class TimeSeriesStore {
	readonly tiers: Tier[];
	readonly maxSeries: number;
	private readonly series = new Map<string, Series>();

	constructor(opts: { tiers?: Tier[]; maxSeries?: number } = {}) {
		this.tiers = [...(opts.tiers ?? DEFAULT_TIERS)].sort((a, b) => a.step - b.step);
		this.maxSeries = opts.maxSeries ?? 2000;
	}

	/** The most memory the rings can take, in bytes. */
	get memoryBound(): number {
		return this.maxSeries * this.tiers.reduce((n, t) => n + t.points, 0) * BYTES_PER_POINT;
	}

	get size(): number {
		return this.series.size;
	}

	record(samples: Sample[], at: number): void {
		for (const s of samples) {
			if (!Number.isFinite(s.value)) continue;
			this.seriesFor(s.metric, s.labels, at).rings.forEach(r => r.add(at, s.value));
		}
	}

	/**
	 * Every matching series with its points from `since`, from the finest tier that still
	 * reaches back that far (else the coarsest). Resolves the tier's step too.
	 */
	query(opts: QueryOptions): { step: number; items: SeriesPoints[] } {
		const index = this.tierFor(opts.since, opts.now);
		const tierStep = this.tiers[index].step;
		const step = opts.step && opts.step > tierStep ? opts.step : tierStep;
		const items: SeriesPoints[] = [];
		for (const s of this.series.values()) {
			if (opts.filter && !opts.filter(s.metric, s.labels)) continue;
			const points = s.rings[index].read(opts.since);
			if (points.length === 0) continue;
			items.push({
				metric: s.metric,
				labels: s.labels,
				points: step === tierStep ? points : rebucket(points, step)
			});
		}
		items.sort((a, b) => {
			const ka = seriesKey(a.metric, a.labels);
			const kb = seriesKey(b.metric, b.labels);
			return ka < kb ? -1 : ka > kb ? 1 : 0;
		});
		return { step, items };
	}

	snapshot(): HistorySnapshot {
		return {
			tiers: this.tiers,
			series: [...this.series.values()].map(s => ({
				metric: s.metric,
				labels: s.labels,
				updatedAt: s.updatedAt,
				rings: s.rings.map(r => r.dump())
			}))
		};
	}

	/** Loads a snapshot taken with the same tiers; false (nothing loaded) for other tiers. */
	restore(snapshot: HistorySnapshot): boolean {
		if (JSON.stringify(snapshot.tiers) !== JSON.stringify(this.tiers)) return false;
		const newestFirst = [...snapshot.series].sort((a, b) => b.updatedAt - a.updatedAt);
		for (const saved of newestFirst.slice(0, this.maxSeries).reverse()) {
			const s = this.seriesFor(saved.metric, saved.labels, saved.updatedAt);
			saved.rings.forEach((dump, i) => s.rings[i].load(dump));
		}
		return true;
	}

	private tierFor(since: number, now: number): number {
		const i = this.tiers.findIndex(t => t.step * t.points >= now - since);
		return i === -1 ? this.tiers.length - 1 : i;
	}

	private seriesFor(metric: string, labels: Labels, at: number): Series {
		const key = seriesKey(metric, labels);
		let s = this.series.get(key);
		if (!s) {
			if (this.series.size >= this.maxSeries) this.evictStalest();
			s = {
				metric,
				labels: { ...labels },
				rings: this.tiers.map(t => new Ring(t.step, t.points)),
				updatedAt: at
			};
			this.series.set(key, s);
		}
		if (at > s.updatedAt) s.updatedAt = at;
		return s;
	}

	private evictStalest(): void {
		let stalest: [string, number] | null = null;
		for (const [key, s] of this.series)
			if (!stalest || s.updatedAt < stalest[1]) stalest = [key, s.updatedAt];
		if (stalest) this.series.delete(stalest[0]);
	}
}

/** Averages points into buckets of `step` ms (each input point weighs the same). */
function rebucket(points: Point[], step: number): Point[] {
	const out: Point[] = [];
	let bucket = NaN;
	let sum = 0;
	let n = 0;
	for (const [t, v] of points) {
		const b = Math.floor(t / step) * step;
		if (b !== bucket) {
			if (n > 0) out.push([bucket, sum / n]);
			bucket = b;
			sum = 0;
			n = 0;
		}
		sum += v;
		n++;
	}
	if (n > 0) out.push([bucket, sum / n]);
	return out;
}

/** The part of a node (NodeInfo, or what a report told) that the samples come from. */
export interface MonitoredNode {
	id: string;
	status: NodeStatus;
	capacity: Capacity;
	usage: Usage | null;
	allocated: { cpu: number; memory: number; gpus: number };
}

function percent(part: number, whole: number): number {
	return whole > 0 ? (part / whole) * 100 : 0;
}

/**
 * A node's series: `node.status` (1 while it reports, ready or draining; 0 down), and while
 * it is up `node.cpu.usage` and `node.memory.usage` in percent, and per GPU
 * `node.gpu.utilization` (%), `node.gpu.memory.used` (bytes), `node.gpu.temperature` (°C).
 */
export function nodeSamples(n: MonitoredNode): Sample[] {
	const node = { node: n.id };
	const out: Sample[] = [
		{ metric: "node.status", labels: node, value: n.status === "down" ? 0 : 1 }
	];
	if (n.status === "down" || !n.usage) return out;
	out.push(
		{ metric: "node.cpu.usage", labels: node, value: n.usage.cpuPercent },
		{
			metric: "node.memory.usage",
			labels: node,
			value: percent(n.usage.memory, n.capacity.memory)
		}
	);
	for (const g of n.usage.gpus) {
		const gpu = { node: n.id, gpu: String(g.index) };
		out.push(
			{ metric: "node.gpu.utilization", labels: gpu, value: g.utilization },
			{ metric: "node.gpu.memory.used", labels: gpu, value: g.memoryUsed }
		);
		if (g.temperature !== null)
			out.push({ metric: "node.gpu.temperature", labels: gpu, value: g.temperature });
	}
	return out;
}

/** Totals over the nodes that are up, GPUs free on ready nodes, and nodes by status. */
export interface ClusterTotals {
	cpu: { capacity: number; used: number; allocated: number };
	memory: { capacity: number; used: number; allocated: number };
	gpu: { total: number; free: number; allocated: number };
	nodes: Record<NodeStatus, number>;
}

export function clusterTotals(nodes: Iterable<MonitoredNode>): ClusterTotals {
	const t: ClusterTotals = {
		cpu: { capacity: 0, used: 0, allocated: 0 },
		memory: { capacity: 0, used: 0, allocated: 0 },
		gpu: { total: 0, free: 0, allocated: 0 },
		nodes: { ready: 0, draining: 0, down: 0 }
	};
	for (const n of nodes) {
		t.nodes[n.status]++;
		if (n.status === "down") continue;
		t.cpu.capacity += n.capacity.cpu;
		t.cpu.used += n.usage?.cpu ?? 0;
		t.cpu.allocated += n.allocated.cpu;
		t.memory.capacity += n.capacity.memory;
		t.memory.used += n.usage?.memory ?? 0;
		t.memory.allocated += n.allocated.memory;
		t.gpu.total += n.capacity.gpus.length;
		t.gpu.allocated += n.allocated.gpus;
		// A draining node takes no new placements, so its idle GPUs are not free to use.
		if (n.status === "ready")
			t.gpu.free += Math.max(0, n.capacity.gpus.length - n.allocated.gpus);
	}
	return t;
}

/** `cluster.*`: CPU in cores, memory in bytes, GPUs in units, nodes by `status`. */
export function clusterSamples(t: ClusterTotals): Sample[] {
	const out: Sample[] = [];
	for (const kind of ["cpu", "memory"] as const)
		for (const what of ["capacity", "used", "allocated"] as const)
			out.push({ metric: `cluster.${kind}.${what}`, labels: {}, value: t[kind][what] });
	out.push(
		{ metric: "cluster.gpu.total", labels: {}, value: t.gpu.total },
		{ metric: "cluster.gpu.free", labels: {}, value: t.gpu.free },
		{ metric: "cluster.gpu.allocated", labels: {}, value: t.gpu.allocated }
	);
	for (const status of Object.keys(t.nodes) as NodeStatus[])
		out.push({ metric: "cluster.nodes", labels: { status }, value: t.nodes[status] });
	return out;
}

export const WORKLOAD_STATES: WorkloadStatus[] = ["pending", "running", "failed", "stopped"];
export const REPLICA_STATES: ReplicaState[] = [
	"pending",
	"starting",
	"running",
	"failed",
	"stopped"
];

/** Workloads by status. */
export function workloadCounts(workloads: Workload[]): Record<WorkloadStatus, number> {
	const counts = { pending: 0, running: 0, failed: 0, stopped: 0 };
	for (const w of workloads) counts[workloadStatus(w)]++;
	return counts;
}

/**
 * `workloads{state}` and `workloads.pending` (workloads by status), and per workload
 * `workload.replicas{workload,name,tenant,state}` (its replicas in each state).
 */
export function workloadSamples(workloads: Workload[]): Sample[] {
	const counts = workloadCounts(workloads);
	const out: Sample[] = WORKLOAD_STATES.map(state => ({
		metric: "workloads",
		labels: { state },
		value: counts[state]
	}));
	out.push({ metric: "workloads.pending", labels: {}, value: counts.pending });
	for (const w of workloads) {
		const base = { workload: w.id, name: w.name, tenant: w.tenant };
		for (const state of REPLICA_STATES)
			out.push({
				metric: "workload.replicas",
				labels: { ...base, state },
				value: w.replicas.filter(r => r.state === state).length
			});
	}
	return out;
}

/** 1 healthy, 0 unhealthy; null for unknown (no value rather than a guess). */
export function healthValue(status: string): number | null {
	return status === "healthy" ? 1 : status === "unhealthy" ? 0 : null;
}
