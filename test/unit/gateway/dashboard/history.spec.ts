import type { SeriesPoints } from "../../../../services/monitor/timeseries";
import {
	addPoint,
	appendNewer,
	averageSeries,
	clusterHistory,
	emptyHistory,
	nodeHistory,
	ratioSeries,
	toHistory
} from "../../../../services/gateway/dashboard/history";

const series = (metric: string, points: [number, number][], labels = {}): SeriesPoints => ({
	metric,
	labels,
	points
});

describe("dashboard history", () => {
	it("keeps one point per second, the newest `max`, and drops an older time", () => {
		const h = emptyHistory();
		addPoint(h, 1000, { cpu: 1, mem: 2, gpu: null }, 3);
		addPoint(h, 1400, { cpu: 5, mem: 6, gpu: 7 }, 3);
		expect(h).toEqual({ t: [1], cpu: [5], mem: [6], gpu: [7] });
		addPoint(h, 0, { cpu: 9, mem: 9, gpu: 9 }, 3);
		expect(h.t).toEqual([1]);
		for (const s of [2, 3, 4]) addPoint(h, s * 1000, { cpu: s, mem: s, gpu: s }, 3);
		expect(h).toEqual({ t: [2, 3, 4], cpu: [2, 3, 4], mem: [2, 3, 4], gpu: [2, 3, 4] });
	});

	it("averages series per second, and divides used by capacity where both exist", () => {
		const avg = averageSeries([
			series("node.gpu.utilization", [
				[10_000, 20],
				[20_000, 40]
			]),
			series("node.gpu.utilization", [[10_000, 60]])
		]);
		expect([...avg]).toEqual([
			[10, 40],
			[20, 40]
		]);
		const used = new Map([
			[1, 8],
			[2, 40],
			[3, 1]
		]);
		const capacity = new Map([
			[1, 32],
			[2, 32],
			[3, 0]
		]);
		expect([...ratioSeries(used, capacity)]).toEqual([
			[1, 25],
			[2, 100]
		]);
	});

	it("joins three lines on their times, null where one has none; null under two points", () => {
		const line = (entries: [number, number][]) => new Map(entries);
		expect(toHistory(line([[1, 10]]), line([]), line([]))).toBeNull();
		expect(toHistory(line([[1, 10]]), line([[2, 20]]), line([]))).toEqual({
			t: [1, 2],
			cpu: [10, null],
			mem: [null, 20],
			gpu: [null, null]
		});
	});

	it("appends only the live points newer than the past", () => {
		const past = { t: [1, 2], cpu: [1, 2], mem: [1, 2], gpu: [null, null] };
		const live = { t: [2, 3], cpu: [8, 9], mem: [8, 9], gpu: [8, 9] };
		expect(appendNewer(past, live)).toEqual({
			t: [1, 2, 3],
			cpu: [1, 2, 9],
			mem: [1, 2, 9],
			gpu: [null, null, 9]
		});
		expect(appendNewer(past, undefined)).toBe(past);
	});

	it("builds the cluster's past from the cluster.* series and a node's from its own", () => {
		const at = (v: number): [number, number][] => [
			[0, v],
			[10_000, v]
		];
		expect(
			clusterHistory({
				cpuUsed: [series("cluster.cpu.used", at(8))],
				cpuCapacity: [series("cluster.cpu.capacity", at(32))],
				memoryUsed: [series("cluster.memory.used", at(1))],
				memoryCapacity: [series("cluster.memory.capacity", at(4))],
				gpuUtilization: []
			})
		).toEqual({ t: [0, 10], cpu: [25, 25], mem: [25, 25], gpu: [null, null] });
		expect(
			nodeHistory([
				series("node.cpu.usage", at(30)),
				series("node.memory.usage", at(40)),
				series("node.gpu.temperature", at(90)),
				series("node.gpu.utilization", at(50), { gpu: "0" }),
				series("node.gpu.utilization", at(70), { gpu: "1" })
			])
		).toEqual({ t: [0, 10], cpu: [30, 30], mem: [40, 40], gpu: [60, 60] });
	});
});
