/**
 * registry: the unified resource gateway and service discovery of the platform. Keeps the
 * external services (isa_agent, isa_model, …) and resources (PostgreSQL, Neo4j, vector DB,
 * object storage, DuckDB, …) with health checks that really talk to them, their dependencies,
 * the Moleculer services it discovers by itself, and the `call` proxy to a healthy endpoint.
 *
 * Several registry instances share the checking: each target is checked by one live instance at
 * a time (rendezvous hashing over the instances), and moves when that instance leaves.
 */
import crypto from "crypto";
import fs from "fs";
import type { Context, Service, ServiceSchema } from "moleculer";
import { request } from "undici";
import PeriodicMixin, { PeriodicMethods } from "../mixins/periodic.mixin";
import StoreMixin from "../mixins/store.mixin";
import { COLLECTIONS } from "./shared/collections";
import {
	ConflictError,
	ForbiddenError,
	InvalidInputError,
	NotFoundError,
	ServiceUnavailableError
} from "./shared/errors";
import { EVENTS } from "./shared/events";
import { ALL_SERVICES, loadEnv } from "./shared/env";
import type { Store } from "./shared/store";
import type { Principal } from "./shared/principal";
import { Breakers } from "./registry/breaker";
import type { CheckTarget } from "./registry/checkers/base";
import { runCheck } from "./registry/checkers";
import { dependencyTree, effectiveStatus, findCycle, Status } from "./registry/dependencies";
import { HealthState, initialHealth, nextHealth, publicHealth } from "./registry/health";
import {
	ExternalService,
	normalizeResource,
	resourceParams,
	serviceParams,
	normalizeService,
	Resource,
	RESOURCE_TYPES,
	ResourceInput,
	ServiceInput
} from "./registry/model";
import { planApply, parseApplyDocument } from "./registry/apply";
import { collectSecrets, redactConfig, redactText, redactUrl } from "./registry/secrets";
import { ownerOf } from "./registry/sharding";
import { page, pageParams } from "./shared/params";

interface RegistrySettings {
	/** ISA_APPLY: a document (configs/isa-platform.yaml's shape) to apply once at start. */
	applyFile: string | null;
	/** ms between two looks at which targets are due. */
	tickInterval: number;
	/** Consecutive failures that open an endpoint's circuit breaker, and for how long (ms). */
	breakerThreshold: number;
	breakerCooldown: number;
}

interface Meta {
	user?: Principal;
	$statusCode?: number;
	/** With 201: where the new resource is (the Location header). */
	$location?: string;
}

interface Target {
	key: string;
	kind: "resource" | "service";
	/** Resource id, or service name. */
	ref: string;
	name: string;
	check: CheckTarget;
	interval: number;
	thresholds: { healthyThreshold: number; unhealthyThreshold: number };
}

interface RegistryThis extends Service<RegistrySettings>, PeriodicMethods {
	store: Store;
	breakers: Breakers;
	/** Checks running now, by target key: stopping waits for them before the store closes. */
	inFlight: Map<string, Promise<void>>;
	stopping: boolean;
	lastRun: Map<string, number>;
	roundRobin: Map<string, number>;
	/** Moleculer services seen at the last `$services.changed`. */
	discovered: Set<string>;
	targets(): Promise<Target[]>;
	tick(): Promise<void>;
	runCheck(t: Target): Promise<void>;
	health(key: string): Promise<HealthState>;
	healthMany(keys: string[]): Promise<Map<string, HealthState>>;
	resourceView(r: Resource): Promise<Record<string, unknown>>;
	serviceView(s: ExternalService): Promise<Record<string, unknown>>;
	serviceStatus(s: ExternalService, health: Map<string, HealthState>): Status;
	moleculerServices(): Array<{ name: string; nodes: string[]; actions: string[] }>;
	statusOf(name: string): Promise<{
		kind: "service" | "resource" | "moleculer" | "missing";
		own: Status;
		dependencies: string[];
	}>;
	findResource(id: string): Promise<{ value: Resource; version: number }>;
	findService(name: string): Promise<{ value: ExternalService; version: number }>;
	saveResource(
		input: ResourceInput,
		existing?: { value: Resource; version: number }
	): Promise<Resource>;
	saveService(
		input: ServiceInput,
		existing?: { value: ExternalService; version: number }
	): Promise<ExternalService>;
	callHttp(s: ExternalService, p: CallParams): Promise<unknown>;
}

interface CallParams {
	service: string;
	action?: string;
	path?: string;
	method?: string;
	params?: Record<string, unknown>;
	body?: unknown;
	headers?: Record<string, string>;
	timeout?: number;
}

const resourceKey = (id: string) => `resource:${id}`;
const endpointKey = (name: string, url: string) => `service:${name}:${url}`;
const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "PUT", "DELETE"]);
/** The cluster's own services are reached through their own routes, never through `call`. */
const CONTROL_SERVICES = new Set([...ALL_SERVICES, "registry", "config", "monitor", "audit"]);

const RegistryService: ServiceSchema<RegistrySettings, RegistryThis> = {
	name: "registry",
	mixins: [StoreMixin(), PeriodicMixin()],

	settings: {
		applyFile: loadEnv().applyFile,
		tickInterval: 250,
		breakerThreshold: 3,
		breakerCooldown: 10_000
	},

	actions: {
		/** Registered resources with their health; `?type=` filters. */
		listResources: {
			params: {
				$$strict: true,
				type: { type: "enum", values: RESOURCE_TYPES, optional: true },
				...pageParams(1000)
			},
			async handler(
				this: RegistryThis,
				ctx: Context<{ type?: string; limit?: number; offset?: number }>
			) {
				const all = (await this.store.list<Resource>(COLLECTIONS.resources))
					.map(d => d.value)
					.filter(r => !ctx.params.type || r.type === ctx.params.type)
					.sort((a, b) => a.name.localeCompare(b.name));
				const { items, total } = page(all, ctx.params);
				return { items: await Promise.all(items.map(r => this.resourceView(r))), total };
			}
		},

		/** Registers a resource; 409 when the name is taken. */
		createResource: {
			params: { $$strict: true, ...resourceParams },
			async handler(this: RegistryThis, ctx: Context<ResourceInput, Meta>) {
				const r = await this.saveResource(ctx.params);
				ctx.meta.$statusCode = 201;
				ctx.meta.$location = `/api/v1/resources/${encodeURIComponent(r.id)}`;
				return this.resourceView(r);
			}
		},

		/** One resource with its health; secrets never in clear. */
		getResource: {
			params: { $$strict: true, id: { type: "string", min: 1, max: 128 } },
			async handler(this: RegistryThis, ctx: Context<{ id: string }>) {
				return this.resourceView((await this.findResource(ctx.params.id)).value);
			}
		},

		/** Replaces a resource's definition (same name, or a free new one). */
		updateResource: {
			params: { $$strict: true, id: { type: "string", min: 1, max: 128 }, ...resourceParams },
			async handler(this: RegistryThis, ctx: Context<ResourceInput & { id: string }>) {
				const existing = await this.findResource(ctx.params.id);
				const { id: _id, ...input } = ctx.params;
				return this.resourceView(await this.saveResource(input, existing));
			}
		},

		deleteResource: {
			params: { $$strict: true, id: { type: "string", min: 1, max: 128 } },
			async handler(this: RegistryThis, ctx: Context<{ id: string }>) {
				const { value: r, version } = await this.findResource(ctx.params.id);
				await this.store.transact(
					[{ collection: COLLECTIONS.resources, id: r.id, version }],
					[
						{ collection: COLLECTIONS.resources, id: r.id, value: null },
						{ collection: COLLECTIONS.resourceNames, id: r.name, value: null },
						{ collection: COLLECTIONS.health, id: resourceKey(r.id), value: null }
					]
				);
				// Watchers (the monitor) forget it rather than alert on it forever.
				this.broker.broadcast(EVENTS.resourceHealthChanged, {
					id: r.id,
					name: r.name,
					health: { status: "unknown" }
				});
				return { id: r.id, name: r.name, deleted: true };
			}
		},

		/** External services and discovered Moleculer services, with health and status. */
		listServices: {
			params: {
				$$strict: true,
				...pageParams(1000)
			},
			async handler(this: RegistryThis, ctx: Context<{ limit?: number; offset?: number }>) {
				const external = await this.store.list<ExternalService>(COLLECTIONS.services);
				const views: Array<Record<string, unknown>> = await Promise.all(
					external.map(d => this.serviceView(d.value))
				);
				const names = new Set(external.map(d => d.id));
				for (const m of this.moleculerServices())
					if (!names.has(m.name))
						views.push({
							name: m.name,
							type: "moleculer",
							nodes: m.nodes,
							actions: m.actions,
							endpoints: m.nodes.map(node => ({
								node,
								health: { status: "healthy" }
							})),
							dependencies: [],
							status: "healthy"
						});
				views.sort((a, b) => String(a.name).localeCompare(String(b.name)));
				return page(views, ctx.params);
			}
		},

		/** Registers an external service; 409 when taken, 422 when its dependencies form a cycle. */
		createService: {
			params: { $$strict: true, ...serviceParams },
			async handler(this: RegistryThis, ctx: Context<ServiceInput, Meta>) {
				const s = await this.saveService(ctx.params);
				ctx.meta.$statusCode = 201;
				ctx.meta.$location = `/api/v1/services/${encodeURIComponent(s.name)}`;
				return this.serviceView(s);
			}
		},

		/** One service with its dependency tree and each dependency's status. */
		getService: {
			params: { $$strict: true, name: { type: "string", min: 1, max: 128 } },
			async handler(this: RegistryThis, ctx: Context<{ name: string }>) {
				const stored = await this.store.get<ExternalService>(
					COLLECTIONS.services,
					ctx.params.name
				);
				if (!stored) {
					const m = this.moleculerServices().find(x => x.name === ctx.params.name);
					if (!m) throw new NotFoundError("Service", ctx.params.name);
					return {
						name: m.name,
						type: "moleculer",
						nodes: m.nodes,
						actions: m.actions,
						status: "healthy",
						dependencyTree: {
							name: m.name,
							kind: "moleculer",
							status: "healthy",
							dependencies: []
						}
					};
				}
				return this.serviceView(stored.value);
			}
		},

		deleteService: {
			params: { $$strict: true, name: { type: "string", min: 1, max: 128 } },
			async handler(this: RegistryThis, ctx: Context<{ name: string }>) {
				const { value: s, version } = await this.findService(ctx.params.name);
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
				for (const url of s.endpoints)
					this.broker.broadcast(EVENTS.serviceHealthChanged, {
						name: s.name,
						endpoint: redactUrl(url),
						health: { status: "unknown" }
					});
				return { name: s.name, deleted: true };
			}
		},

		/**
		 * Calls a Moleculer action of a service (the caller's tenant and user go along in meta), or
		 * an HTTP path on one healthy endpoint of a registered service.
		 */
		call: {
			params: {
				$$strict: true,
				service: { type: "string", min: 1, max: 128 },
				action: {
					type: "string",
					min: 1,
					max: 128,
					pattern: /^[A-Za-z0-9_.-]+$/,
					optional: true
				},
				path: { type: "string", min: 1, max: 2048, pattern: /^\//, optional: true },
				method: {
					type: "enum",
					values: ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
					optional: true
				},
				params: { type: "object", optional: true },
				body: { type: "any", optional: true },
				headers: {
					type: "record",
					key: { type: "string", max: 128 },
					value: { type: "string", max: 4096 },
					optional: true
				},
				timeout: { type: "number", min: 1, max: 120_000, optional: true }
			},
			async handler(this: RegistryThis, ctx: Context<CallParams, Meta>) {
				const p = ctx.params;
				if (p.action && p.path)
					throw new InvalidInputError(
						"Give either action (a Moleculer call) or path (an HTTP call), not both.",
						{}
					);
				if (p.action) {
					if (CONTROL_SERVICES.has(p.service) || p.service.startsWith("$"))
						throw new ForbiddenError(
							`The cluster's own service '${p.service}' is reached through its own API routes, not through call.`,
							{
								service: p.service
							}
						);
					const name = `${p.service}.${p.action}`;
					const endpoint = this.broker.findNextActionEndpoint(name);
					if (endpoint instanceof Error)
						throw new ServiceUnavailableError(
							`No node offers the action '${name}' now.`,
							{
								action: name
							}
						);
					const visibility = (endpoint.action as { visibility?: string }).visibility;
					if (visibility && visibility !== "published")
						throw new NotFoundError("Action", name);
					const user = ctx.meta.user;
					return ctx.call(name, p.params ?? {}, {
						timeout: p.timeout,
						meta: { user, tenant: user?.tenant }
					});
				}
				const stored = await this.store.get<ExternalService>(
					COLLECTIONS.services,
					p.service
				);
				if (!stored) throw new NotFoundError("Service", p.service);
				return this.callHttp(stored.value, p);
			}
		},

		/**
		 * Creates or updates every service and resource of a document (the shape of
		 * configs/isa-platform.yaml, as YAML text or as an object) and says what changed.
		 */
		apply: {
			params: {
				$$strict: true,
				document: { type: "string", max: 1024 * 1024, optional: true },
				services: { type: "object", optional: true },
				resources: { type: "object", optional: true },
				dryRun: { type: "boolean", optional: true, convert: true }
			},
			async handler(
				this: RegistryThis,
				ctx: Context<{
					document?: string;
					services?: object;
					resources?: object;
					dryRun?: boolean;
				}>
			) {
				const doc = parseApplyDocument(
					ctx.params.document ?? {
						services: ctx.params.services,
						resources: ctx.params.resources
					}
				);
				const [services, resources] = await Promise.all([
					this.store.list<ExternalService>(COLLECTIONS.services),
					this.store.list<Resource>(COLLECTIONS.resources)
				]);
				const plan = planApply(
					doc,
					new Map(services.map(d => [d.id, d.value])),
					new Map(resources.map(d => [d.value.name, d.value])),
					Date.now()
				);
				if (!ctx.params.dryRun) {
					// Resources first: services may depend on them.
					for (const step of plan.resources.filter(s => s.change !== "unchanged"))
						await this.saveResource(
							step.input,
							step.change === "updated"
								? await this.findResource(step.id!)
								: undefined
						);
					for (const step of plan.services.filter(s => s.change !== "unchanged"))
						await this.saveService(
							step.input,
							step.change === "updated"
								? await this.findService(step.input.name)
								: undefined
						);
				}
				const names = (change: string) => [
					...plan.resources
						.filter(s => s.change === change)
						.map(s => `resource/${s.input.name}`),
					...plan.services
						.filter(s => s.change === change)
						.map(s => `service/${s.input.name}`)
				];
				const report = {
					created: names("created"),
					updated: names("updated"),
					unchanged: names("unchanged"),
					dryRun: !!ctx.params.dryRun
				};
				return { ...report, changed: report.created.length + report.updated.length > 0 };
			}
		},

		/** Every target's health in one list (the REPL's `health`). */
		health: {
			async handler(this: RegistryThis) {
				const targets = await this.targets();
				const health = await this.healthMany(targets.map(t => t.key));
				return targets.map(t => ({
					kind: t.kind,
					name: t.name,
					target: redactUrl(t.check.endpoint),
					...publicHealth(health.get(t.key) ?? initialHealth())
				}));
			}
		}
	},

	methods: {
		async findResource(this: RegistryThis, id: string) {
			const doc = await this.store.get<Resource>(COLLECTIONS.resources, id);
			if (!doc) throw new NotFoundError("Resource", id);
			return doc;
		},

		async findService(this: RegistryThis, name: string) {
			const doc = await this.store.get<ExternalService>(COLLECTIONS.services, name);
			if (!doc) throw new NotFoundError("Service", name);
			return doc;
		},

		async saveResource(
			this: RegistryThis,
			input: ResourceInput,
			existing?: { value: Resource; version: number }
		) {
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
		},

		async saveService(
			this: RegistryThis,
			input: ServiceInput,
			existing?: { value: ExternalService; version: number }
		) {
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
		},

		moleculerServices(this: RegistryThis) {
			const byName = new Map<
				string,
				{ name: string; nodes: Set<string>; actions: Set<string> }
			>();
			const list = this.broker.registry.getServiceList({
				onlyAvailable: true,
				withActions: true
			}) as Array<{
				name: string;
				nodeID: string;
				actions: Record<string, { visibility?: string }>;
			}>;
			for (const svc of list) {
				if (svc.name.startsWith("$")) continue;
				const entry = byName.get(svc.name) ?? {
					name: svc.name,
					nodes: new Set(),
					actions: new Set()
				};
				entry.nodes.add(svc.nodeID);
				for (const [full, def] of Object.entries(svc.actions ?? {}))
					if (!def.visibility || def.visibility === "published") entry.actions.add(full);
				byName.set(svc.name, entry);
			}
			return [...byName.values()].map(e => ({
				name: e.name,
				nodes: [...e.nodes].sort(),
				actions: [...e.actions].sort()
			}));
		},

		async health(this: RegistryThis, key: string) {
			return (
				(await this.store.get<HealthState>(COLLECTIONS.health, key))?.value ??
				initialHealth()
			);
		},

		async healthMany(this: RegistryThis, keys: string[]) {
			const all = await this.store.list<HealthState>(COLLECTIONS.health);
			const wanted = new Set(keys);
			return new Map(all.filter(d => wanted.has(d.id)).map(d => [d.id, d.value]));
		},

		async resourceView(this: RegistryThis, r: Resource) {
			return {
				...r,
				endpoint: redactUrl(r.endpoint),
				config: redactConfig(r.config),
				health: publicHealth(await this.health(resourceKey(r.id)))
			};
		},

		serviceStatus(
			this: RegistryThis,
			s: ExternalService,
			health: Map<string, HealthState>
		): Status {
			const states = s.endpoints.map(
				url => health.get(endpointKey(s.name, url))?.status ?? "unknown"
			);
			if (states.some(x => x === "healthy")) return "healthy";
			if (states.length > 0 && states.every(x => x === "unhealthy")) return "unhealthy";
			return "unknown";
		},

		async statusOf(this: RegistryThis, name: string) {
			const s = await this.store.get<ExternalService>(COLLECTIONS.services, name);
			if (s) {
				const health = await this.healthMany(
					s.value.endpoints.map(url => endpointKey(name, url))
				);
				return {
					kind: "service" as const,
					own: this.serviceStatus(s.value, health),
					dependencies: s.value.dependencies
				};
			}
			const byName = await this.store.get<{ id: string }>(COLLECTIONS.resourceNames, name);
			if (byName)
				return {
					kind: "resource" as const,
					own: (await this.health(resourceKey(byName.value.id))).status as Status,
					dependencies: []
				};
			if (this.moleculerServices().some(m => m.name === name))
				return { kind: "moleculer" as const, own: "healthy" as Status, dependencies: [] };
			return { kind: "missing" as const, own: "unknown" as Status, dependencies: [] };
		},

		async serviceView(this: RegistryThis, s: ExternalService) {
			const health = await this.healthMany(s.endpoints.map(url => endpointKey(s.name, url)));
			// The tree is built from statuses looked up ahead, since dependencyTree is synchronous.
			const infos = new Map<string, Awaited<ReturnType<RegistryThis["statusOf"]>>>();
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
					this.serviceStatus(s, health),
					tree.dependencies.map(d => d.status)
				),
				dependencyTree: tree
			};
		},

		/** An HTTP request to one healthy endpoint, balanced, retried elsewhere only when idempotent. */
		async callHttp(this: RegistryThis, s: ExternalService, p: CallParams) {
			const method = p.method ?? "GET";
			const health = await this.healthMany(s.endpoints.map(url => endpointKey(s.name, url)));
			const healthy = s.endpoints.filter(
				url => health.get(endpointKey(s.name, url))?.status === "healthy"
			);
			if (healthy.length === 0)
				throw new ServiceUnavailableError(`No endpoint of '${s.name}' is healthy.`, {
					service: s.name,
					endpoints: s.endpoints.map(url => ({
						url: redactUrl(url),
						...publicHealth(health.get(endpointKey(s.name, url)) ?? initialHealth())
					}))
				});
			const start = this.roundRobin.get(s.name) ?? 0;
			this.roundRobin.set(s.name, start + 1);
			const order = healthy.map((_, i) => healthy[(start + i) % healthy.length]);
			const attempts = IDEMPOTENT.has(method) ? order : order.slice(0, 1);
			const failures: string[] = [];
			for (const base of attempts) {
				const key = endpointKey(s.name, base);
				if (!this.breakers.allow(key)) {
					failures.push(`${redactUrl(base)}: circuit open`);
					continue;
				}
				const url = new URL(p.path ?? "/", base.endsWith("/") ? base : `${base}/`);
				if (p.path?.startsWith("/"))
					url.pathname = new URL(base).pathname.replace(/\/$/, "") + p.path.split("?")[0];
				try {
					const res = await request(url, {
						method: method as "GET",
						headers: {
							...(p.headers ?? {}),
							...(p.body !== undefined ? { "content-type": "application/json" } : {})
						},
						body: p.body !== undefined ? JSON.stringify(p.body) : undefined,
						headersTimeout: p.timeout ?? 10_000,
						bodyTimeout: p.timeout ?? 10_000
					});
					const text = await res.body.text();
					if (res.statusCode >= 500) {
						this.breakers.failure(key);
						failures.push(`${redactUrl(base)}: HTTP ${res.statusCode}`);
						if (IDEMPOTENT.has(method)) continue;
					} else this.breakers.success(key);
					let body: unknown = text;
					if (String(res.headers["content-type"] ?? "").includes("json")) {
						try {
							body = JSON.parse(text);
						} catch {
							// Keep the text when the callee's JSON is broken.
						}
					}
					return {
						service: s.name,
						endpoint: redactUrl(base),
						status: res.statusCode,
						headers: res.headers,
						body
					};
				} catch (err) {
					this.breakers.failure(key);
					failures.push(
						`${redactUrl(base)}: ${redactText((err as Error).message, [base])}`
					);
				}
			}
			throw new ServiceUnavailableError(`No endpoint of '${s.name}' answered.`, {
				service: s.name,
				failures
			});
		},

		/** What there is to check: every resource, and every endpoint of every service. */
		async targets(this: RegistryThis) {
			const [resources, services] = await Promise.all([
				this.store.list<Resource>(COLLECTIONS.resources),
				this.store.list<ExternalService>(COLLECTIONS.services)
			]);
			const targets: Target[] = resources.map(({ value: r }) => ({
				key: resourceKey(r.id),
				kind: "resource",
				ref: r.id,
				name: r.name,
				check: {
					type: r.type,
					endpoint: r.endpoint,
					config: r.config,
					timeoutMs: r.healthCheck.timeout
				},
				interval: r.healthCheck.interval,
				thresholds: r.healthCheck
			}));
			for (const { value: s } of services)
				for (const url of s.endpoints)
					targets.push({
						key: endpointKey(s.name, url),
						kind: "service",
						ref: s.name,
						name: s.name,
						check: {
							type: "http",
							endpoint: url,
							path: s.healthCheck.path,
							config: {},
							timeoutMs: s.healthCheck.timeout
						},
						interval: s.healthCheck.interval,
						thresholds: s.healthCheck
					});
			return targets;
		},

		/** Runs the checks that are due and that this instance owns. */
		async tick(this: RegistryThis) {
			const list = this.broker.registry.getServiceList({
				onlyAvailable: true
			}) as unknown as Array<{
				name: string;
				nodeID: string;
			}>;
			const instances = list
				.filter(s => s.name === "registry")
				.map(s => s.nodeID)
				.sort();
			if (!instances.includes(this.broker.nodeID)) instances.push(this.broker.nodeID);
			const now = Date.now();
			const targets = await this.targets();
			// stopped() may have begun while the targets were read: start nothing new then.
			if (this.stopping) return;
			for (const t of targets) {
				if (ownerOf(t.key, instances) !== this.broker.nodeID) continue;
				if (this.inFlight.has(t.key) || now - (this.lastRun.get(t.key) ?? 0) < t.interval)
					continue;
				this.lastRun.set(t.key, now);
				const run = this.runCheck(t)
					.catch(err =>
						this.logger.warn(`Health check of ${t.kind} '${t.name}' failed:`, err)
					)
					.finally(() => this.inFlight.delete(t.key));
				this.inFlight.set(t.key, run);
			}
		},

		async runCheck(this: RegistryThis, t: Target) {
			const result = await runCheck(t.check);
			// Drivers sometimes echo the connection string: the stored error never holds a secret.
			if (result.error)
				result.error = redactText(
					result.error,
					collectSecrets(t.check.endpoint, t.check.config)
				);
			const doc = await this.store.get<HealthState>(COLLECTIONS.health, t.key);
			const { state, changed } = nextHealth(
				doc?.value ?? initialHealth(),
				result,
				Date.now(),
				t.thresholds
			);
			await this.store.put(COLLECTIONS.health, t.key, state);
			if (!changed) return;
			const health = publicHealth(state);
			this.logger.info(
				`${t.kind} '${t.name}' is ${state.status}${state.error ? `: ${state.error}` : ""}`
			);
			if (t.kind === "resource")
				this.broker.broadcast(EVENTS.resourceHealthChanged, {
					id: t.ref,
					name: t.name,
					health
				});
			else
				this.broker.broadcast(EVENTS.serviceHealthChanged, {
					name: t.name,
					endpoint: redactUrl(t.check.endpoint),
					health
				});
		}
	},

	events: {
		/** Moleculer services appear and go by themselves: announce each change of the list. */
		"$services.changed"(this: RegistryThis) {
			const now = new Set(this.moleculerServices().map(m => m.name));
			for (const name of now)
				if (!this.discovered.has(name))
					this.broker.broadcast(EVENTS.serviceHealthChanged, {
						name,
						type: "moleculer",
						health: { status: "healthy" }
					});
			for (const name of this.discovered)
				if (!now.has(name))
					this.broker.broadcast(EVENTS.serviceHealthChanged, {
						name,
						type: "moleculer",
						health: { status: "unhealthy", error: "no node offers it" }
					});
			this.discovered = now;
		},

		// After the whole broker is up, so that a document naming services finds them.
		async "$broker.started"(this: RegistryThis) {
			const file = this.settings.applyFile;
			if (!file) return;
			try {
				const report = await this.actions.apply({
					document: fs.readFileSync(file, "utf8")
				});
				this.logger.info(`ISA_APPLY ${file}:`, report);
			} catch (err) {
				this.logger.error(`ISA_APPLY ${file} was not applied: ${(err as Error).message}`);
			}
		}
	},

	created(this: RegistryThis) {
		this.breakers = new Breakers({
			threshold: this.settings.breakerThreshold,
			cooldownMs: this.settings.breakerCooldown
		});
		this.inFlight = new Map();
		this.stopping = false;
		this.lastRun = new Map();
		this.roundRobin = new Map();
		this.discovered = new Set();
	},

	started(this: RegistryThis) {
		this.every("health", this.settings.tickInterval, () => this.tick());
	},

	// Runs before the mixins' stopped(): a check still writing its result must not find the
	// store closed under it.
	async stopped(this: RegistryThis) {
		this.stopping = true;
		this.cancel("health");
		await Promise.all(this.inFlight.values());
	}
};

export default RegistryService;
