/**
 * Catalog: the registry's store collections and the only code that reads or writes them.
 * `resources` (by id) with `resourceNames` (name → id, which keeps names unique within an owner),
 * `services` (by name within an owner), and `health` (by target key, see targets.ts). Names are
 * keyed per owner (ownership.ts): the cluster's under the bare name, as before owners existed,
 * a tenant's under `tenant/name`. Writes that touch several documents
 * go as one transaction, checked against the versions read, so that two registry instances (or
 * two requests) never both take a name.
 */
import crypto from "crypto";
import { COLLECTIONS } from "../shared/collections";
import { ConflictError, ForbiddenError, InvalidInputError, NotFoundError } from "../shared/errors";
import {
	canRead,
	changeRight,
	type Owned,
	type Principal,
	tenantFilter
} from "../shared/principal";
import type { Store, StoredDoc, Versioned } from "../shared/store";
import { ApplyDocument, ApplyPlan, planApply } from "./apply";
import { findCycle } from "./dependencies";
import { HealthState, initialHealth } from "./health";
import {
	ExternalService,
	normalizeResource,
	normalizeService,
	Resource,
	ResourceInput,
	ServiceInput
} from "./model";
import {
	CLUSTER,
	nameScopes,
	type Owner,
	ownerOf,
	pickNamed,
	sameOwner,
	scopedKey
} from "./ownership";
import { checkTargets, endpointKey, resourceKey, serviceKey, Target } from "./targets";

export class Catalog {
	/**
	 * `holder.store` is read at each call: the store mixin opens the store when the service
	 * starts, after the service has built its catalog.
	 */
	constructor(private readonly holder: { readonly store: Store }) {}

	private get store(): Store {
		return this.holder.store;
	}

	/** Registered resources by name, only those of `type` when given. */
	async resources(type?: string): Promise<Resource[]> {
		return (await this.store.list<Resource>(COLLECTIONS.resources))
			.map(d => d.value)
			.filter(r => !type || r.type === type)
			.sort((a, b) => a.name.localeCompare(b.name));
	}

	/** The resources the principal may see: its tenant's and the cluster's (an admin: all). */
	async visibleResources(user: Principal, type?: string): Promise<Resource[]> {
		return (await this.resources(type)).filter(r => canRead(user, r));
	}

	async findResource(id: string): Promise<Versioned<Resource>> {
		const doc = await this.store.get<Resource>(COLLECTIONS.resources, id);
		if (!doc) throw new NotFoundError("Resource", id);
		return doc;
	}

	/** A resource the principal may see: another tenant's is 404, as a missing one. */
	async readResource(id: string, user: Principal): Promise<Versioned<Resource>> {
		const doc = await this.store.get<Resource>(COLLECTIONS.resources, id);
		if (!doc || !canRead(user, doc.value)) throw new NotFoundError("Resource", id);
		return doc;
	}

	/** A resource the principal may change: 404 for another tenant's, 403 for the cluster's. */
	async changeableResource(id: string, user: Principal): Promise<Versioned<Resource>> {
		const doc = await this.readResource(id, user);
		checkChange(user, doc.value, "resource", doc.value.name);
		return doc;
	}

	/** The id of the resource of that name within an owner (default the cluster), or null. */
	async resourceId(name: string, owner: Owned = CLUSTER): Promise<string | null> {
		const doc = await this.store.get<{ id: string }>(
			COLLECTIONS.resourceNames,
			scopedKey(owner, name)
		);
		return doc ? doc.value.id : null;
	}

	/**
	 * Creates a resource of `owner` (default the cluster), or replaces `existing` (as read,
	 * keeping its owner); 409 when its owner has a resource of that name already.
	 */
	async saveResource(
		input: ResourceInput,
		existing?: Versioned<Resource>,
		owner: Owned = CLUSTER
	): Promise<Resource> {
		const now = Date.now();
		const id = existing?.value.id ?? crypto.randomUUID();
		const r: Resource = {
			...normalizeResource(input, id, now, existing?.value.createdAt ?? now),
			...ownerOf(existing?.value ?? owner)
		};
		const key = scopedKey(r, r.name);
		const renamed = existing && existing.value.name !== r.name;
		const ok = await this.store.transact(
			[
				{ collection: COLLECTIONS.resources, id, version: existing?.version ?? 0 },
				...(!existing || renamed
					? [{ collection: COLLECTIONS.resourceNames, id: key, version: 0 }]
					: [])
			],
			[
				{ collection: COLLECTIONS.resources, id, value: r },
				{ collection: COLLECTIONS.resourceNames, id: key, value: { id } },
				...(renamed
					? [
							{
								collection: COLLECTIONS.resourceNames,
								id: scopedKey(existing.value, existing.value.name),
								value: null
							}
						]
					: [])
			]
		);
		if (!ok)
			throw new ConflictError(
				`A resource named '${r.name}' exists already, or this one changed meanwhile.`,
				{ name: r.name }
			);
		return r;
	}

	/** Removes a resource, its name and its health; answers what was removed. */
	async deleteResource(id: string, read?: Versioned<Resource>): Promise<Resource> {
		const { value: r, version } = read ?? (await this.findResource(id));
		await this.store.transact(
			[{ collection: COLLECTIONS.resources, id: r.id, version }],
			[
				{ collection: COLLECTIONS.resources, id: r.id, value: null },
				{ collection: COLLECTIONS.resourceNames, id: scopedKey(r, r.name), value: null },
				{ collection: COLLECTIONS.health, id: resourceKey(r.id), value: null }
			]
		);
		return r;
	}

	/**
	 * Removes a resource document that exists but cannot be read back (it fails to parse or its
	 * schema), with the names that point at it and its health; false when there is none such.
	 */
	async purgeUnreadableResource(id: string): Promise<boolean> {
		const [version] = await this.store.versions(COLLECTIONS.resources, [id]);
		if (version === 0 || (await this.store.get(COLLECTIONS.resources, id))) return false;
		const names = (await this.store.list<{ id: string }>(COLLECTIONS.resourceNames)).filter(
			d => d.value.id === id
		);
		await this.store.transact(
			[{ collection: COLLECTIONS.resources, id, version }],
			[
				{ collection: COLLECTIONS.resources, id, value: null },
				{ collection: COLLECTIONS.health, id: resourceKey(id), value: null },
				...names.map(d => ({
					collection: COLLECTIONS.resourceNames,
					id: d.id,
					value: null
				}))
			]
		);
		return true;
	}

	/** Registered external services, in the store's order. */
	async services(): Promise<ExternalService[]> {
		return (await this.store.list<ExternalService>(COLLECTIONS.services)).map(d => d.value);
	}

	/** The services the principal may see: its tenant's and the cluster's (an admin: all). */
	async visibleServices(user: Principal): Promise<ExternalService[]> {
		return (await this.services()).filter(s => canRead(user, s));
	}

	/** The service of that name within an owner (default the cluster), or null. */
	async service(name: string, owner: Owned = CLUSTER): Promise<ExternalService | null> {
		return (await this.serviceDoc(name, owner))?.value ?? null;
	}

	private serviceDoc(name: string, owner: Owned): Promise<Versioned<ExternalService> | null> {
		return this.store.get<ExternalService>(COLLECTIONS.services, scopedKey(owner, name));
	}

	/** The cluster's service of that name; 404 when there is none. */
	async findService(name: string): Promise<Versioned<ExternalService>> {
		const doc = await this.serviceDoc(name, CLUSTER);
		if (!doc) throw new NotFoundError("Service", name);
		return doc;
	}

	/**
	 * The service a name means to this principal (ownership.ts nameScopes): a tenant's user gets
	 * its own, else the cluster's; an admin the tenant asked for, else the cluster's, else the one
	 * tenant's of that name (409 naming the tenants when several). Null when none.
	 */
	async namedService(
		name: string,
		user: Principal,
		asked?: string
	): Promise<Versioned<ExternalService> | null> {
		const { scopes, searchTenants } = nameScopes(user, tenantFilter(user, asked));
		for (const scope of scopes) {
			const doc = await this.serviceDoc(name, scope);
			if (doc) return doc;
		}
		if (!searchTenants) return null;
		const all = await this.store.list<ExternalService>(COLLECTIONS.services);
		const picked = pickNamed(
			"Service",
			name,
			all.filter(d => d.value.name === name).map(d => d.value)
		);
		return picked ? this.serviceDoc(name, picked) : null;
	}

	/** As namedService, but 404 when the name means nothing to the principal. */
	async resolveService(
		name: string,
		user: Principal,
		asked?: string
	): Promise<Versioned<ExternalService>> {
		const doc = await this.namedService(name, user, asked);
		if (!doc) throw new NotFoundError("Service", name);
		return doc;
	}

	/**
	 * The resource id a dependency name means for a service of `owner`: a tenant's own resource,
	 * else the cluster's; the cluster's services depend on the cluster's only.
	 */
	async dependencyResource(name: string, owner: Owned): Promise<string | null> {
		for (const scope of dependencyScopes(owner)) {
			const id = await this.resourceId(name, scope);
			if (id !== null) return id;
		}
		return null;
	}

	/** The service a dependency name means for a service of `owner` (as dependencyResource). */
	async dependencyService(name: string, owner: Owned): Promise<ExternalService | null> {
		for (const scope of dependencyScopes(owner)) {
			const s = await this.service(name, scope);
			if (s) return s;
		}
		return null;
	}

	/**
	 * Creates a service of `owner` (default the cluster), or replaces `existing` (as read, keeping
	 * its owner); 409 when its owner has a service of that name, 422 when its dependencies would
	 * form a cycle with those of the services registered.
	 */
	async saveService(
		input: ServiceInput,
		existing?: Versioned<ExternalService>,
		owner: Owned = CLUSTER
	): Promise<ExternalService> {
		const now = Date.now();
		const s: ExternalService = {
			...normalizeService(input, now, existing?.value.createdAt ?? now),
			...ownerOf(existing?.value ?? owner)
		};
		const key = serviceKey(s);
		const all = await this.store.list<ExternalService>(COLLECTIONS.services);
		if (!existing && all.some(d => d.id === key))
			throw new ConflictError(`A service named '${s.name}' exists already.`, {
				name: s.name
			});
		const cycle = findCycle(dependencyGraph(all, s), key, dependencyKeys(s, all, s));
		if (cycle) {
			const names = cycle.map(k => k.slice(k.lastIndexOf("/") + 1));
			throw new InvalidInputError(
				`These dependencies would form a cycle: ${names.join(" → ")}.`,
				{ cycle: names }
			);
		}
		const ok =
			(await this.store.cas(COLLECTIONS.services, key, s, existing?.version ?? 0)) !== null;
		if (!ok)
			throw new ConflictError(
				`A service named '${s.name}' exists already, or it changed meanwhile.`,
				{ name: s.name }
			);
		return s;
	}

	/**
	 * Removes a service (the cluster's of that name, or the one read) and the health of each of
	 * its endpoints; answers what was removed.
	 */
	async deleteService(name: string, read?: Versioned<ExternalService>): Promise<ExternalService> {
		const { value: s, version } = read ?? (await this.findService(name));
		const key = serviceKey(s);
		await this.store.transact(
			[{ collection: COLLECTIONS.services, id: key, version }],
			[
				{ collection: COLLECTIONS.services, id: key, value: null },
				...s.endpoints.map(url => ({
					collection: COLLECTIONS.health,
					id: endpointKey(key, url),
					value: null
				}))
			]
		);
		return s;
	}

	/** What applying `doc` for `owner` (default the cluster) would change, against its objects. */
	async plan(doc: ApplyDocument, owner: Owned = CLUSTER): Promise<ApplyPlan> {
		const mine = (x: Owned) => sameOwner(x, owner);
		const [services, resources] = await Promise.all([this.services(), this.resources()]);
		return planApply(
			doc,
			new Map(services.filter(mine).map(s => [s.name, s])),
			new Map(resources.filter(mine).map(r => [r.name, r])),
			Date.now()
		);
	}

	/**
	 * Saves what a plan (made for `owner`) creates or updates; resources first, since services
	 * may depend on them.
	 */
	async apply(plan: ApplyPlan, owner: Owned = CLUSTER): Promise<void> {
		for (const step of plan.resources.filter(s => s.change !== "unchanged"))
			await this.saveResource(
				step.input,
				step.change === "updated" ? await this.findResource(step.id!) : undefined,
				owner
			);
		for (const step of plan.services.filter(s => s.change !== "unchanged")) {
			const existing =
				step.change === "updated"
					? ((await this.serviceDoc(step.input.name, owner)) ?? undefined)
					: undefined;
			await this.saveService(step.input, existing, owner);
		}
	}

	/** What there is to check: every resource, and every endpoint of every service. */
	async targets(): Promise<Target[]> {
		const [resources, services] = await Promise.all([
			this.store.list<Resource>(COLLECTIONS.resources),
			this.services()
		]);
		return checkTargets(
			resources.map(d => d.value),
			services
		);
	}

	/** A target's health; "unknown" before its first check. */
	async health(key: string): Promise<HealthState> {
		return (
			(await this.store.get<HealthState>(COLLECTIONS.health, key))?.value ?? initialHealth()
		);
	}

	/** The health of those targets that have been checked, by key. */
	async healthMany(keys: string[]): Promise<Map<string, HealthState>> {
		const all = await this.store.list<HealthState>(COLLECTIONS.health);
		const wanted = new Set(keys);
		return new Map(all.filter(d => wanted.has(d.id)).map(d => [d.id, d.value]));
	}

	async putHealth(key: string, state: HealthState): Promise<void> {
		await this.store.put(COLLECTIONS.health, key, state);
	}
}

/**
 * Refuses a change the principal may not make (principal.ts changeRight): another tenant's
 * object is 404 exactly as a missing one, a cluster object a non-admin would change is 403.
 */
export function checkChange(
	user: Principal,
	object: Owned,
	kind: "resource" | "service",
	id: string
): void {
	const right = changeRight(user, object);
	if (right === "hidden")
		throw new NotFoundError(kind === "resource" ? "Resource" : "Service", id);
	if (right === "forbidden")
		throw new ForbiddenError(
			`The ${kind} '${id}' belongs to the cluster: only an admin may change it.`,
			{ kind, id, owner: "cluster" }
		);
}

/** Where a dependency of a service of `owner` is looked up: its tenant's, then the cluster's. */
export function dependencyScopes(owner: Owned): Owner[] {
	const o = ownerOf(owner);
	return o.owner === "tenant" ? [o, CLUSTER] : [CLUSTER];
}

/** The service keys that a service's dependency names mean, among `all` (and `extra`). */
function dependencyKeys(
	s: ExternalService,
	all: StoredDoc<ExternalService>[],
	extra: ExternalService
): string[] {
	const keys = new Set([...all.map(d => d.id), serviceKey(extra)]);
	return s.dependencies.flatMap(name => {
		const key = dependencyScopes(s)
			.map(scope => scopedKey(scope, name))
			.find(k => keys.has(k));
		return key ? [key] : [];
	});
}

/** The registered services' dependencies by service key, with `next` in place of its own. */
function dependencyGraph(
	all: StoredDoc<ExternalService>[],
	next: ExternalService
): Map<string, string[]> {
	return new Map(all.map(d => [d.id, dependencyKeys(d.value, all, next)]));
}
