/**
 * How the registry shows what it keeps: resources and services with their credentials masked
 * (in endpoints and config), their health attached, each service's endpoints with their circuit
 * breakers, and its status once its dependencies are counted (dependencies.ts). Discovered
 * Moleculer services are shown beside the registered ones, healthy on every node that offers them.
 * Each shows its owner (`owner`, and `tenant` when a tenant's); a principal is shown only what it
 * may read (services/shared/principal.ts), and a name means what ownership.ts says it means.
 */
import { NotFoundError } from "../shared/errors";
import type { Principal } from "../shared/principal";
import type { Breakers } from "./breaker";
import type { Catalog } from "./catalog";
import { DependencyNode, dependencyTree, effectiveStatus, Status } from "./dependencies";
import type { DiscoveredService, Discovery } from "./discovery";
import { HealthState, initialHealth, publicHealth } from "./health";
import type { ExternalService, Resource } from "./model";
import {
	CLUSTER_ACTOR,
	canReadDiscovered,
	discoveredOwner,
	type Owner,
	ownerFields,
	ownerOf
} from "./ownership";
import { redactConfig, redactUrl } from "./secrets";
import { endpointKey, resourceKey, serviceKey } from "./targets";

/**
 * What the dependency tree needs to know of one node, by node id: a dependency name means
 * different objects to services of different owners, so the tree is keyed by what it resolved to.
 */
interface StatusInfo {
	name: string;
	kind: DependencyNode["kind"];
	own: Status;
	/** Node ids of its dependencies. */
	dependencies: string[];
}

/** A resource as the API shows it: no credential in clear, its health attached. */
export function resourceView(r: Resource, health: HealthState): Record<string, unknown> {
	return {
		...r,
		...ownerFields(r),
		endpoint: redactUrl(r.endpoint),
		config: redactConfig(r.config),
		health: publicHealth(health)
	};
}

/** A service's own status: healthy when one endpoint is, unhealthy when all are, else unknown. */
export function endpointsStatus(s: ExternalService, health: Map<string, HealthState>): Status {
	const states = s.endpoints.map(
		url => health.get(endpointKey(serviceKey(s), url))?.status ?? "unknown"
	);
	if (states.some(x => x === "healthy")) return "healthy";
	if (states.length > 0 && states.every(x => x === "unhealthy")) return "unhealthy";
	return "unknown";
}

/** A discovered Moleculer service in the list of services. */
export function moleculerListView(m: DiscoveredService): Record<string, unknown> {
	return {
		name: m.name,
		type: "moleculer",
		...discoveredOwner(m.tenants),
		nodes: m.nodes,
		actions: m.actions,
		endpoints: m.nodes.map(node => ({ node, health: { status: "healthy" } })),
		dependencies: [],
		status: "healthy"
	};
}

/** A discovered Moleculer service on its own: it depends on nothing the registry knows. */
export function moleculerView(m: DiscoveredService): Record<string, unknown> {
	return {
		name: m.name,
		type: "moleculer",
		...discoveredOwner(m.tenants),
		nodes: m.nodes,
		actions: m.actions,
		status: "healthy",
		dependencyTree: { name: m.name, kind: "moleculer", status: "healthy", dependencies: [] }
	};
}

export class Views {
	constructor(
		private readonly catalog: Catalog,
		private readonly breakers: Pick<Breakers, "isOpen">,
		private readonly discovery: Pick<Discovery, "services" | "find">
	) {}

	async resource(r: Resource): Promise<Record<string, unknown>> {
		return resourceView(r, await this.catalog.health(resourceKey(r.id)));
	}

	/**
	 * The services the principal may see (default: the control plane, which sees all), and the
	 * discovered ones it may see that no service it sees is registered as, by name.
	 */
	async services(user: Principal = CLUSTER_ACTOR): Promise<Array<Record<string, unknown>>> {
		const external = await this.catalog.visibleServices(user);
		const views = await Promise.all(external.map(s => this.service(s)));
		const names = new Set(external.map(s => s.name));
		for (const m of this.discovery.services())
			if (!names.has(m.name) && canReadDiscovered(user, m.tenants))
				views.push(moleculerListView(m));
		views.sort(
			(a, b) =>
				String(a.name).localeCompare(String(b.name)) ||
				String(a.tenant ?? "").localeCompare(String(b.tenant ?? ""))
		);
		return views;
	}

	/**
	 * The registered service a name means to the principal (Catalog.namedService), else the
	 * discovered one it may see; 404 when neither, the same for another tenant's.
	 */
	async serviceNamed(
		name: string,
		user: Principal = CLUSTER_ACTOR,
		asked?: string
	): Promise<Record<string, unknown>> {
		const stored = await this.catalog.namedService(name, user, asked);
		if (stored) return this.service(stored.value);
		const m = this.visibleDiscovered(name, user);
		if (!m) throw new NotFoundError("Service", name);
		return moleculerView(m);
	}

	/** The running Moleculer service of that name if the principal may see it and call it. */
	visibleDiscovered(name: string, user: Principal): DiscoveredService | undefined {
		const m = this.discovery.find(name);
		return m && canReadDiscovered(user, m.tenants) ? m : undefined;
	}

	/** A registered service: its endpoints' health and circuits, status and dependency tree. */
	async service(s: ExternalService): Promise<Record<string, unknown>> {
		const key = serviceKey(s);
		const health = await this.catalog.healthMany(s.endpoints.map(url => endpointKey(key, url)));
		// The tree is built from statuses looked up ahead, since dependencyTree is synchronous.
		const infos = new Map<string, StatusInfo>();
		const root = `service:${key}`;
		infos.set(root, {
			name: s.name,
			kind: "service",
			own: endpointsStatus(s, health),
			dependencies: await this.dependencyIds(s, infos)
		});
		const tree = relabel(
			dependencyTree(root, id => infos.get(id)!),
			infos
		);
		return {
			...s,
			...ownerFields(s),
			endpoints: s.endpoints.map(url => ({
				url: redactUrl(url),
				health: publicHealth(health.get(endpointKey(key, url)) ?? initialHealth()),
				circuit: this.breakers.isOpen(endpointKey(key, url)) ? "open" : "closed"
			})),
			status: effectiveStatus(
				endpointsStatus(s, health),
				tree.dependencies.map(d => d.status)
			),
			dependencyTree: tree
		};
	}

	/** Every target's health in one list, credentials masked. */
	async health(): Promise<Array<Record<string, unknown>>> {
		const targets = await this.catalog.targets();
		const health = await this.catalog.healthMany(targets.map(t => t.key));
		return targets.map(t => ({
			kind: t.kind,
			name: t.name,
			...t.owner,
			target: redactUrl(t.check.endpoint),
			...publicHealth(health.get(t.key) ?? initialHealth())
		}));
	}

	/**
	 * The node ids of a service's dependencies, each looked up (with its own dependencies, once)
	 * into `infos`: a tenant's service finds its tenant's services and resources, then the
	 * cluster's; a cluster service the cluster's only (Catalog.dependencyService).
	 */
	private async dependencyIds(
		s: ExternalService,
		infos: Map<string, StatusInfo>
	): Promise<string[]> {
		const ids: string[] = [];
		for (const name of s.dependencies) {
			const { id, info, next } = await this.statusOf(name, ownerOf(s));
			ids.push(id);
			if (infos.has(id)) continue;
			infos.set(id, info);
			if (next) info.dependencies = await this.dependencyIds(next, infos);
		}
		return ids;
	}

	/** What a dependency of a service of `owner` is (service, resource, discovered or missing). */
	private async statusOf(
		name: string,
		owner: Owner
	): Promise<{ id: string; info: StatusInfo; next?: ExternalService }> {
		const s = await this.catalog.dependencyService(name, owner);
		if (s) {
			const health = await this.catalog.healthMany(
				s.endpoints.map(url => endpointKey(serviceKey(s), url))
			);
			return {
				id: `service:${serviceKey(s)}`,
				info: { name, kind: "service", own: endpointsStatus(s, health), dependencies: [] },
				next: s
			};
		}
		const id = await this.catalog.dependencyResource(name, owner);
		if (id !== null)
			return {
				id: `resource:${id}`,
				info: {
					name,
					kind: "resource",
					own: (await this.catalog.health(resourceKey(id))).status,
					dependencies: []
				}
			};
		// A discovered service counts only when a service of this owner could call it.
		const reader = owner.owner === "tenant" ? tenantReader(owner.tenant) : clusterReader;
		if (this.visibleDiscovered(name, reader))
			return {
				id: `moleculer:${name}`,
				info: { name, kind: "moleculer", own: "healthy", dependencies: [] }
			};
		return {
			id: `missing:${name}`,
			info: { name, kind: "missing", own: "unknown", dependencies: [] }
		};
	}
}

/** Who a tenant's service reads as: a user of that tenant. */
const tenantReader = (tenant: string): Principal => ({
	sub: "",
	tenant,
	roles: ["viewer"],
	exp: 0
});
/** Who a cluster service reads as: a user of no tenant, who sees the cluster's only. */
const clusterReader: Principal = { sub: "", tenant: "", roles: ["viewer"], exp: 0 };

/** The tree with each node's name instead of its node id. */
function relabel(node: DependencyNode, infos: Map<string, StatusInfo>): DependencyNode {
	return {
		...node,
		name: infos.get(node.name)?.name ?? node.name,
		dependencies: node.dependencies.map(d => relabel(d, infos))
	};
}
