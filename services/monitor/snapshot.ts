/**
 * The monitor's in-memory state saved in the store: the history, the alert states and the last
 * known health. A restarted monitor (with Redis, on any node) loads it and goes on where the
 * previous one stopped.
 */
import { COLLECTIONS } from "../shared/collections";
import type { Store } from "../shared/store";
import type { AlertEvaluator, AlertsSnapshot } from "./alerts";
import type { HistorySnapshot, Sample, TimeSeriesStore } from "./timeseries";

/** The id of the snapshot document, in the monitor's collection. */
export const SNAPSHOT_ID = "snapshot";

/** What the snapshot document holds. */
export interface Snapshot {
	savedAt: number;
	history: HistorySnapshot;
	alerts: AlertsSnapshot;
	/** The registry sends health only when it changes, so the last known values are kept. */
	health: [string, Sample][];
}

/** The parts of the monitor that the snapshot saves and restores. */
export interface MonitorState {
	series: TimeSeriesStore;
	alerts: AlertEvaluator;
	health: Map<string, Sample>;
}

export async function saveSnapshot(store: Store, state: MonitorState, now: number): Promise<void> {
	const snapshot: Snapshot = {
		savedAt: now,
		history: state.series.snapshot(),
		alerts: state.alerts.export(),
		health: [...state.health]
	};
	await store.put(COLLECTIONS.monitor, SNAPSHOT_ID, snapshot);
}

/**
 * Loads the saved snapshot into `state`, if there is one. Best effort: a snapshot that cannot be
 * read is logged and skipped, so it costs the history but never prevents the start.
 */
export async function loadSnapshot(
	store: Store,
	state: MonitorState,
	logger: { info(...args: unknown[]): void; warn(...args: unknown[]): void }
): Promise<void> {
	const doc = await store.get<Snapshot>(COLLECTIONS.monitor, SNAPSHOT_ID);
	if (!doc) return;
	try {
		const { history, alerts, health } = doc.value;
		if (!state.series.restore(history))
			logger.warn("The saved history has other tiers than configured; not loaded.");
		state.alerts.import(alerts);
		for (const [key, sample] of health) state.health.set(key, sample);
	} catch (err) {
		logger.warn("The saved history could not be read:", (err as Error).message);
		return;
	}
	logger.info(
		`History restored: ${state.series.size} series, saved ${new Date(doc.value.savedAt).toISOString()}.`
	);
}
