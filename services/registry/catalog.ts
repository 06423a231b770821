/**
 * Catalog: the registry's store collections and the only code that reads or writes them.
 * `resources` (by id) with `resourceNames` (name → id, which keeps names unique), `services`
 * (by name), and `health` (by target key, see targets.ts). Writes that touch several documents
 * go as one transaction, checked against the versions read, so that two registry instances (or
 * two requests) never both take a name.
 */
import crypto from "crypto";
import { COLLECTIONS } from "../shared/collections";
import { ConflictError, InvalidInputError, NotFoundError } from "../shared/errors";
import type { Store, Versioned } from "../shared/store";
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
import { checkTargets, endpointKey, resourceKey, Target } from "./targets";

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

	async findResource(id: string): Promise<Versioned<Resource>> {
		const doc = await this.store.get<Resource>(COLLECTIONS.resources, id);
		if (!doc) throw new NotFoundError("Resource", id);
		return doc;
	}

	/** The id of the resource of that name, or null. */
	async resourceId(name: string): Promise<string | null> {
		const doc = await this.store.get<{ id: string }>(COLLECTIONS.resourceNames, name);
		return doc ? doc.value.id : null;
	}

	/** Creates a resource, or replaces `existing` (as read); 409 when the name is taken. */
	async saveResource(input: ResourceInput, existing?: Versioned<Resource>): Promise<Resource> {
		const now = Date.now();
		const id = existing?.value.id ?? crypto.randomUUID();
		const r = normalizeResource(input, id, now, existing?.value.createdAt ?? now);
		const renamed = existing && existing.value.name !== r.name;
		const ok = await this.store.transact(
			[
				{ collection: COLLECTIONS.resources, id, version: existing?.version ?? 0 },
				...(!existing || renamed
					? [{ collection: COLLECTIONS.resourceNames, id: r.name, version: 0 }]
					: [])
			],
			[
				{ collection: COLLECTIONS.resources, id, value: r },
				{ collection: COLLECTIONS.resourceNames, id: r.name, value: { id } },
				...(renamed
					? [
							{
								collection: COLLECTIONS.resourceNames,
								id: existing.value.name,
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
	async deleteResource(id: string): Promise<Resource> {
		const { value: r, version } = await this.findResource(id);
		await this.store.transact(
			[{ collection: COLLECTIONS.resources, id: r.id, version }],
			[
				{ collection: COLLECTIONS.resources, id: r.id, value: null },
				{ collection: COLLECTIONS.resourceNames, id: r.name, value: null },
				{ collection: COLLECTIONS.health, id: resourceKey(r.id), value: null }
			]
		);
		return r;
	}

	/** Registered external services, in the store's order. */
	async services(): Promise<ExternalService[]> {
		return (await this.store.list<ExternalService>(COLLECTIONS.services)).map(d => d.value);
	}

	/** The service of that name, or null. */
	async service(name: string): Promise<ExternalService | null> {
		return (await this.store.get<ExternalService>(COLLECTIONS.services, name))?.value ?? null;
	}

	async findService(name: string): Promise<Versioned<ExternalService>> {
		const doc = await this.store.get<ExternalService>(COLLECTIONS.services, name);
		if (!doc) throw new NotFoundError("Service", name);
		return doc;
	}

	/**
	 * Creates a service, or replaces `existing` (as read); 409 when the name is taken, 422 when
	 * its dependencies would form a cycle with those of the services registered.
	 */
	async saveService(
		input: ServiceInput,
		existing?: Versioned<ExternalService>
	): Promise<ExternalService> {
		const now = Date.now();
		const s = normalizeService(input, now, existing?.value.createdAt ?? now);
		const all = await this.store.list<ExternalService>(COLLECTIONS.services);
		if (!existing && all.some(d => d.id === s.name))
			throw new ConflictError(`A service named '${s.name}' exists already.`, {
				name: s.name
			});
		const graph = new Map(all.map(d => [d.id, d.value.dependencies]));
		const cycle = findCycle(graph, s.name, s.dependencies);
		if (cycle)
			throw new InvalidInputError(
				`These dependencies would form a cycle: ${cycle.join(" → ")}.`,
				{ cycle }
			);
		const ok =
			(await this.store.cas(COLLECTIONS.services, s.name, s, existing?.version ?? 0)) !==
			null;
		if (!ok)
			throw new ConflictError(
				`A service named '${s.name}' exists already, or it changed meanwhile.`,
				{ name: s.name }
			);
		return s;
	}

	/** Removes a service and the health of each of its endpoints; answers what was removed. */
	async deleteService(name: string): Promise<ExternalService> {
		const { value: s, version } = await this.findService(name);
		await this.store.transact(
			[{ collection: COLLECTIONS.services, id: s.name, version }],
			[
				{ collection: COLLECTIONS.services, id: s.name, value: null },
				...s.endpoints.map(url => ({
					collection: COLLECTIONS.health,
					id: endpointKey(s.name, url),
					value: null
				}))
			]
		);
		return s;
	}

	/** What applying `doc` would change, against what is registered now. */
	async plan(doc: ApplyDocument): Promise<ApplyPlan> {
		const [services, resources] = await Promise.all([this.services(), this.resources()]);
		return planApply(
			doc,
			new Map(services.map(s => [s.name, s])),
			new Map(resources.map(r => [r.name, r])),
			Date.now()
		);
	}

	/** Saves what a plan creates or updates; resources first, since services may depend on them. */
	async apply(plan: ApplyPlan): Promise<void> {
		for (const step of plan.resources.filter(s => s.change !== "unchanged"))
			await this.saveResource(
				step.input,
				step.change === "updated" ? await this.findResource(step.id!) : undefined
			);
		for (const step of plan.services.filter(s => s.change !== "unchanged"))
			await this.saveService(
				step.input,
				step.change === "updated" ? await this.findService(step.input.name) : undefined
			);
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
