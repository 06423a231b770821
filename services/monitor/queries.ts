/**
 * The read side of the monitor's API: which history window and series a `stats` request asks
 * for, and which series and alerts a user may see.
 */
import { parseDuration } from "../shared/duration";
import { canRead, canSeeTenant, type Owned, type Principal } from "../shared/principal";
import { type Alert, matches, MAX_FOR_MS, parseSelector } from "./alerts";
import type { Labels, QueryOptions } from "./timeseries";

/** The default window of `stats`: the last hour. */
const DEFAULT_WINDOW_MS = 3_600_000;

export interface StatsParams {
	node?: string;
	metric?: string;
	/** ms since the epoch, or a duration back from now such as "15m". */
	since?: number | string;
	/** Seconds or a duration: the smallest bucket width of the answer. */
	step?: number | string;
}

/** Series and alerts of a tenant's workloads belong to that tenant; an admin sees all. */
export function visible(labels: Labels, user: Principal | undefined): boolean {
	return !user || labels.tenant === undefined || canSeeTenant(user, labels.tenant);
}

/** Whether `user` may see an alert rule: the cluster's and its own tenant's; all without a user. */
export function ruleVisible(rule: Owned, user: Principal | undefined): boolean {
	return !user || canRead(user, rule);
}

/**
 * Whether `user` may see an alert: its rule must be one the user may see, and its series too
 * (a cluster rule's alert about another tenant's workload stays that tenant's business).
 */
export function alertVisible(
	alert: Pick<Alert, "owner" | "tenant" | "labels">,
	user: Principal | undefined
): boolean {
	return ruleVisible(alert, user) && visible(alert.labels ?? {}, user);
}

/**
 * The history query of a `stats` request: the window start, the bucket width, and a filter on
 * the node, the metric (a name or a selector) and what `user` may see. InvalidInputError for a
 * bad duration or selector.
 */
export function statsQuery(
	params: StatsParams,
	user: Principal | undefined,
	now: number
): QueryOptions {
	const { node, metric } = params;
	const since =
		params.since === undefined
			? now - DEFAULT_WINDOW_MS
			: typeof params.since === "number"
				? params.since
				: now - parseDuration(params.since, { field: "since", max: MAX_FOR_MS });
	const step =
		params.step === undefined
			? undefined
			: parseDuration(params.step, { field: "step", max: MAX_FOR_MS });
	const sel = metric ? parseSelector(metric) : null;
	return {
		since,
		now,
		step,
		filter: (m, labels) =>
			(!node || labels.node === node) &&
			(!sel || matches(sel, m, labels)) &&
			visible(labels, user)
	};
}
