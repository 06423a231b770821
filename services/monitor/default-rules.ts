/**
 * The alert rules a new cluster starts with, and their seeding. A marker document records which
 * defaults were written, so that a default an operator deleted is not brought back; a default
 * the marker does not name (one added by an upgrade) is written at the next seeding, and a
 * store that lost the marker with everything else (restarted empty, then adopted) gets them all
 * again. The monitor seeds at start and at every refresh while the store is the cluster's, so
 * this is one read per refresh once seeded. Once written they are ordinary rules: they can be
 * deleted or replaced like any other.
 *
 * One rule is not stored at all: STORE_IDENTITY_RULE, evaluated by the monitor whatever the
 * store holds, because a store that is not the cluster's may hold no rule.
 */
import { COLLECTIONS } from "../shared/collections";
import type { Store } from "../shared/store";
import { type AlertRule, makeRule, RuleInput } from "./alerts";

/** The id of the marker document, in the monitor's collection. */
export const DEFAULTS_ID = "default-rules";

export const DEFAULT_RULES: (RuleInput & { id: string })[] = [
	{
		id: "default-node-down",
		name: "Node down",
		metric: "node.status",
		op: "==",
		threshold: 0,
		for: "30s",
		severity: "critical"
	},
	{
		// The inventory holds silent nodes instead of moving their replicas (nodes/liveness.ts):
		// the control plane is cut off from them, or they from it. At once: nothing else tells.
		id: "default-nodes-held",
		name: "Nodes silent, replicas not moved",
		metric: "cluster.nodes.held",
		op: ">",
		threshold: 0,
		for: "0s",
		severity: "critical"
	},
	{
		id: "default-gpu-hot",
		name: "GPU too hot",
		metric: "node.gpu.temperature",
		op: ">",
		threshold: 85,
		for: "1m",
		severity: "warning"
	},
	{
		id: "default-service-unhealthy",
		name: "Service unhealthy",
		metric: "service.health",
		op: "==",
		threshold: 0,
		for: "1m",
		severity: "warning"
	},
	{
		id: "default-resource-unhealthy",
		name: "Resource unhealthy",
		metric: "resource.health",
		op: "==",
		threshold: 0,
		for: "1m",
		severity: "critical"
	},
	{
		id: "default-workload-pending",
		name: "Workload pending too long",
		metric: 'workload.replicas{state="pending"}',
		op: ">",
		threshold: 0,
		for: "5m",
		severity: "warning"
	}
];

/** The marker: when, and which defaults were written (absent in markers of older versions). */
interface DefaultsMarker {
	at: number;
	ids?: string[];
}

/**
 * Writes the defaults the marker does not name yet (a marker without names, from an older
 * version, names every default), then the marker. A store with rules but no marker (from
 * before the marker) is marked without a rule written. Resolves to the number written.
 */
export async function seedDefaultRules(
	store: Store,
	clock: () => number = Date.now
): Promise<number> {
	const marker = await store.get<DefaultsMarker>(COLLECTIONS.monitor, DEFAULTS_ID);
	const all = DEFAULT_RULES.map(r => r.id);
	const seeded = new Set(marker ? (marker.value.ids ?? all) : []);
	const missing = DEFAULT_RULES.filter(r => !seeded.has(r.id));
	if (missing.length === 0) return 0;
	let written = 0;
	if (marker || (await store.list(COLLECTIONS.alertRules)).length === 0) {
		const now = clock();
		for (const input of missing) {
			// One ms apart, so that they list (oldest first) in the order above.
			const at = now + DEFAULT_RULES.indexOf(input);
			const rule = makeRule(input, { id: input.id, now: at, createdBy: "monitor" });
			if ((await store.cas(COLLECTIONS.alertRules, rule.id, rule, 0)) !== null) written++;
		}
	}
	await store.cas(
		COLLECTIONS.monitor,
		DEFAULTS_ID,
		{ at: clock(), ids: [...seeded, ...missing.map(r => r.id)] },
		marker?.version ?? 0
	);
	return written;
}

/**
 * Fires while the store is not the cluster's (metric `cluster.store.identity`, sampled by the
 * monitor from its process's identity guard). Built in, never stored: see above.
 */
export const STORE_IDENTITY_RULE: AlertRule = makeRule(
	{
		name: "Store identity mismatch",
		metric: "cluster.store.identity",
		op: "==",
		threshold: 0,
		for: 0,
		severity: "critical",
		labels: { fix: "npm run adopt" }
	},
	{ id: "builtin-store-identity", now: 0, createdBy: "monitor" }
);
