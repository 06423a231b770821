/**
 * registry: the unified resource gateway and service discovery of the platform. Keeps the
 * external services (isa_agent, isa_model, …) and resources (PostgreSQL, Neo4j, vector DB,
 * object storage, DuckDB, …) with health checks that really talk to them, their dependencies,
 * the Moleculer services it discovers by itself, and the `call` proxy to a healthy endpoint.
 *
 * The work is in registry/: the store collections (catalog.ts), how things are shown
 * (views.ts), the proxy (proxy.ts), the periodic checking shared across instances
 * (health-loop.ts), one checker per resource kind (checkers/), and discovery (discovery.ts).
 * Every resource and service has an owner (ownership.ts): what a user creates is its tenant's,
 * what an admin (or the ISA_APPLY file) creates is the cluster's.
 */
import fs from "fs";
import type { Context, Service, ServiceSchema } from "moleculer";
import PeriodicMixin, { PeriodicMethods } from "../mixins/periodic.mixin";
import StoreMixin from "../mixins/store.mixin";
import { InvalidInputError } from "./shared/errors";
import { EVENTS } from "./shared/events";
import { loadEnv } from "./shared/env";
import { page, pageParams } from "./shared/params";
import { isAdmin, ownerFor, type Principal } from "./shared/principal";
import type { Store } from "./shared/store";
import { applyReport, parseApplyDocument } from "./registry/apply";
import { systemRecorder } from "./audit/system";
import { Breakers } from "./registry/breaker";
import { Catalog, checkChange } from "./registry/catalog";
import { Discovery } from "./registry/discovery";
import { HealthLoop } from "./registry/health-loop";
import {
	RESOURCE_TYPES,
	ResourceInput,
	resourceParams,
	ServiceInput,
	serviceParams
} from "./registry/model";
import { actorOf, ownerOf } from "./registry/ownership";
import { CallParams, CallProxy } from "./registry/proxy";
import { redactUrl } from "./registry/secrets";
import { Views } from "./registry/views";
import { MAX_CALL_TIMEOUT } from "./shared/limits";

interface RegistrySettings {
	/** ISA_APPLY: a document (configs/isa-platform.yaml's shape) to apply once at start. */
	applyFile: string | null;
	/** ms between two looks at which targets are due. */
	tickInterval: number;
	/** Consecutive failures that open an endpoint's circuit breaker, and for how long (ms). */
	breakerThreshold: number;
	breakerCooldown: number;
}

/** An admin's pick of a tenant's object of a name (`?tenant=`); ignored for anyone else. */
const tenantParam = { type: "string", min: 1, max: 128, optional: true };
const namedParams = { name: { type: "string", min: 1, max: 128 }, tenant: tenantParam };
interface NamedParams {
	name: string;
	tenant?: string;
}

interface Meta {
	user?: Principal;
	$statusCode?: number;
	/** With 201: where the new resource is (the Location header). */
	$location?: string;
}

interface RegistryThis extends Service<RegistrySettings>, PeriodicMethods {
	store: Store;
	catalog: Catalog;
	discovery: Discovery;
	views: Views;
	proxy: CallProxy;
	healthLoop: HealthLoop;
}

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
			idempotent: true,
			params: {
				$$strict: true,
				type: { type: "enum", values: RESOURCE_TYPES, optional: true },
				...pageParams(1000)
			},
			async handler(
				this: RegistryThis,
				ctx: Context<{ type?: string; limit?: number; offset?: number }, Meta>
			) {
				const { items, total } = page(
					await this.catalog.visibleResources(actorOf(ctx.meta.user), ctx.params.type),
					ctx.params
				);
				return { items: await Promise.all(items.map(r => this.views.resource(r))), total };
			}
		},

		/** Registers a resource of the caller's tenant (an admin's: the cluster's); 409 when its owner has the name. */
		createResource: {
			idempotent: false,
			params: { $$strict: true, ...resourceParams },
			async handler(this: RegistryThis, ctx: Context<ResourceInput, Meta>) {
				const r = await this.catalog.saveResource(
					ctx.params,
					undefined,
					ownerFor(actorOf(ctx.meta.user))
				);
				ctx.meta.$statusCode = 201;
				ctx.meta.$location = `/api/v1/resources/${encodeURIComponent(r.id)}`;
				return this.views.resource(r);
			}
		},

		/** One resource with its health; secrets never in clear. */
		getResource: {
			idempotent: true,
			params: { $$strict: true, id: { type: "string", min: 1, max: 128 } },
			async handler(this: RegistryThis, ctx: Context<{ id: string }, Meta>) {
				const doc = await this.catalog.readResource(ctx.params.id, actorOf(ctx.meta.user));
				return this.views.resource(doc.value);
			}
		},

		/** Replaces a resource's definition (same name, or a free new one); its owner stays. */
		updateResource: {
			idempotent: true,
			params: { $$strict: true, id: { type: "string", min: 1, max: 128 }, ...resourceParams },
			async handler(this: RegistryThis, ctx: Context<ResourceInput & { id: string }, Meta>) {
				const existing = await this.catalog.changeableResource(
					ctx.params.id,
					actorOf(ctx.meta.user)
				);
				const { id: _id, ...input } = ctx.params;
				return this.views.resource(await this.catalog.saveResource(input, existing));
			}
		},

		/** Removes a resource and its health. */
		deleteResource: {
			idempotent: true,
			params: { $$strict: true, id: { type: "string", min: 1, max: 128 } },
			async handler(this: RegistryThis, ctx: Context<{ id: string }, Meta>) {
				const user = actorOf(ctx.meta.user);
				// A document a list skips as unreadable (stored before documents were checked)
				// has no owner to check: only an admin removes it, by the id the warning named.
				if (isAdmin(user) && (await this.catalog.purgeUnreadableResource(ctx.params.id)))
					return { id: ctx.params.id, deleted: true, unreadable: true };
				const read = await this.catalog.changeableResource(ctx.params.id, user);
				const r = await this.catalog.deleteResource(ctx.params.id, read);
				// Watchers (the monitor) forget it rather than alert on it forever.
				this.broker.broadcast(EVENTS.resourceHealthChanged, {
					id: r.id,
					name: r.name,
					...ownerOf(r),
					health: { status: "unknown" }
				});
				return { id: r.id, name: r.name, deleted: true };
			}
		},

		/** External services and discovered Moleculer services, with health and status. */
		listServices: {
			idempotent: true,
			params: {
				$$strict: true,
				...pageParams(1000)
			},
			async handler(
				this: RegistryThis,
				ctx: Context<{ limit?: number; offset?: number }, Meta>
			) {
				return page(await this.views.services(actorOf(ctx.meta.user)), ctx.params);
			}
		},

		/**
		 * Registers an external service of the caller's tenant (an admin's: the cluster's); 409
		 * when its owner has the name, 422 when its dependencies form a cycle.
		 */
		createService: {
			idempotent: false,
			params: { $$strict: true, ...serviceParams },
			async handler(this: RegistryThis, ctx: Context<ServiceInput, Meta>) {
				const s = await this.catalog.saveService(
					ctx.params,
					undefined,
					ownerFor(actorOf(ctx.meta.user))
				);
				ctx.meta.$statusCode = 201;
				ctx.meta.$location = `/api/v1/services/${encodeURIComponent(s.name)}`;
				return this.views.service(s);
			}
		},

		/**
		 * One service with its dependency tree and each dependency's status: the caller's
		 * tenant's of that name, else the cluster's (an admin: `?tenant=`'s, else the cluster's,
		 * else the one tenant's).
		 */
		getService: {
			idempotent: true,
			params: { $$strict: true, ...namedParams },
			async handler(this: RegistryThis, ctx: Context<NamedParams, Meta>) {
				const { name, tenant } = ctx.params;
				return this.views.serviceNamed(name, actorOf(ctx.meta.user), tenant);
			}
		},

		/** Removes an external service (found as getService finds it) and its endpoints' health. */
		deleteService: {
			idempotent: true,
			params: { $$strict: true, ...namedParams },
			async handler(this: RegistryThis, ctx: Context<NamedParams, Meta>) {
				const user = actorOf(ctx.meta.user);
				const read = await this.catalog.resolveService(
					ctx.params.name,
					user,
					ctx.params.tenant
				);
				checkChange(user, read.value, "service", ctx.params.name);
				const s = await this.catalog.deleteService(ctx.params.name, read);
				for (const url of s.endpoints)
					this.broker.broadcast(EVENTS.serviceHealthChanged, {
						name: s.name,
						endpoint: redactUrl(url),
						...ownerOf(s),
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
			// Its HTTP attempts move on to another endpoint themselves when the method is idempotent,
			// and a Moleculer call is retried at its own hop as its action declares.
			idempotent: false,
			// It relays its targets' errors: a tenant's failing service would open the circuit on
			// services/call for everyone. The targets have their own (the broker's per action,
			// registry/breaker.ts per HTTP endpoint); the request timeout still bounds a hung call.
			circuitBreaker: { enabled: false },
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
				timeout: { type: "number", min: 1, max: MAX_CALL_TIMEOUT, optional: true },
				tenant: tenantParam
			},
			async handler(this: RegistryThis, ctx: Context<CallParams, Meta>) {
				const p = ctx.params;
				if (p.action && p.path)
					throw new InvalidInputError(
						"Give either action (a Moleculer call) or path (an HTTP call), not both.",
						{}
					);
				if (p.action) return this.proxy.callAction(ctx, p.action);
				const s = await this.catalog.resolveService(
					p.service,
					actorOf(ctx.meta.user),
					p.tenant
				);
				return this.proxy.callHttp(s.value, p);
			}
		},

		/**
		 * Creates or updates every service and resource of a document (the shape of
		 * configs/isa-platform.yaml, as YAML text or as an object) and says what changed: an
		 * admin's (and the ISA_APPLY file's) are the cluster's, an operator's its tenant's.
		 */
		apply: {
			// Declarative: a second apply of the same document finds it applied.
			idempotent: true,
			params: {
				$$strict: true,
				document: { type: "string", max: 1024 * 1024, optional: true },
				services: { type: "object", optional: true },
				resources: { type: "object", optional: true },
				dryRun: { type: "boolean", optional: true, convert: true }
			},
			async handler(
				this: RegistryThis,
				ctx: Context<
					{
						document?: string;
						services?: object;
						resources?: object;
						dryRun?: boolean;
					},
					Meta
				>
			) {
				const { document, services, resources, dryRun } = ctx.params;
				const owner = ownerFor(actorOf(ctx.meta.user));
				const plan = await this.catalog.plan(
					parseApplyDocument(document ?? { services, resources }),
					owner
				);
				if (!dryRun) await this.catalog.apply(plan, owner);
				return applyReport(plan, !!dryRun);
			}
		},

		/** Every target's health in one list (the REPL's `health`). */
		health: {
			idempotent: true,
			async handler(this: RegistryThis) {
				return this.views.health();
			}
		}
	},

	events: {
		/** Moleculer services appear and go by themselves: announce each change of the list. */
		"$services.changed"(this: RegistryThis) {
			for (const change of this.discovery.changes())
				this.broker.broadcast(EVENTS.serviceHealthChanged, change);
		},

		// After the whole broker is up, so that a document naming services finds them.
		async "$broker.started"(this: RegistryThis) {
			const file = this.settings.applyFile;
			if (!file) return;
			const record = systemRecorder(this.broker, this.logger);
			try {
				const report = await this.actions.apply({
					document: fs.readFileSync(file, "utf8")
				});
				this.logger.info(`ISA_APPLY ${file}:`, report);
				record({
					actor: "system:apply",
					action: "registry.apply",
					target: file,
					detail: `created: ${report.created.join(", ") || "none"}; updated: ${report.updated.join(", ") || "none"}`
				});
			} catch (err) {
				this.logger.error(`ISA_APPLY ${file} was not applied: ${(err as Error).message}`);
				record({
					actor: "system:apply",
					action: "registry.apply",
					target: file,
					succeeded: false,
					errorType: (err as { type?: string }).type ?? "ERROR"
				});
			}
		}
	},

	// The parts live as long as the service; the catalog reads `this.store` at each call, since
	// the store mixin opens it only in started().
	created(this: RegistryThis) {
		const breakers = new Breakers({
			threshold: this.settings.breakerThreshold,
			cooldownMs: this.settings.breakerCooldown
		});
		this.catalog = new Catalog(this);
		this.discovery = new Discovery(this.broker.registry, this.broker.nodeID);
		this.views = new Views(this.catalog, breakers, this.discovery);
		this.proxy = new CallProxy(this.broker, this.catalog, breakers, this.discovery);
		this.healthLoop = new HealthLoop({
			catalog: this.catalog,
			nodeID: this.broker.nodeID,
			instances: () => this.discovery.registryInstances(),
			broadcast: (event, payload) => void this.broker.broadcast(event, payload),
			logger: this.logger
		});
	},

	started(this: RegistryThis) {
		this.every("health", this.settings.tickInterval, () => this.healthLoop.tick());
	},

	// Runs before the mixins' stopped(): a check still writing its result must not find the
	// store closed under it.
	async stopped(this: RegistryThis) {
		this.cancel("health");
		await this.healthLoop.stop();
	}
};

export default RegistryService;
