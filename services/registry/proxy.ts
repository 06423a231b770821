/**
 * The `call` proxy: a Moleculer action of a service the cluster runs (the caller's user and
 * tenant go along in meta), or an HTTP request to a registered external service. For HTTP, one
 * endpoint is chosen among the healthy ones, round robin, skipping those whose circuit breaker
 * is open (breaker.ts); a failed idempotent request moves on to the next healthy endpoint, any
 * other is tried once. The cluster's own services are refused: they have their own API routes.
 * A Moleculer service that another tenant's workload runs answers 404, as one that no node runs.
 */
import type { Context, ServiceBroker } from "moleculer";
import { request } from "undici";
import { ForbiddenError, NotFoundError, ServiceUnavailableError } from "../shared/errors";
import { actionUnavailableNow, type EndpointRegistry } from "../shared/availability";
import { ALL_SERVICES } from "../shared/env";
import type { Principal } from "../shared/principal";
import type { Breakers } from "./breaker";
import type { Catalog } from "./catalog";
import type { Discovery } from "./discovery";
import { initialHealth, publicHealth, type PublicHealth } from "./health";
import type { ExternalService } from "./model";
import { redactText, redactUrl } from "./secrets";
import { actorOf, canReadDiscovered } from "./ownership";
import { endpointKey, serviceKey } from "./targets";

export interface CallParams {
	service: string;
	action?: string;
	path?: string;
	method?: string;
	params?: Record<string, unknown>;
	body?: unknown;
	headers?: Record<string, string>;
	timeout?: number;
	/** An admin's pick of a tenant's registered service of that name. */
	tenant?: string;
}

/** The cluster's own services are reached through their own routes, never through `call`. */
export const CONTROL_SERVICES = new Set([
	...ALL_SERVICES,
	"registry",
	"config",
	"monitor",
	"audit"
]);

const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "PUT", "DELETE"]);

/**
 * The endpoints to try, in order: the healthy ones from the `turn`-th on (round robin), all of
 * them for an idempotent method, only the first for any other.
 */
export function attemptOrder(healthy: string[], turn: number, method: string): string[] {
	const order = healthy.map((_, i) => healthy[(turn + i) % healthy.length]);
	return IDEMPOTENT.has(method) ? order : order.slice(0, 1);
}

/** The URL of `path` on an endpoint: below the endpoint's own path, with the path's query. */
export function forwardUrl(base: string, path: string | undefined): URL {
	const url = new URL(path ?? "/", base.endsWith("/") ? base : `${base}/`);
	if (path?.startsWith("/"))
		url.pathname = new URL(base).pathname.replace(/\/$/, "") + path.split("?")[0];
	return url;
}

/**
 * "No endpoint of 's' is healthy: <url> unhealthy (<error>, 3 s ago); <url> unknown (not checked
 * yet)." — each endpoint's state in words, for the 503's message (its data has them as fields).
 */
export function noHealthyEndpoint(
	name: string,
	endpoints: Array<{ url: string } & PublicHealth>,
	now: number
): string {
	const states = endpoints.map(ep => {
		if (ep.checkedAt === null) return `${ep.url} ${ep.status} (not checked yet)`;
		const ago = `${Math.max(0, Math.round((now - ep.checkedAt) / 1000))} s ago`;
		return `${ep.url} ${ep.status} (${ep.error ? `${ep.error}, ` : ""}${ago})`;
	});
	return `No endpoint of '${name}' is healthy: ${states.join("; ")}.`;
}

export class CallProxy {
	/** Per service, the turn of the next HTTP call. */
	private readonly turns = new Map<string, number>();

	constructor(
		private readonly broker: Pick<ServiceBroker, "findNextActionEndpoint"> & EndpointRegistry,
		private readonly catalog: Pick<Catalog, "healthMany">,
		private readonly breakers: Pick<Breakers, "allow" | "success" | "failure">,
		private readonly discovery: Pick<Discovery, "find">,
		private readonly now: () => number = Date.now
	) {}

	/**
	 * `service.action` on whichever node Moleculer picks; 404 for a service that no node runs or
	 * that the caller may not see (another tenant's workload runs it), and for an action not
	 * published; 503 when the service runs but no node can take that action now (none offers
	 * it, or the breaker is open on each that does).
	 */
	async callAction(ctx: Context<CallParams, { user?: Principal }>, action: string) {
		const p = ctx.params;
		if (CONTROL_SERVICES.has(p.service) || p.service.startsWith("$"))
			throw new ForbiddenError(
				`The cluster's own service '${p.service}' is reached through its own API routes, not through call.`,
				{ service: p.service }
			);
		const running = this.discovery.find(p.service);
		if (!running || !canReadDiscovered(actorOf(ctx.meta.user), running.tenants))
			throw new NotFoundError("Service", p.service);
		const name = `${p.service}.${action}`;
		const endpoint = this.broker.findNextActionEndpoint(name);
		if (endpoint instanceof Error) throw actionUnavailableNow(this.broker, name);
		const visibility = (endpoint.action as { visibility?: string }).visibility;
		if (visibility && visibility !== "published") throw new NotFoundError("Action", name);
		const user = ctx.meta.user;
		return ctx.call(name, p.params ?? {}, {
			timeout: p.timeout,
			meta: { user, tenant: user?.tenant }
		});
	}

	/** An HTTP request to one healthy endpoint, balanced, retried elsewhere only when idempotent. */
	async callHttp(s: ExternalService, p: CallParams) {
		const method = p.method ?? "GET";
		const sk = serviceKey(s);
		const health = await this.catalog.healthMany(s.endpoints.map(url => endpointKey(sk, url)));
		const healthy = s.endpoints.filter(
			url => health.get(endpointKey(sk, url))?.status === "healthy"
		);
		if (healthy.length === 0) {
			const endpoints = s.endpoints.map(url => ({
				url: redactUrl(url),
				...publicHealth(health.get(endpointKey(sk, url)) ?? initialHealth())
			}));
			// The next check may find one healthy: a retry helps after one interval.
			throw new ServiceUnavailableError(noHealthyEndpoint(s.name, endpoints, this.now()), {
				service: s.name,
				endpoints,
				retryAfter: Math.ceil(s.healthCheck.interval / 1000)
			});
		}
		const turn = this.turns.get(sk) ?? 0;
		this.turns.set(sk, turn + 1);
		const failures: string[] = [];
		for (const base of attemptOrder(healthy, turn, method)) {
			const key = endpointKey(sk, base);
			if (!this.breakers.allow(key)) {
				failures.push(`${redactUrl(base)}: circuit open`);
				continue;
			}
			const url = forwardUrl(base, p.path);
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
				return {
					service: s.name,
					endpoint: redactUrl(base),
					status: res.statusCode,
					headers: res.headers,
					body: parseBody(text, res.headers["content-type"])
				};
			} catch (err) {
				this.breakers.failure(key);
				failures.push(`${redactUrl(base)}: ${redactText((err as Error).message, [base])}`);
			}
		}
		throw new ServiceUnavailableError(`No endpoint of '${s.name}' answered.`, {
			service: s.name,
			failures
		});
	}
}

/** The callee's JSON, parsed; any other body, or broken JSON, as the text it is. */
function parseBody(text: string, contentType: string | string[] | undefined): unknown {
	if (!String(contentType ?? "").includes("json")) return text;
	try {
		return JSON.parse(text);
	} catch {
		return text;
	}
}
