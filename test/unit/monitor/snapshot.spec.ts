import { COLLECTIONS } from "../../../services/shared/collections";
import { SqliteStore, Store } from "../../../services/shared/store";
import { AlertEvaluator, makeRule } from "../../../services/monitor/alerts";
import {
	loadSnapshot,
	MonitorState,
	saveSnapshot,
	SNAPSHOT_ID
} from "../../../services/monitor/snapshot";
import { Sample, TimeSeriesStore } from "../../../services/monitor/timeseries";

const tiers = [{ step: 10, points: 10 }];

function state(now: { t: number }, tierList = tiers): MonitorState {
	return {
		series: new TimeSeriesStore({ tiers: tierList }),
		alerts: new AlertEvaluator({ clock: () => now.t }),
		health: new Map<string, Sample>()
	};
}

function logger() {
	const lines: string[] = [];
	return {
		lines,
		info: (...a: unknown[]) => lines.push(`info ${a.join(" ")}`),
		warn: (...a: unknown[]) => lines.push(`warn ${a.join(" ")}`)
	};
}

describe("saveSnapshot and loadSnapshot", () => {
	let store: Store;
	beforeEach(() => {
		store = new SqliteStore(":memory:");
	});
	afterEach(() => store.close());

	const rule = makeRule(
		{
			name: "down",
			metric: "node.status",
			op: "==",
			threshold: 0,
			for: 0,
			severity: "critical"
		},
		{ id: "r1", now: 0, createdBy: "test" }
	);
	const down: Sample = { metric: "node.status", labels: { node: "n1" }, value: 0 };

	it("restores history, alert states and health into a fresh monitor", async () => {
		const now = { t: 1000 };
		const before = state(now);
		before.series.record([down], 1000);
		before.alerts.evaluate([rule], [down]);
		before.health.set("resource\u0000r1", {
			metric: "resource.health",
			labels: { id: "r1", name: "db" },
			value: 1
		});
		await saveSnapshot(store, before, 1234);
		expect((await store.get<any>(COLLECTIONS.monitor, SNAPSHOT_ID))?.value.savedAt).toBe(1234);

		const after = state(now);
		const log = logger();
		await loadSnapshot(store, after, log);
		expect(after.series.query({ since: 0, now: 1000 })).toEqual(
			before.series.query({ since: 0, now: 1000 })
		);
		expect(after.alerts.list()).toEqual(before.alerts.list());
		expect([...after.health]).toEqual([...before.health]);
		expect(log.lines).toEqual([
			"info History restored: 1 series, saved 1970-01-01T00:00:01.234Z."
		]);
	});

	it("does nothing without a snapshot", async () => {
		const after = state({ t: 0 });
		const log = logger();
		await loadSnapshot(store, after, log);
		expect(after.series.size).toBe(0);
		expect(log.lines).toEqual([]);
	});

	it("skips history saved with other tiers but keeps alerts and health", async () => {
		const before = state({ t: 1000 });
		before.series.record([down], 1000);
		before.health.set("k", down);
		await saveSnapshot(store, before, 1000);
		const after = state({ t: 1000 }, [{ step: 10, points: 5 }]);
		const log = logger();
		await loadSnapshot(store, after, log);
		expect(after.series.size).toBe(0);
		expect(after.health.get("k")).toEqual(down);
		expect(log.lines[0]).toBe(
			"warn The saved history has other tiers than configured; not loaded."
		);
	});

	it("logs an unreadable snapshot and goes on", async () => {
		await store.put(COLLECTIONS.monitor, SNAPSHOT_ID, { savedAt: 1, history: null });
		const after = state({ t: 0 });
		const log = logger();
		await expect(loadSnapshot(store, after, log)).resolves.toBeUndefined();
		expect(log.lines).toHaveLength(1);
		expect(log.lines[0]).toMatch(/^warn The saved history could not be read: /);
	});
});
