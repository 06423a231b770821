import { BYTES_PER_POINT, seriesKey, TimeSeriesStore } from "../../../services/monitor/timeseries";

describe("seriesKey", () => {
	it("orders labels by name and escapes quotes and backslashes", () => {
		expect(seriesKey("m", {})).toBe("m");
		expect(seriesKey("m", { node: "n1", gpu: "0" })).toBe('m{gpu="0",node="n1"}');
		expect(seriesKey("m", { name: 'a"b\\c' })).toBe('m{name="a\\"b\\\\c"}');
	});
});

describe("TimeSeriesStore", () => {
	const tiers = [
		{ step: 10, points: 5 },
		{ step: 100, points: 3 }
	];
	const cpu = (value: number) => [{ metric: "node.cpu.usage", labels: { node: "n1" }, value }];

	it("averages the samples of one bucket and keeps only the last `points` buckets", () => {
		const ts = new TimeSeriesStore({ tiers });
		ts.record(cpu(10), 1000);
		ts.record(cpu(20), 1005);
		for (let t = 1010; t < 1100; t += 10) ts.record(cpu(t - 1000), t);
		const { step, items } = ts.query({ since: 0, now: 1100, step: undefined });
		// `since` is older than the fine tier reaches: the coarse tier answers.
		expect(step).toBe(100);
		expect(items[0].points).toEqual([
			[1000, (10 + 20 + 10 + 20 + 30 + 40 + 50 + 60 + 70 + 80 + 90) / 11]
		]);
		const fine = ts.query({ since: 1060, now: 1100 });
		expect(fine.step).toBe(10);
		expect(fine.items[0].points).toEqual([
			[1060, 60],
			[1070, 70],
			[1080, 80],
			[1090, 90]
		]);
		// Only 5 buckets fit in the fine tier: from 1000 on, only the coarse one has it all.
		expect(ts.query({ since: 1050, now: 1090 }).items[0].points).toHaveLength(5);
		expect(ts.query({ since: 1000, now: 1090 }).step).toBe(100);
	});

	it("ignores samples older than the ring holds and non-finite values", () => {
		const ts = new TimeSeriesStore({ tiers: [{ step: 10, points: 2 }] });
		ts.record(cpu(1), 100);
		ts.record(cpu(2), 50);
		ts.record(cpu(NaN), 100);
		expect(ts.query({ since: 0, now: 100 }).items[0].points).toEqual([[100, 1]]);
	});

	it("averages into wider buckets when asked for a step", () => {
		const ts = new TimeSeriesStore({ tiers });
		for (let t = 1000; t < 1040; t += 10) ts.record(cpu(t - 1000), t);
		expect(ts.query({ since: 1000, now: 1040, step: 20 }).items[0].points).toEqual([
			[1000, 5],
			[1020, 25]
		]);
	});

	it("filters series and returns them in key order", () => {
		const ts = new TimeSeriesStore({ tiers });
		ts.record(
			[
				{ metric: "node.cpu.usage", labels: { node: "n2" }, value: 1 },
				{ metric: "node.cpu.usage", labels: { node: "n1" }, value: 2 },
				{ metric: "cluster.gpu.free", labels: {}, value: 3 }
			],
			1000
		);
		const all = ts.query({ since: 1000, now: 1000 }).items;
		expect(all.map(s => seriesKey(s.metric, s.labels))).toEqual([
			"cluster.gpu.free",
			'node.cpu.usage{node="n1"}',
			'node.cpu.usage{node="n2"}'
		]);
		const n1 = ts.query({ since: 1000, now: 1000, filter: (_m, l) => l.node === "n1" });
		expect(n1.items).toEqual([
			{ metric: "node.cpu.usage", labels: { node: "n1" }, points: [[1000, 2]] }
		]);
	});

	it("evicts the series updated longest ago past maxSeries, and states its memory bound", () => {
		const ts = new TimeSeriesStore({ tiers, maxSeries: 2 });
		ts.record([{ metric: "workloads.pending", labels: {}, value: 1 }], 1000);
		ts.record([{ metric: "cluster.gpu.free", labels: {}, value: 1 }], 1010);
		ts.record([{ metric: "workloads.pending", labels: {}, value: 1 }], 1020);
		ts.record([{ metric: "cluster.gpu.total", labels: {}, value: 1 }], 1030);
		expect(ts.size).toBe(2);
		expect(
			ts
				.query({ since: 0, now: 1030 })
				.items.map(s => s.metric)
				.sort()
		).toEqual(["cluster.gpu.total", "workloads.pending"]);
		expect(ts.memoryBound).toBe(2 * 8 * BYTES_PER_POINT);
	});

	it("restores a snapshot (through JSON) with the same tiers, and refuses other tiers", () => {
		const ts = new TimeSeriesStore({ tiers });
		for (let t = 1000; t < 1050; t += 10) ts.record(cpu(t / 1000), t);
		const json = JSON.parse(JSON.stringify(ts.snapshot()));
		const back = new TimeSeriesStore({ tiers });
		expect(back.restore(json)).toBe(true);
		expect(back.query({ since: 1000, now: 1040 })).toEqual(
			ts.query({ since: 1000, now: 1040 })
		);
		back.record(cpu(5), 1050);
		expect(back.query({ since: 1050, now: 1050 }).items[0].points).toEqual([[1050, 5]]);
		expect(new TimeSeriesStore({ tiers: [{ step: 10, points: 9 }] }).restore(json)).toBe(false);
	});
});
