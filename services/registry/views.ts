/**
 * How the registry shows what it keeps: resources and services with their credentials masked
 * (in endpoints and config), their health attached, each service's endpoints with their circuit
 * breakers, and its status once its dependencies are counted (dependencies.ts). Discovered
 * Moleculer services are shown beside the registered ones, healthy on every node that offers them.
 */
import { NotFoundError } from "../shared/errors";
import type { Breakers } from "./breaker";
import type { Catalog } from "./catalog";
import { DependencyNode, dependencyTree, effectiveStatus, Status } from "./dependencies";
import type { DiscoveredService, Discovery } from "./discovery";
import { HealthState, initialHealth, publicHealth } from "./health";
import type { ExternalService, Resource } from "./model";
import { redactConfig, redactUrl } from "./secrets";
import { endpointKey, resourceKey } from "./targets";

/** What the dependency tree needs to know of one name. */
interface StatusInfo {
	kind: DependencyNode["kind"];
	own: Status;
	dependencies: string[];
}

/** A resource as the API shows it: no credential in clear, its health attached. */
export function resourceView(r: Resource, health: HealthState): Record<string, unknown> {
	return {
		...r,
		endpoint: redactUrl(r.endpoint),
		config: redactConfig(r.config),
		health: publicHealth(health)
	};
}

/** A service's own status: healthy when one endpoint is, unhealthy when all are, else unknown. */
export function endpointsStatus(s: ExternalService, health: Map<string, HealthState>): Status {
	const states = s.endpoints.map(
		url => health.get(endpointKey(s.name, url))?.status ?? "unknown"
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

	/** Registered services, and the discovered ones not registered under their name, by name. */
	async services(): Promise<Array<Record<string, unknown>>> {
		const external = await this.catalog.services();
		const views = await Promise.all(external.map(s => this.service(s)));
		const names = new Set(external.map(s => s.name));
		for (const m of this.discovery.services())
			if (!names.has(m.name)) views.push(moleculerListView(m));
		views.sort((a, b) => String(a.name).localeCompare(String(b.name)));
		return views;
	}

	/** The registered service of that name, else the discovered one; 404 when neither. */
	async serviceNamed(name: string): Promise<Record<string, unknown>> {
		const stored = await this.catalog.service(name);
		if (stored) return this.service(stored);
		const m = this.discovery.find(name);
		if (!m) throw new NotFoundError("Service", name);
		return moleculerView(m);
	}

	/** A registered service: its endpoints' health and circuits, status and dependency tree. */
	async service(s: ExternalService): Promise<Record<string, unknown>> {
		const health = await this.catalog.healthMany(
			s.endpoints.map(url => endpointKey(s.name, url))
		);
		// The tree is built from statuses looked up ahead, since dependencyTree is synchronous.
		const infos = new Map<string, StatusInfo>();
		const collect = async (name: string, path: string[]) => {
			if (infos.has(name) || path.includes(name)) return;
			const info = await this.statusOf(name);
			infos.set(name, info);
			for (const dep of info.dependencies) await collect(dep, [...path, name]);
		};
		await collect(s.name, []);
		const tree = dependencyTree(s.name, name => infos.get(name)!);
		return {
			...s,
			endpoints: s.endpoints.map(url => ({
				url: redactUrl(url),
				health: publicHealth(health.get(endpointKey(s.name, url)) ?? initialHealth()),
				circuit: this.breakers.isOpen(endpointKey(s.name, url)) ? "open" : "closed"
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
			target: redactUrl(t.check.endpoint),
			...publicHealth(health.get(t.key) ?? initialHealth())
		}));
	}

	/** What a dependency is (service, resource, discovered or missing) and its own status. */
	private async statusOf(name: string): Promise<StatusInfo> {
		const s = await this.catalog.service(name);
		if (s) {
			const health = await this.catalog.healthMany(
				s.endpoints.map(url => endpointKey(name, url))
			);
			return {
				kind: "service",
				own: endpointsStatus(s, health),
				dependencies: s.dependencies
			};
		}
		const id = await this.catalog.resourceId(name);
		if (id !== null)
			return {
				kind: "resource",
				own: (await this.catalog.health(resourceKey(id))).status,
				dependencies: []
			};
		if (this.discovery.find(name))
			return { kind: "moleculer", own: "healthy", dependencies: [] };
		return { kind: "missing", own: "unknown", dependencies: [] };
	}
}
