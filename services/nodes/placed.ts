/**
 * What a user sees of the workloads on a node (`GET /api/v1/nodes/:id`). The scheduler answers
 * every replica on the node (scheduler.placedOn); an admin sees them all, anyone else its own
 * tenant's in full and the other tenants' only as counts: no names, ids or tenants, which would
 * tell one tenant what another runs. The node's `allocated` totals stay whole: they are facts of
 * the node's capacity, not of any tenant.
 */
import { canSeeTenant, type Principal } from "../shared/principal";

/** One replica on a node, as scheduler.placedOn answers it. */
export interface PlacedReplica {
	id: string;
	name: string;
	tenant: string;
	replica: number;
	state: string;
	gpus: number[];
	resources: unknown;
}

/** The replicas on a node the user may not see in full, counted. */
export interface OtherTenants {
	/** Distinct workloads. */
	workloads: number;
	replicas: number;
}

/**
 * The replicas `user` sees on a node, and the count of the rest (zero for an admin or an
 * internal call without a user, who see everything).
 */
export function placedView(
	replicas: PlacedReplica[],
	user: Principal | undefined
): { workloads: PlacedReplica[]; otherTenants: OtherTenants } {
	const shown: PlacedReplica[] = [];
	const hidden = new Set<string>();
	let hiddenReplicas = 0;
	for (const r of replicas) {
		if (!user || canSeeTenant(user, r.tenant)) shown.push(r);
		else {
			hidden.add(r.id);
			hiddenReplicas++;
		}
	}
	return { workloads: shown, otherTenants: { workloads: hidden.size, replicas: hiddenReplicas } };
}
