/**
 * tenants: tenants and their quotas. (Token checks run inside the gateway, services/gateway/jwt.ts,
 * since a network hop per request would cost the gateway most of its throughput.) A tenant
 * without a record may still be named in tokens: it simply has no quota. Usage is the
 * scheduler's: it charges quotas as it places, and answers `scheduler.usage`.
 */
import type { Context, Service, ServiceSchema } from "moleculer";
import StoreMixin from "../mixins/store.mixin";
import { COLLECTIONS } from "./shared/collections";
import { ConflictError, NotFoundError } from "./shared/errors";
import type { Store } from "./shared/store";
import { parseCpu, parseSize } from "./shared/units";
import { QUOTA_LIMITS } from "./shared/limits";
import { canSeeTenant, type Principal } from "./shared/principal";
import type { Quota, TenantUsage } from "./scheduler/quota";
import { page, pageParams, quantity } from "./shared/params";
import type { RequestRates } from "./shared/env";

interface Tenant {
	id: string;
	name: string;
	quota: Quota;
	/** Requests per second that override the gateways' defaults (ISA_RATE_READS/_WRITES). */
	rateLimits?: Partial<RequestRates>;
	createdAt: number;
}

interface QuotaInput {
	cpu?: number | string;
	memory?: number | string;
	gpu?: number;
	workloads?: number;
}

interface Meta {
	user?: Principal;
	$statusCode?: number;
	/** With 201: where the new resource is (the Location header). */
	$location?: string;
}

interface TenantsThis extends Service {
	store: Store;
	view(t: Tenant): Promise<Tenant & { usage: TenantUsage }>;
	find(id: string): Promise<{ value: Tenant; version: number }>;
	usageOf(tenant: string): Promise<TenantUsage>;
}

const quotaSchema = {
	type: "object",
	strict: true,
	props: {
		cpu: quantity(true),
		memory: quantity(true),
		gpu: { type: "number", integer: true, min: 0, max: QUOTA_LIMITS.gpu.max, optional: true },
		workloads: {
			type: "number",
			integer: true,
			min: 0,
			max: QUOTA_LIMITS.workloads.max,
			optional: true
		}
	}
};

/** The most requests per second a tenant's override may name. */
export const MAX_RATE = 100_000;

const rate = { type: "number", integer: true, min: 1, max: MAX_RATE, optional: true };
/** `{}` removes the overrides: the defaults apply again. */
const rateLimitsSchema = {
	type: "object",
	strict: true,
	optional: true,
	props: { reads: rate, writes: rate }
};

function normalizeQuota(q: QuotaInput = {}): Quota {
	const quota: Quota = {};
	if (q.cpu != null) quota.cpu = parseCpu(q.cpu, "quota.cpu", QUOTA_LIMITS.cpu);
	if (q.memory != null) quota.memory = parseSize(q.memory, "quota.memory", QUOTA_LIMITS.memory);
	if (q.gpu != null) quota.gpu = q.gpu;
	if (q.workloads != null) quota.workloads = q.workloads;
	return quota;
}

const TenantsService: ServiceSchema<Record<string, never>, TenantsThis> = {
	name: "tenants",
	mixins: [StoreMixin()],

	actions: {
		/** Every tenant with its quota and usage. */
		listTenants: {
			idempotent: true,
			access: "admin",
			params: {
				$$strict: true,
				...pageParams(10000)
			},
			async handler(this: TenantsThis, ctx: Context<{ limit?: number; offset?: number }>) {
				const { items, total } = page(
					await this.store.list<Tenant>(COLLECTIONS.tenants),
					ctx.params
				);
				return { items: await Promise.all(items.map(d => this.view(d.value))), total };
			}
		},

		/** Creates a tenant; 409 when the id is taken. */
		createTenant: {
			idempotent: false,
			access: "admin",
			params: {
				$$strict: true,
				id: { type: "string", min: 1, max: 64, pattern: /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/ },
				name: { type: "string", min: 1, max: 256, optional: true },
				quota: { ...quotaSchema, optional: true },
				rateLimits: rateLimitsSchema
			},
			async handler(
				this: TenantsThis,
				ctx: Context<
					{
						id: string;
						name?: string;
						quota?: QuotaInput;
						rateLimits?: Partial<RequestRates>;
					},
					Meta
				>
			) {
				const tenant: Tenant = {
					id: ctx.params.id,
					name: ctx.params.name ?? ctx.params.id,
					quota: normalizeQuota(ctx.params.quota),
					...(ctx.params.rateLimits ? { rateLimits: ctx.params.rateLimits } : {}),
					createdAt: Date.now()
				};
				if ((await this.store.cas(COLLECTIONS.tenants, tenant.id, tenant, 0)) === null)
					throw new ConflictError(`Tenant '${tenant.id}' exists already.`, {
						id: tenant.id
					});
				ctx.meta.$statusCode = 201;
				ctx.meta.$location = `/api/v1/tenants/${encodeURIComponent(tenant.id)}`;
				return this.view(tenant);
			}
		},

		/** One tenant; its own users may read it too. */
		getTenant: {
			idempotent: true,
			access: "read",
			params: { $$strict: true, id: { type: "string", min: 1, max: 64 } },
			async handler(this: TenantsThis, ctx: Context<{ id: string }, Meta>) {
				const user = ctx.meta.user;
				if (!user || !canSeeTenant(user, ctx.params.id))
					throw new NotFoundError("Tenant", ctx.params.id);
				return this.view((await this.find(ctx.params.id)).value);
			}
		},

		/**
		 * Changes a tenant's name, quota or rate limits (a `rateLimits` given replaces the one
		 * stored; `{}` goes back to the defaults). A lower quota never stops what runs.
		 */
		updateTenant: {
			idempotent: true,
			access: "admin",
			params: {
				$$strict: true,
				id: { type: "string", min: 1, max: 64 },
				name: { type: "string", min: 1, max: 256, optional: true },
				quota: { ...quotaSchema, optional: true },
				rateLimits: rateLimitsSchema
			},
			async handler(
				this: TenantsThis,
				ctx: Context<{
					id: string;
					name?: string;
					quota?: QuotaInput;
					rateLimits?: Partial<RequestRates>;
				}>
			) {
				const doc = await this.find(ctx.params.id);
				const { rateLimits } = ctx.params;
				const next: Tenant = {
					...doc.value,
					...(ctx.params.name ? { name: ctx.params.name } : {}),
					...(ctx.params.quota ? { quota: normalizeQuota(ctx.params.quota) } : {}),
					...(rateLimits ? { rateLimits } : {})
				};
				if (rateLimits && Object.keys(rateLimits).length === 0) delete next.rateLimits;
				if (
					(await this.store.cas(COLLECTIONS.tenants, next.id, next, doc.version)) === null
				)
					throw new ConflictError(
						`Tenant '${next.id}' changed meanwhile; read it again.`,
						{ id: next.id }
					);
				return this.view(next);
			}
		},

		/**
		 * A tenant's rate-limit overrides, for the gateways (services/gateway/tenant-rates.ts);
		 * null when it has none or no record. Not routed: the gateways call it themselves.
		 */
		rateLimits: {
			idempotent: true,
			visibility: "public",
			params: { $$strict: true, tenant: { type: "string", min: 1, max: 256 } },
			async handler(
				this: TenantsThis,
				ctx: Context<{ tenant: string }>
			): Promise<Partial<RequestRates> | null> {
				const doc = await this.store.get<Tenant>(COLLECTIONS.tenants, ctx.params.tenant);
				return doc?.value.rateLimits ?? null;
			}
		},

		/** Deletes a tenant that has no workloads left. */
		deleteTenant: {
			idempotent: true,
			access: "admin",
			params: { $$strict: true, id: { type: "string", min: 1, max: 64 } },
			async handler(this: TenantsThis, ctx: Context<{ id: string }>) {
				const doc = await this.find(ctx.params.id);
				const usage = await this.usageOf(ctx.params.id);
				if (usage.workloads > 0)
					throw new ConflictError(
						`Tenant '${ctx.params.id}' still has ${usage.workloads} workload(s); delete them first.`,
						{
							id: ctx.params.id,
							workloads: usage.workloads
						}
					);
				await this.store.delete(COLLECTIONS.tenants, ctx.params.id, doc.version);
				return { id: ctx.params.id, deleted: true };
			}
		}
	},

	methods: {
		async find(this: TenantsThis, id: string) {
			const doc = await this.store.get<Tenant>(COLLECTIONS.tenants, id);
			if (!doc) throw new NotFoundError("Tenant", id);
			return doc;
		},

		async view(this: TenantsThis, t: Tenant) {
			return { ...t, usage: await this.usageOf(t.id) };
		},

		usageOf(this: TenantsThis, tenant: string) {
			return this.broker.call<TenantUsage, { tenant: string }>("scheduler.usage", { tenant });
		}
	}
};

export default TenantsService;
