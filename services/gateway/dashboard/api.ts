/**
 * The page's client of /api/v1: one typed method per list it draws. Paths are relative, so the
 * page works under any prefix the gateway is served at. `fetch` is injected so that tests can
 * answer without a server; no browser object is touched before a call.
 */
import type { Alert } from "../../monitor/alerts";
import type { NodeInfo } from "../../shared/types";
import type { Page, ResourceView, ServiceView, StatsAnswer, WorkloadView } from "./types";

/** moleculer-web's error answer: `{ name, message, code, type, data }`. */
export interface ErrorBody {
	name?: string;
	message?: string;
	code?: number;
	type?: string;
	data?: { reason?: string };
}

/** A failed request: `status` 0 when the gateway could not be reached at all. */
export class ApiError extends Error {
	constructor(
		readonly status: number,
		readonly body: ErrorBody | null
	) {
		super(body?.message ?? `HTTP ${status}`);
		this.name = "ApiError";
	}
}

/** What to tell someone whose token got 401: the gateway's reason when it gives one. */
export function refusal(err: ApiError): string {
	const reason = err.body?.data?.reason;
	return `The token was refused${reason ? `: ${reason}` : "."}`;
}

/** The options the client sends; `cache: "no-store"` so that a list is never a stale copy. */
export interface RequestOptions {
	method: "GET" | "POST";
	headers: Record<string, string>;
	cache: "no-store";
}

/** A single-use ticket for one connection of the event stream. */
export interface EventTicket {
	ticket: string;
	/** Seconds it stays good. */
	expiresIn: number;
}

export type Fetch = (input: string, init: RequestOptions) => Promise<Response>;

/** Which series of the monitor, from `sinceMs` on (`step`: wider buckets, e.g. "1m"). */
export interface StatsQuery {
	metric?: string;
	node?: string;
	step?: string;
}

export class Api {
	constructor(
		/** The token of each request: it changes on sign-in and sign-out. */
		private readonly token: () => string | null,
		private readonly fetchFn: Fetch = (input, init) => fetch(input, init)
	) {}

	/** GET a path under the page's base, as JSON; ApiError when it fails. */
	get<T>(path: string): Promise<T> {
		return this.send("GET", path);
	}

	/** A request without a body, answered with JSON; ApiError when it fails. */
	private async send<T>(method: RequestOptions["method"], path: string): Promise<T> {
		let res: Response;
		try {
			res = await this.fetchFn(path, {
				method,
				headers: { Authorization: `Bearer ${this.token()}`, Accept: "application/json" },
				cache: "no-store"
			});
		} catch {
			throw new ApiError(0, { message: "The gateway cannot be reached." });
		}
		let body: unknown = null;
		try {
			body = await res.json();
		} catch {
			// Not JSON (a proxy's error page): the status says enough.
		}
		if (!res.ok) throw new ApiError(res.status, body as ErrorBody | null);
		return body as T;
	}

	/** What the event stream's URL carries instead of the token (POST /api/v1/events/ticket). */
	eventTicket(): Promise<EventTicket> {
		return this.send("POST", "api/v1/events/ticket");
	}

	nodes(limit = 10000): Promise<Page<NodeInfo>> {
		return this.get(`api/v1/nodes?limit=${limit}`);
	}

	workloads(): Promise<Page<WorkloadView>> {
		return this.get("api/v1/workloads?limit=1000");
	}

	services(): Promise<Page<ServiceView>> {
		return this.get("api/v1/services?limit=1000");
	}

	resources(): Promise<Page<ResourceView>> {
		return this.get("api/v1/resources?limit=1000");
	}

	alerts(): Promise<Page<Alert>> {
		return this.get("api/v1/alerts");
	}

	async stats(query: StatsQuery, sinceMs: number): Promise<StatsAnswer["items"]> {
		const q = new URLSearchParams({ since: String(sinceMs) });
		for (const [k, v] of Object.entries(query)) if (v !== undefined) q.set(k, v);
		return (await this.get<StatsAnswer>(`api/v1/stats?${q.toString()}`)).items;
	}
}
