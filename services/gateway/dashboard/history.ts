/**
 * The charts' data: CPU, memory and GPU in percent per second, as uPlot takes it (one array of
 * times and one of values per line). Live points come from the reports; the past comes from
 * the monitor's /api/v1/stats series, joined here. Pure.
 */
import type { SeriesPoints } from "../../monitor/timeseries";
import type { Percents } from "./usage";

/** Times in seconds; values in percent, null where a line has no value at that time. */
export interface History {
	t: number[];
	cpu: (number | null)[];
	mem: (number | null)[];
	gpu: (number | null)[];
}

export function emptyHistory(): History {
	return { t: [], cpu: [], mem: [], gpu: [] };
}

/**
 * Adds the values at `atMs`, keeping the newest `max` points. One point per second: a batch of
 * reports in the same second replaces the last point, and an older time is dropped.
 */
export function addPoint(h: History, atMs: number, p: Percents, max: number): void {
	const t = Math.round(atMs / 1000);
	const last = h.t.length - 1;
	if (last >= 0 && h.t[last] > t) return;
	if (last >= 0 && h.t[last] === t) {
		h.cpu[last] = p.cpu;
		h.mem[last] = p.mem;
		h.gpu[last] = p.gpu;
		return;
	}
	h.t.push(t);
	h.cpu.push(p.cpu);
	h.mem.push(p.mem);
	h.gpu.push(p.gpu);
	if (h.t.length > max)
		for (const line of [h.t, h.cpu, h.mem, h.gpu]) line.splice(0, line.length - max);
}

/** Per second: the average of the values of all the series given (e.g. every GPU's). */
export function averageSeries(items: readonly SeriesPoints[]): Map<number, number> {
	const acc = new Map<number, { sum: number; n: number }>();
	for (const s of items)
		for (const [ms, value] of s.points) {
			const t = Math.round(ms / 1000);
			const a = acc.get(t) ?? { sum: 0, n: 0 };
			a.sum += value;
			a.n++;
			acc.set(t, a);
		}
	const out = new Map<number, number>();
	for (const [t, a] of acc) out.set(t, a.sum / a.n);
	return out;
}

/** `used` in percent of `capacity` at each second that has both (cores, bytes). */
export function ratioSeries(
	used: Map<number, number>,
	capacity: Map<number, number>
): Map<number, number> {
	const out = new Map<number, number>();
	for (const [t, u] of used) {
		const c = capacity.get(t);
		if (c !== undefined && c > 0) out.set(t, Math.min(100, (u / c) * 100));
	}
	return out;
}

/** One history from three lines of second → percent; null under two points (no line to draw). */
export function toHistory(
	cpu: Map<number, number>,
	mem: Map<number, number>,
	gpu: Map<number, number>
): History | null {
	const times = [...new Set([...cpu.keys(), ...mem.keys(), ...gpu.keys()])].sort((a, b) => a - b);
	if (times.length < 2) return null;
	const at = (line: Map<number, number>, t: number) => line.get(t) ?? null;
	return {
		t: times,
		cpu: times.map(t => at(cpu, t)),
		mem: times.map(t => at(mem, t)),
		gpu: times.map(t => at(gpu, t))
	};
}

/** `past` followed by the live points newer than its end (the live ones since page load). */
export function appendNewer(past: History, live: History | undefined): History {
	if (!live) return past;
	const end = past.t[past.t.length - 1];
	for (let i = 0; i < live.t.length; i++)
		if (live.t[i] > end) {
			past.t.push(live.t[i]);
			past.cpu.push(live.cpu[i]);
			past.mem.push(live.mem[i]);
			past.gpu.push(live.gpu[i]);
		}
	return past;
}

/**
 * The cluster's past from the monitor's `cluster.*` series (CPU in cores and memory in bytes:
 * used divided by capacity) and the average of every GPU's `node.gpu.utilization`.
 */
export function clusterHistory(series: {
	cpuUsed: readonly SeriesPoints[];
	cpuCapacity: readonly SeriesPoints[];
	memoryUsed: readonly SeriesPoints[];
	memoryCapacity: readonly SeriesPoints[];
	gpuUtilization: readonly SeriesPoints[];
}): History | null {
	return toHistory(
		ratioSeries(averageSeries(series.cpuUsed), averageSeries(series.cpuCapacity)),
		ratioSeries(averageSeries(series.memoryUsed), averageSeries(series.memoryCapacity)),
		averageSeries(series.gpuUtilization)
	);
}

/** One node's past from its `node.*` series (already in percent). */
export function nodeHistory(items: readonly SeriesPoints[]): History | null {
	const of = (metric: string) => averageSeries(items.filter(s => s.metric === metric));
	return toHistory(of("node.cpu.usage"), of("node.memory.usage"), of("node.gpu.utilization"));
}
