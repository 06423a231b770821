/**
 * The alert rules a new cluster starts with, and their one-time seeding. They are written when
 * the store has no rule yet, and a marker document records that this was done, so deleting them
 * all does not bring them back at the next start. Once written they are ordinary rules: they can
 * be deleted or replaced like any other.
 */
import { COLLECTIONS } from "../shared/collections";
import type { Store } from "../shared/store";
import { makeRule, RuleInput } from "./alerts";

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

/**
 * Writes the default rules unless this store was seeded before or already has a rule, then
 * writes the marker. Resolves to the number of rules written (0 when none).
 */
export async function seedDefaultRules(
	store: Store,
	clock: () => number = Date.now
): Promise<number> {
	if (await store.get(COLLECTIONS.monitor, DEFAULTS_ID)) return 0;
	let written = 0;
	if ((await store.list(COLLECTIONS.alertRules)).length === 0) {
		const now = clock();
		for (const [i, input] of DEFAULT_RULES.entries()) {
			// One ms apart, so that they list (oldest first) in the order above.
			const rule = makeRule(input, { id: input.id, now: now + i, createdBy: "monitor" });
			await store.cas(COLLECTIONS.alertRules, rule.id, rule, 0);
		}
		written = DEFAULT_RULES.length;
	}
	await store.cas(COLLECTIONS.monitor, DEFAULTS_ID, { at: clock() }, 0);
	return written;
}
