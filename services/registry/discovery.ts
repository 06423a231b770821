/**
 * What the registry learns from the broker's service registry, without anyone registering it:
 * the Moleculer services that run in the cluster (by name, with their nodes and published
 * actions), which of them came or went since the last look, and which registry instances are
 * alive to share the health checking. A service a tenant's workload runs carries that tenant in
 * its metadata (WORKLOAD_TENANT_META, set by the agent), which makes it the tenant's.
 */
import { WORKLOAD_TENANT_META } from "../shared/types";
import { discoveredOwner, type Owner } from "./ownership";

/** The part of Moleculer's ServiceRegistry that discovery reads. */
export interface ServiceLister {
	getServiceList(opts: { onlyAvailable: boolean; withActions?: boolean }): unknown[];
}

/** A Moleculer service as the registry shows it: where it runs and what it offers. */
export interface DiscoveredService {
	name: string;
	nodes: string[];
	actions: string[];
	/** The tenants whose workloads run instances of it, sorted (none: the cluster's). */
	tenants: string[];
}

/** An entry of `getServiceList`: one service on one node. */
interface ListedService {
	name: string;
	nodeID: string;
	actions?: Record<string, { visibility?: string }>;
	metadata?: Record<string, unknown>;
}

/** The `services.health.changed` payload of a discovered service that appeared or went. */
export type DiscoveryChange = {
	name: string;
	type: "moleculer";
	health: { status: "healthy" } | { status: "unhealthy"; error: string };
} & Owner;

/**
 * Available services by name, each with its nodes and its published actions (both sorted);
 * Moleculer's internal `$` services are left out.
 */
export function moleculerServices(registry: ServiceLister): DiscoveredService[] {
	const byName = new Map<
		string,
		{ name: string; nodes: Set<string>; actions: Set<string>; tenants: Set<string> }
	>();
	const list = registry.getServiceList({
		onlyAvailable: true,
		withActions: true
	}) as ListedService[];
	for (const svc of list) {
		if (svc.name.startsWith("$")) continue;
		const entry = byName.get(svc.name) ?? {
			name: svc.name,
			nodes: new Set(),
			actions: new Set(),
			tenants: new Set()
		};
		entry.nodes.add(svc.nodeID);
		const tenant = svc.metadata?.[WORKLOAD_TENANT_META];
		if (typeof tenant === "string") entry.tenants.add(tenant);
		for (const [full, def] of Object.entries(svc.actions ?? {}))
			if (!def.visibility || def.visibility === "published") entry.actions.add(full);
		byName.set(svc.name, entry);
	}
	return [...byName.values()].map(e => ({
		name: e.name,
		nodes: [...e.nodes].sort(),
		actions: [...e.actions].sort(),
		tenants: [...e.tenants].sort()
	}));
}

export class Discovery {
	/** The services seen at the last `changes()`, by name, with their owners. */
	private discovered = new Map<string, Owner>();

	constructor(
		private readonly registry: ServiceLister,
		private readonly nodeID: string
	) {}

	/** The Moleculer services running now. */
	services(): DiscoveredService[] {
		return moleculerServices(this.registry);
	}

	/** The running Moleculer service of that name, if any. */
	find(name: string): DiscoveredService | undefined {
		return this.services().find(m => m.name === name);
	}

	/** What came (healthy) and went (unhealthy) since the last call, to announce. */
	changes(): DiscoveryChange[] {
		const now = new Map(this.services().map(m => [m.name, discoveredOwner(m.tenants)]));
		const changes: DiscoveryChange[] = [];
		for (const [name, owner] of now)
			if (!this.discovered.has(name))
				changes.push({ name, type: "moleculer", ...owner, health: { status: "healthy" } });
		for (const [name, owner] of this.discovered)
			if (!now.has(name))
				changes.push({
					name,
					type: "moleculer",
					...owner,
					health: { status: "unhealthy", error: "no node offers it" }
				});
		this.discovered = now;
		return changes;
	}

	/** The nodeIDs of the live registry instances, sorted; this one always among them. */
	registryInstances(): string[] {
		const list = this.registry.getServiceList({ onlyAvailable: true }) as ListedService[];
		const instances = list
			.filter(s => s.name === "registry")
			.map(s => s.nodeID)
			.sort();
		if (!instances.includes(this.nodeID)) instances.push(this.nodeID);
		return instances;
	}
}
