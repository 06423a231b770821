/**
 * Each tenant's rate overrides (its record's `rateLimits`, owned by the tenants service), as the
 * gateway's rate limiter reads them: asked for once per tenant and kept TENANT_RATES_TTL_MS.
 * A stale entry is answered at once while a fresh one is fetched behind it, so only a tenant's
 * first request after a gateway starts waits for the call; a change through
 * `PUT /api/v1/tenants/:id` is in force on every gateway within that time. A failed call keeps
 * what was known (the defaults for a tenant never read): a tenants service that is away does not
 * stop the API.
 */
import type { RequestRates } from "../shared/env";

export type RateOverride = Partial<RequestRates> | null;

/** How long a tenant's overrides are used before they are asked for again. */
export const TENANT_RATES_TTL_MS = 5000;
/** Tenants one gateway keeps at most; the longest-kept goes first. */
export const MAX_TENANTS = 10_000;

interface Entry {
	value: RateOverride;
	/** When the last call ended; null before the first did. */
	fetched: number | null;
	refreshing: Promise<RateOverride> | null;
}

export class TenantRates {
	private readonly entries = new Map<string, Entry>();

	constructor(
		private readonly fetch: (tenant: string) => Promise<RateOverride>,
		private readonly ttl = TENANT_RATES_TTL_MS,
		private readonly now: () => number = Date.now,
		private readonly max = MAX_TENANTS
	) {}

	/** The tenant's overrides: at once when known, else once fetched. */
	get(tenant: string): RateOverride | Promise<RateOverride> {
		const entry = this.entries.get(tenant);
		if (!entry) {
			const fresh: Entry = { value: null, fetched: null, refreshing: null };
			this.remember(tenant, fresh);
			return this.refresh(fresh, tenant);
		}
		if (entry.fetched === null) return entry.refreshing ?? entry.value;
		if (this.now() - entry.fetched >= this.ttl && !entry.refreshing)
			void this.refresh(entry, tenant);
		return entry.value;
	}

	private remember(tenant: string, entry: Entry): void {
		this.entries.set(tenant, entry);
		if (this.entries.size > this.max) this.entries.delete(this.entries.keys().next().value!);
	}

	private refresh(entry: Entry, tenant: string): Promise<RateOverride> {
		entry.refreshing = this.fetch(tenant)
			.then(
				value => {
					entry.value = value;
					return value;
				},
				() => entry.value
			)
			.finally(() => {
				entry.fetched = this.now();
				entry.refreshing = null;
			});
		return entry.refreshing;
	}
}
