/**
 * The dashboard's live feed: `GET /api/v1/events`, server-sent events.
 *
 * The gateway hands every cluster event it hears to `EventStream.publish`; the stream pushes it
 * to each connected client as `event: <name>\ndata: <json>\n\n`, the same bytes for all of them
 * (serialized once per event, whatever the number of clients).
 *
 * - Who: the token comes from `Authorization: Bearer …`, or, because the browser's EventSource
 *   cannot set headers, a single-use ticket in `?ticket=` (ticket.ts), which the page gets from
 *   `POST /api/v1/events/ticket` before each connection. A token in the URL (`?token=`) is
 *   refused: URLs land in access logs and proxies' logs. A bad token or ticket gets 401 in
 *   moleculer-web's error shape, before any stream is opened. The stream ends when the token
 *   expires (`event: expired`), so a revoked role does not live on in an open connection.
 * - What (`audienceOf`): admins get everything; other roles get node events, workload events
 *   of their own tenant only (a replica's tenant is looked up once per workload, and only while
 *   a non-admin client is connected), health events of the cluster's resources and services and
 *   of their own tenant's (by the event's `owner` and `tenant`; none: the cluster's), and alerts
 *   as `GET /alerts` shows them: a tenant's rule's alerts to that tenant, a cluster rule's to
 *   all unless its series is a tenant's (`labels.tenant`). `config.changed` goes out without
 *   its value.
 * - How often: `node.report` arrives every ~2 s per node; the stream keeps the newest report of
 *   each node and sends them together every `reportInterval` (default 2 s) as one
 *   `event: node.report` with `data: {"items": [{nodeID, usage, at}, …]}`: at most one report per
 *   node per interval, and only the fields the page draws.
 * - Slow clients: at most `maxBuffer` bytes wait for one client. Past that its events are
 *   dropped, not queued; when its socket drains it gets `event: resync` (the page reloads its
 *   lists), and a client stuck for `stallTimeout` is disconnected (EventSource reconnects).
 * - A comment line every `heartbeatInterval` (15 s) keeps proxies from closing an idle stream.
 * - A stopping gateway ends each stream with `event: shutdown` and `data: {"reason": …}`.
 */
import fs from "fs";
import type { IncomingMessage, ServerResponse } from "http";
import path from "path";
import type { ServiceBroker } from "moleculer";
import ApiGateway from "moleculer-web";
import { EVENTS } from "../shared/events";
import type { NodeReport, Usage } from "../shared/types";
import { canSeeTenant, isAdmin, isClusterOwned, type Principal } from "../shared/principal";
import { ERR_INVALID_TOKEN, ERR_NO_TOKEN, ERR_TOKEN_EXPIRED } from "./jwt";
import { ERR_INVALID_TICKET } from "./ticket";

/** The failures that say a token or ticket was tried and did not verify. */
const GUESSES = new Set([ERR_INVALID_TOKEN, ERR_TOKEN_EXPIRED, ERR_INVALID_TICKET]);

const WebErrors = ApiGateway.Errors;

/** Every event the gateway feeds into the stream. */
export const STREAMED_EVENTS: readonly string[] = [
	EVENTS.nodeUp,
	EVENTS.nodeDown,
	EVENTS.nodeUpdated,
	EVENTS.nodeReport,
	EVENTS.nodeAllocated,
	EVENTS.replicaState,
	EVENTS.resourceHealthChanged,
	EVENTS.serviceHealthChanged,
	EVENTS.configChanged,
	EVENTS.alertFiring,
	EVENTS.alertResolved
];

/**
 * The Moleculer event group of this process's gateway. `node.up`, `node.down`, `node.updated`
 * and `workload.replica.state` are emitted (balanced: one listener per group), so with the
 * default group ("gateway") only one of several gateway instances would hear them and the
 * other instances' dashboards would miss them. A group of its own makes every instance hear all.
 */
export const STREAM_GROUP = `gateway-events-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;

/** What a dashboard card needs of a `node.report`. */
export interface ReportSample {
	nodeID: string;
	usage: Pick<Usage, "cpu" | "cpuPercent" | "memory" | "gpus">;
	/** When the agent took the sample (ms since the epoch). */
	at: number;
}

export interface Logger {
	debug(...args: unknown[]): void;
	info(...args: unknown[]): void;
	warn(...args: unknown[]): void;
}

export interface EventStreamOptions {
	/** The gateway's TokenVerifier. */
	verifier: { verifyHeader(header: string | undefined): Promise<Principal> };
	/** The gateway's EventTickets: redeems `?ticket=`. */
	tickets: { redeem(ticket: string): Promise<Principal> };
	/** The tenant of a workload, or null when unknown (then only admins see its events). */
	lookupTenant?: (workloadId: string) => Promise<string | null>;
	/**
	 * The gateway's count of failed authentications per address (gateway/rate-limits.ts), so
	 * that tokens and tickets guessed at the event stream are limited as at the API: `blocked`
	 * refuses an address past the limit before its token is checked, `failed` counts a token or
	 * ticket that did not verify and answers the refusal once it is past the limit.
	 */
	failures?: {
		blocked(req: IncomingMessage): Error | null;
		failed(req: IncomingMessage): Promise<Error | null>;
	};
	/** ms between two heartbeat comments. */
	heartbeatInterval?: number;
	/** ms between two batches of node reports: each node's newest report, once. */
	reportInterval?: number;
	/** Bytes that may wait for one client before its events are dropped. */
	maxBuffer?: number;
	/** ms a client may stay over maxBuffer before it is disconnected. */
	stallTimeout?: number;
	/** Connected clients at most; more get 503. */
	maxClients?: number;
	/** The reconnect delay (ms) the stream asks of EventSource. */
	retry?: number;
	logger?: Logger;
	now?: () => number;
}

interface Client {
	id: number;
	principal: Principal;
	admin: boolean;
	res: ServerResponse;
	/** Events dropped because the client did not keep up. */
	dropped: number;
	/** Since when events are being dropped; null while it keeps up. */
	staleSince: number | null;
	expiry: NodeJS.Timeout;
}

type EventRequest = IncomingMessage & { query?: Record<string, unknown> };

/** One server-sent event. JSON never holds a raw newline, so one `data:` line is enough. */
export function formatEvent(event: string, data: unknown): string {
	return `event: ${event}\ndata: ${JSON.stringify(data ?? null)}\n\n`;
}

/** The fields of a `node.report` the dashboard draws; null for a payload that is no report. */
export function slimReport(report: unknown): ReportSample | null {
	const r = report as Partial<NodeReport> | null;
	if (!r || typeof r.nodeID !== "string" || !r.usage) return null;
	const u = r.usage;
	return {
		nodeID: r.nodeID,
		usage: {
			cpu: u.cpu,
			cpuPercent: u.cpuPercent,
			memory: u.memory,
			gpus: (u.gpus ?? []).map(g => ({
				index: g.index,
				utilization: g.utilization,
				memoryUsed: g.memoryUsed,
				temperature: g.temperature
			}))
		},
		at: typeof r.sentAt === "number" ? r.sentAt : Date.now()
	};
}

/** Who may see an event: undefined, everyone; null, admins only; a string, admins and that tenant. */
export type Audience = string | null | undefined;

type OwnedPayload = { owner?: unknown; tenant?: unknown; labels?: { tenant?: unknown } } | null;

/**
 * A registry object's event (resource or service health): the cluster's (or one without
 * owner, stored before owners existed) to everyone, a tenant's to that tenant; a tenant's that
 * names no tenant to admins only.
 */
export function ownedAudience(payload: unknown): Audience {
	const p = (payload ?? {}) as NonNullable<OwnedPayload>;
	if (isClusterOwned({ owner: p.owner as "tenant" | "cluster" | undefined })) return undefined;
	return typeof p.tenant === "string" ? p.tenant : null;
}

/**
 * An alert (monitor/alerts.ts `Alert`), as `GET /alerts` shows it: a tenant's rule's alert to
 * that tenant; a cluster rule's to the tenant its series is about (`labels.tenant`), or to
 * everyone for a series that names no tenant (a node's, the cluster's).
 */
export function alertAudience(payload: unknown): Audience {
	const p = (payload ?? {}) as NonNullable<OwnedPayload>;
	const series = p.labels && typeof p.labels.tenant === "string" ? p.labels.tenant : undefined;
	if (isClusterOwned({ owner: p.owner as "tenant" | "cluster" | undefined })) return series;
	if (typeof p.tenant !== "string") return null;
	// The monitor labels a tenant's alerts with that tenant; anything else goes to admins only.
	return series === undefined || series === p.tenant ? p.tenant : null;
}

/** Who may see a cluster event, by its name and payload (workload events: see publish). */
export function audienceOf(event: string, payload: unknown): Audience {
	switch (event) {
		case EVENTS.nodeUp:
		case EVENTS.nodeDown:
		case EVENTS.nodeUpdated:
		case EVENTS.nodeAllocated:
		case EVENTS.nodeReport:
		case EVENTS.configChanged:
			return undefined;
		case EVENTS.resourceHealthChanged:
		case EVENTS.serviceHealthChanged:
			return ownedAudience(payload);
		case EVENTS.alertFiring:
		case EVENTS.alertResolved:
			return alertAudience(payload);
		default: {
			// An event this stream does not know: only a tenant it names, else admins.
			const p = payload as OwnedPayload;
			return p && typeof p.tenant === "string" ? p.tenant : null;
		}
	}
}

export function mayReceive(principal: Principal, audience: Audience): boolean {
	if (audience === undefined) return true;
	return audience === null ? isAdmin(principal) : canSeeTenant(principal, audience);
}

/** 401 for a token in the URL: the type a client can tell apart from a bad token. */
export const ERR_TOKEN_IN_URL = "TOKEN_IN_URL";

/**
 * The principal of a request: the Authorization header's token, else `?ticket=`; a 401 error
 * otherwise, also for `?token=`, which says what to do instead.
 */
export async function principalOf(
	req: EventRequest,
	verifier: EventStreamOptions["verifier"],
	tickets: EventStreamOptions["tickets"]
): Promise<Principal> {
	if (req.headers.authorization) return verifier.verifyHeader(req.headers.authorization);
	const { ticket, token } = req.query ?? {};
	if (token !== undefined)
		throw new WebErrors.UnAuthorizedError(ERR_TOKEN_IN_URL, {
			reason:
				"A token in the URL is not accepted: POST /api/v1/events/ticket with " +
				"'Authorization: Bearer <token>', then connect with ?ticket=<ticket>."
		});
	if (ticket === undefined || ticket === "")
		throw new WebErrors.UnAuthorizedError(ERR_NO_TOKEN, {
			reason:
				"Send 'Authorization: Bearer <token>', or ?ticket=<ticket> from an EventSource " +
				"(POST /api/v1/events/ticket gives one)."
		});
	if (typeof ticket !== "string")
		throw new WebErrors.UnAuthorizedError(ERR_INVALID_TICKET, { reason: "Give one ticket." });
	return tickets.redeem(ticket);
}

/** The SSE hub: one per gateway instance. */
export class EventStream {
	private readonly clients = new Map<number, Client>();
	private readonly pendingReports = new Map<string, ReportSample>();
	private readonly tenants = new Map<string, string>();
	private readonly lookups = new Map<string, Promise<string | null>>();
	private readonly opts: Required<
		Omit<EventStreamOptions, "lookupTenant" | "logger" | "failures">
	> &
		Pick<EventStreamOptions, "lookupTenant" | "logger" | "failures">;
	private heartbeatTimer: NodeJS.Timeout | null = null;
	private reportTimer: NodeJS.Timeout | null = null;
	private nextId = 1;
	private closed = false;
	/** Non-admin clients connected: only they need a workload's tenant. */
	private restricted = 0;

	constructor(opts: EventStreamOptions) {
		this.opts = {
			heartbeatInterval: 15_000,
			reportInterval: 2_000,
			maxBuffer: 512 * 1024,
			stallTimeout: 30_000,
			maxClients: 1_000,
			retry: 3_000,
			now: Date.now,
			...opts
		};
	}

	/** Clients connected now. */
	get size(): number {
		return this.clients.size;
	}

	/**
	 * The moleculer-web alias handler of `GET /api/v1/events`: verifies the token, then keeps
	 * the response open as an event stream. Errors go to `next`, which answers them in
	 * moleculer-web's shape (401 for a bad token, 503 when full or stopping).
	 */
	async handle(req: EventRequest, res: ServerResponse, next: (err?: unknown) => void) {
		let principal: Principal;
		const blocked = this.opts.failures?.blocked(req);
		if (blocked) return next(blocked);
		try {
			principal = await principalOf(req, this.opts.verifier, this.opts.tickets);
		} catch (err) {
			// A missing token guesses nothing, and is not counted (as at the API).
			const guessed = GUESSES.has((err as { type?: string }).type ?? "");
			const refusal = guessed ? await this.opts.failures?.failed(req) : null;
			return next(refusal ?? err);
		}
		if (this.closed || this.clients.size >= this.opts.maxClients)
			return next(
				new WebErrors.ServiceUnavailableError("SERVICE_UNAVAILABLE", {
					reason: this.closed ? "The gateway is stopping." : "Too many event streams."
				})
			);
		// The client may have left while the token was checked.
		if (res.destroyed || res.writableEnded) return;
		this.open(principal, req, res);
	}

	/** Hands one cluster event to the clients that may see it. */
	publish(event: string, payload: unknown): void {
		if (this.closed || this.clients.size === 0) return;
		switch (event) {
			case EVENTS.nodeReport: {
				const sample = slimReport(payload);
				if (sample) {
					this.pendingReports.set(sample.nodeID, sample);
					this.scheduleReports();
				}
				return;
			}
			case EVENTS.replicaState:
				void this.publishWorkloadEvent(event, payload);
				return;
			case EVENTS.configChanged: {
				const { key, version, deleted } = (payload ?? {}) as Record<string, unknown>;
				this.send(event, { key, version, deleted }, undefined);
				return;
			}
			default:
				this.send(event, payload, audienceOf(event, payload));
		}
	}

	/**
	 * Ends every stream with `event: shutdown` (the page's EventSource then reconnects, to
	 * another gateway behind a load balancer) and stops the timers (the gateway's shutdown).
	 */
	close(): void {
		this.closed = true;
		for (const client of [...this.clients.values()]) {
			this.write(client, formatEvent("shutdown", { reason: "The gateway is stopping." }));
			client.res.end();
			this.remove(client);
		}
		this.stopTimers();
		this.pendingReports.clear();
	}

	private open(principal: Principal, req: IncomingMessage, res: ServerResponse) {
		const id = this.nextId++;
		const admin = isAdmin(principal);
		res.writeHead(200, {
			"Content-Type": "text/event-stream; charset=utf-8",
			"Cache-Control": "no-cache, no-transform",
			// HTTP/2 has no Connection header (Node drops it with a warning).
			...(req.httpVersionMajor < 2 ? { Connection: "keep-alive" } : {}),
			// nginx and friends would otherwise buffer the stream.
			"X-Accel-Buffering": "no"
		});
		req.socket.setNoDelay(true);
		req.socket.setKeepAlive(true);
		// Until the token expires (setTimeout's limit is ~24.8 days).
		const ttl = Math.min(Math.max(principal.exp * 1000 - this.opts.now(), 0), 2 ** 31 - 1);
		const client: Client = {
			id,
			principal,
			admin,
			res,
			dropped: 0,
			staleSince: null,
			expiry: setTimeout(() => {
				this.write(client, formatEvent("expired", { reason: "The token has expired." }));
				res.end();
				this.remove(client);
			}, ttl)
		};
		client.expiry.unref();
		this.clients.set(id, client);
		if (!admin) this.restricted++;
		res.on("close", () => this.remove(client));
		res.on("error", () => this.remove(client));
		res.write(
			`retry: ${this.opts.retry}\n\n` +
				formatEvent("hello", {
					sub: principal.sub,
					tenant: principal.tenant,
					roles: principal.roles,
					exp: principal.exp,
					reportInterval: this.opts.reportInterval,
					heartbeatInterval: this.opts.heartbeatInterval
				})
		);
		this.startHeartbeat();
		this.opts.logger?.debug(
			`Event stream ${id} opened for '${principal.sub}' (${this.clients.size} open).`
		);
	}

	private remove(client: Client) {
		if (!this.clients.delete(client.id)) return;
		clearTimeout(client.expiry);
		if (!client.admin) this.restricted--;
		if (this.clients.size === 0) {
			this.stopTimers();
			this.pendingReports.clear();
		}
		this.opts.logger?.debug(
			`Event stream ${client.id} closed (${client.dropped} events dropped; ${this.clients.size} open).`
		);
	}

	/** Serializes once, writes to every client that may see it. */
	private send(event: string, data: unknown, audience: Audience) {
		let chunk: string | null = null;
		for (const client of this.clients.values()) {
			if (!mayReceive(client.principal, audience)) continue;
			chunk ??= formatEvent(event, data);
			this.write(client, chunk);
		}
	}

	/** Writes unless too much already waits for this client: then the event is dropped. */
	private write(client: Client, chunk: string) {
		const res = client.res;
		if (res.destroyed || res.writableEnded) return;
		if (res.writableLength + chunk.length > this.opts.maxBuffer) {
			client.dropped++;
			if (client.staleSince === null) {
				client.staleSince = this.opts.now();
				// Over maxBuffer means a write returned false: 'drain' follows once it empties.
				res.once("drain", () => {
					client.staleSince = null;
					this.write(client, formatEvent("resync", { dropped: client.dropped }));
				});
			}
			return;
		}
		res.write(chunk);
	}

	private async publishWorkloadEvent(event: string, payload: unknown) {
		const workloadId = (payload as { workloadId?: unknown } | null)?.workloadId;
		// Only admins are connected, or the event names no workload: admins only, no lookup.
		if (this.restricted === 0 || typeof workloadId !== "string")
			return this.send(event, payload, null);
		this.send(event, payload, await this.tenantOf(workloadId));
	}

	/** A workload's tenant, looked up once (a workload never changes tenant). */
	private tenantOf(workloadId: string): Promise<string | null> {
		const known = this.tenants.get(workloadId);
		if (known !== undefined) return Promise.resolve(known);
		const lookup = this.opts.lookupTenant;
		if (!lookup) return Promise.resolve(null);
		let pending = this.lookups.get(workloadId);
		if (!pending) {
			pending = lookup(workloadId)
				.catch(err => {
					this.opts.logger?.debug(
						`No tenant for workload '${workloadId}':`,
						(err as Error).message
					);
					return null;
				})
				.then(tenant => {
					this.lookups.delete(workloadId);
					if (tenant !== null) {
						if (this.tenants.size >= 10_000)
							this.tenants.delete(this.tenants.keys().next().value!);
						this.tenants.set(workloadId, tenant);
					}
					return tenant;
				});
			this.lookups.set(workloadId, pending);
		}
		return pending;
	}

	private scheduleReports() {
		if (this.reportTimer) return;
		this.reportTimer = setInterval(() => this.flushReports(), this.opts.reportInterval);
		this.reportTimer.unref();
	}

	private flushReports() {
		if (this.pendingReports.size === 0) return;
		const items = [...this.pendingReports.values()];
		this.pendingReports.clear();
		this.send(EVENTS.nodeReport, { items }, undefined);
	}

	private startHeartbeat() {
		if (this.heartbeatTimer) return;
		this.heartbeatTimer = setInterval(() => this.heartbeat(), this.opts.heartbeatInterval);
		this.heartbeatTimer.unref();
	}

	/** A comment to every client that keeps up; disconnects those stuck too long. */
	private heartbeat() {
		const now = this.opts.now();
		for (const client of [...this.clients.values()]) {
			if (client.staleSince === null) this.write(client, `: ping ${now}\n\n`);
			else if (now - client.staleSince > this.opts.stallTimeout) {
				this.opts.logger?.info(
					`Event stream ${client.id} of '${client.principal.sub}' is stuck: disconnected.`
				);
				client.res.destroy();
				this.remove(client);
			}
		}
	}

	private stopTimers() {
		if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
		if (this.reportTimer) clearInterval(this.reportTimer);
		this.heartbeatTimer = this.reportTimer = null;
	}
}

/** The tenant of a workload, asked of the scheduler (as the cluster itself, not a user). */
export async function workloadTenant(broker: ServiceBroker, id: string): Promise<string | null> {
	const w = await broker.call<{ tenant?: unknown }, { id: string }>("scheduler.get", { id });
	return typeof w?.tenant === "string" ? w.tenant : null;
}

/**
 * The package root: the nearest folder upwards holding package.json and the dashboard's files.
 * The gateway runs from services/ (ts-node, jest) and from dist/services/ (`npm start`), and tsc
 * copies no static files, so the page is always served from the source tree.
 */
export function packageRoot(from: string = __dirname): string {
	for (let dir = from; ; dir = path.dirname(dir)) {
		if (
			fs.existsSync(path.join(dir, "package.json")) &&
			fs.existsSync(path.join(dir, "services", "gateway", "public"))
		)
			return dir;
		if (path.dirname(dir) === dir)
			throw new Error(`No package root with services/gateway/public above ${from}.`);
	}
}

/** Where `GET /` (the dashboard) and `/vendor/` (uPlot, no CDN) are served from. */
export function dashboardDirs(): { publicDir: string; vendorDir: string } {
	return {
		publicDir: path.join(packageRoot(), "services", "gateway", "public"),
		vendorDir: path.dirname(require.resolve("uplot"))
	};
}
