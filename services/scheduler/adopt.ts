/**
 * What an adoption of the store re-registers (identity-guard.ts `adopt`): the agents still run
 * replicas the store no longer knows (it was restarted empty, or restored from an old backup),
 * and each replica carries the spec it was started from. From those specs this rebuilds, for
 * every workload the store does not hold, the workload with its replicas where they run (same
 * fence, so that the agents keep them), its name, its Moleculer service name claim, its
 * reservations (placement records and node allocations) and its tenant's usage: the writes of
 * one transaction, each checked at the version read.
 *
 * What the specs do not carry is not invented: placement preferences come back as the defaults
 * (binpack, no node selector, no anti-affinity), priority 0, and replicas that run nowhere (the
 * gaps below the highest index seen) come back pending. Workloads the store still holds are
 * left as they are; their placements are the reconcile's business. Pure.
 */
import { COLLECTIONS } from "../shared/collections";
import type { DocWrite, Versioned, VersionCheck } from "../shared/store";
import type { ReplicaSpec, ReplicaStatus } from "../shared/types";
import { copyAllocation, emptyAllocation, reserveInto, type Allocation } from "./placement";
import { addUsage, emptyUsage, type TenantUsage } from "./quota";
import { PLACEMENTS, type PlacementRecord } from "./reservations";
import type { ServiceClaim } from "./repository";
import { pendingReplica, replicaKey, totalRequest, type Replica, type Workload } from "./workload";

/** What one agent answers to `agent.running`. */
export interface AgentReplicas {
	nodeID: string;
	replicas: Array<{ spec: ReplicaSpec; status: ReplicaStatus }>;
}

/** What the store holds now, as far as the adoption's checks need it. */
export interface AdoptionBase {
	/** Workload ids the store holds. */
	workloads: ReadonlySet<string>;
	/** `tenant/name` → the workload id holding the name. */
	names: ReadonlyMap<string, string>;
	allocations: ReadonlyMap<string, Versioned<Allocation>>;
	usage: ReadonlyMap<string, Versioned<TenantUsage>>;
	claims: ReadonlyMap<string, Versioned<ServiceClaim>>;
}

export interface Adoption {
	workloads: Workload[];
	/** Workloads seen running that are not re-registered, and why. */
	skipped: Array<{ workloadId: string; reason: string }>;
	checks: VersionCheck[];
	writes: DocWrite[];
}

/** A replica seen running, with the node it runs on. */
interface Seen {
	nodeID: string;
	spec: ReplicaSpec;
	status: ReplicaStatus;
}

/** The node ids, tenants and service names an adoption reads the versions of first. */
export function adoptionReads(agents: AgentReplicas[]): {
	workloadIds: string[];
	names: string[];
	nodes: string[];
	tenants: string[];
	services: string[];
} {
	const specs = agents.flatMap(a => a.replicas.map(r => r.spec));
	const uniq = (xs: string[]) => [...new Set(xs)].sort();
	return {
		workloadIds: uniq(specs.map(s => s.workloadId)),
		names: uniq(specs.map(s => `${s.tenant}/${s.name}`)),
		nodes: uniq(agents.filter(a => a.replicas.length).map(a => a.nodeID)),
		tenants: uniq(specs.map(s => s.tenant)),
		services: uniq(
			specs.flatMap(s => (s.kind === "service" && s.service?.name ? [s.service.name] : []))
		)
	};
}

export function planAdoption(agents: AgentReplicas[], base: AdoptionBase, now: number): Adoption {
	const byWorkload = new Map<string, Seen[]>();
	for (const a of agents)
		for (const r of a.replicas) {
			const list = byWorkload.get(r.spec.workloadId) ?? [];
			list.push({ nodeID: a.nodeID, ...r });
			byWorkload.set(r.spec.workloadId, list);
		}
	const skipped: Adoption["skipped"] = [];
	const workloads: Workload[] = [];
	const allocations = new Map<string, Allocation>();
	const usage = new Map<string, TenantUsage>();
	const claims = new Map<string, ServiceClaim>();
	const checks: VersionCheck[] = [];
	const writes: DocWrite[] = [];
	let seq = now * 1000;
	for (const [id, seen] of [...byWorkload].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
		if (base.workloads.has(id)) {
			skipped.push({ workloadId: id, reason: "the store holds it" });
			continue;
		}
		// The newest placement of each replica: an older copy elsewhere is stopped by fencing.
		const newest = new Map<number, Seen>();
		for (const s of seen) {
			const had = newest.get(s.spec.replica);
			if (!had || s.spec.fence > had.spec.fence) newest.set(s.spec.replica, s);
		}
		const head = [...newest.values()].sort((a, b) => b.spec.fence - a.spec.fence)[0].spec;
		const name = `${head.tenant}/${head.name}`;
		const holder = base.names.get(name);
		if (holder !== undefined && holder !== id) {
			skipped.push({ workloadId: id, reason: `its name ${name} is taken by ${holder}` });
			continue;
		}
		const service = head.kind === "service" ? head.service?.name : undefined;
		const claim = service
			? (claims.get(service) ?? base.claims.get(service)?.value)
			: undefined;
		if (service && claim && claim.tenant !== head.tenant) {
			skipped.push({
				workloadId: id,
				reason: `its service name ${service} is claimed by tenant ${claim.tenant}`
			});
			continue;
		}
		const count = Math.max(...newest.keys()) + 1;
		const replicas: Replica[] = Array.from({ length: count }, (_, index) => {
			const s = newest.get(index);
			if (!s)
				return pendingReplica(
					index,
					0,
					now,
					"not running anywhere when the store was adopted"
				);
			return {
				index,
				node: s.nodeID,
				gpus: s.spec.gpus,
				fence: s.spec.fence,
				state: s.status.state === "starting" ? "starting" : "running",
				restarts: s.status.restarts,
				since: now
			};
		});
		const w: Workload = {
			id,
			tenant: head.tenant,
			name: head.name,
			kind: head.kind,
			...(head.service ? { service: head.service } : {}),
			...(head.process ? { process: head.process } : {}),
			resources: head.resources,
			placement: { strategy: "binpack", nodeSelector: {}, antiAffinity: false },
			restart: head.restart,
			priority: 0,
			seq: ++seq,
			createdAt: now,
			createdBy: "system:adopt",
			replicas,
			fence: Math.max(...replicas.map(r => r.fence)),
			events: [
				{
					at: now,
					type: "created",
					message: `Re-registered from what its agents run when the store was adopted (${newest.size} of ${count} replica(s) running).`
				}
			]
		};
		workloads.push(w);
		checks.push(
			{ collection: COLLECTIONS.workloads, id, version: 0 },
			{ collection: COLLECTIONS.names, id: name, version: 0 }
		);
		writes.push(
			{ collection: COLLECTIONS.workloads, id, value: w },
			{ collection: COLLECTIONS.names, id: name, value: { id } }
		);
		for (const r of replicas) {
			if (!r.node) continue;
			const key = replicaKey(id, r.index, r.fence);
			const record: PlacementRecord = {
				nodeID: r.node,
				gpus: r.gpus,
				resources: w.resources,
				at: now
			};
			checks.push({ collection: PLACEMENTS, id: key, version: 0 });
			writes.push({ collection: PLACEMENTS, id: key, value: record });
			const a =
				allocations.get(r.node) ??
				copyAllocation(base.allocations.get(r.node)?.value ?? emptyAllocation());
			reserveInto(a, key, w.resources, r.gpus);
			allocations.set(r.node, a);
		}
		const u = usage.get(w.tenant) ?? base.usage.get(w.tenant)?.value ?? emptyUsage();
		usage.set(w.tenant, addUsage(u, totalRequest(w.resources, count), 1, 1));
		if (service) {
			const c = claim ?? { tenant: w.tenant, workloadIds: [] };
			claims.set(service, { tenant: c.tenant, workloadIds: [...c.workloadIds, id].sort() });
		}
	}
	const versioned = <T>(
		collection: string,
		changed: Map<string, T>,
		read: ReadonlyMap<string, Versioned<unknown>>
	) => {
		for (const [id, value] of changed) {
			checks.push({ collection, id, version: read.get(id)?.version ?? 0 });
			writes.push({ collection, id, value });
		}
	};
	versioned(COLLECTIONS.allocations, allocations, base.allocations);
	versioned(COLLECTIONS.usage, usage, base.usage);
	versioned(COLLECTIONS.serviceClaims, claims, base.claims);
	return { workloads, skipped, checks, writes };
}
