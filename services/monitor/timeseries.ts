/**
 * Usage history in fixed memory. Pure: no timers, no I/O; the monitor service builds the samples
 * once per evaluation (sampling.ts) and records them here.
 *
 * Memory bound: every series keeps one ring buffer per tier, `points` slots of `step` ms each,
 * and every sample goes into every tier, where it is averaged with the other samples of its
 * bucket. Coarser tiers therefore hold the older history already downsampled, with no second
 * pass. A slot costs 20 bytes (bucket number, sum, count), so the default tiers (1 h at 10 s,
 * 24 h at 5 min: 648 slots) take about 13 KiB per series, and `maxSeries` caps the total: past
 * it, the series updated longest ago (a node or workload that went away) is evicted first.
 */
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
		// Older than the oldest bucket the ring still holds: there is no slot for it.
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
		// Drop leading empty buckets: `load` places the values by counting back from `last`.
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
