/**
 * gateway: the one HTTP entry of the cluster (moleculer-web). Only the aliases below are
 * reachable (`mappingPolicy: "restrict"`), so no internal action and no `$node.*` leaks out.
 * /health, /ready and /metrics are open; everything under /api/v1 needs a JWT, and each action
 * says which access it needs (`access: "read" | "write" | "admin"`; default read for GET and
 * write otherwise), checked against the token's roles. With ISA_TLS_CERT and ISA_TLS_KEY it
 * serves HTTPS, HTTP/2 and HTTP/1.1 (gateway/tls.ts); every answer carries the security headers
 * of gateway/headers.ts.
 *
 * The gateway owns its HTTP server's lifecycle (moleculer-web's `server: false`): it makes the
 * server itself (`createServer`), listens with a clear error (gateway/listen.ts) and, on
 * `node.draining` (SIGTERM), drains its connections and HTTP/2 sessions before the broker stops
 * the services they need (gateway/drain.ts).
 */
import crypto from "crypto";
import type { IncomingMessage, ServerResponse } from "http";
import type { Context, Service, ServiceSchema } from "moleculer";
import { Errors } from "moleculer";
import ApiGateway, { ApiRouteSchema, ApiSettingsSchema } from "moleculer-web";
import StoreMixin, { type StoreSettings } from "../mixins/store.mixin";
import { loadEnv } from "./shared/env";
import { ForbiddenError, InvalidInputError, StoreIdentityMismatchError } from "./shared/errors";
import type { IdentityGuard } from "./shared/store/identity-guard";
import type { Store } from "./shared/store";
import { isRedisUrl } from "./shared/store/redis-target";
import { mintToken, TokenVerifier } from "./gateway/jwt";
import { Access, canAccess, Principal, rolesFor } from "./shared/principal";
import { loadOrCreateSecret, readPublicKey } from "./gateway/secret";
import { checkBody, mapBodyErrors, type Middleware } from "./gateway/body";
import {
	applyServerLimits,
	KEEP_ALIVE_TIMEOUT,
	MAX_HEADER_SIZE,
	type ServerLimits
} from "./gateway/server-limits";
import { auditedError, beginAudit, endAudit, isMutation } from "./gateway/audit-hooks";
import { HttpDrain, QUIET_MS } from "./gateway/drain";
import { listen } from "./gateway/listen";
import { EVENTS } from "./shared/events";
import { answerError } from "./gateway/errors";
import { FAIR_SHARE_WINDOW_MS, Shedder } from "./gateway/overload";
import { LagMonitor } from "./shared/lag";
import { UtilizationMonitor } from "./shared/utilization";
import {
	CertificateReloader,
	createGatewayServer,
	readTlsFiles,
	RELOAD_INTERVAL,
	SessionTracker,
	type GatewayServer,
	type TlsFiles
} from "./gateway/tls";
import { securityHeaders, withSecurityHeaders } from "./gateway/headers";
import type { Redis } from "ioredis";
import type { RateLimitSettings } from "./shared/env";
import { redisConnection } from "./shared/connections";
import { clientAddress, type TrustProxy } from "./shared/trust-proxy";
import {
	AUTH_WINDOW_S,
	makeCounter,
	requestCounter,
	RATE_WINDOW_S,
	RateLimiter,
	sharedRedis,
	type CountStore,
	type Counter
} from "./gateway/rate-limits";
import { TenantRates, type RateOverride } from "./gateway/tenant-rates";
import { ERR_INVALID_TOKEN, ERR_TOKEN_EXPIRED } from "./gateway/jwt";
import { EventTickets, redisSpentTickets, ticketKey } from "./gateway/ticket";
import {
	dashboardDirs,
	EventStream,
	STREAM_GROUP,
	STREAMED_EVENTS,
	workloadTenant
} from "./gateway/events";

const env = loadEnv();
/** Per-request log lines cost ~40% of throughput even as no-ops: only build them when shown. */
const logRequests = env.logLevel === "debug" || env.logLevel === "trace";
/** The dashboard's files (from the source tree, also under dist/) and uPlot's, for /vendor/. */
const dashboard = dashboardDirs();
const serveStatic = (ApiGateway as unknown as { serveStatic: (root: string, opts?: object) => any })
	.serveStatic;
/** body-parser, as moleculer-web bundles it (it has no types of its own). */
const bodyParser = (
	ApiGateway as unknown as { bodyParser: Record<"json" | "text", (o: object) => Middleware> }
).bodyParser;

/** A route open to anyone (no gateway authentication), without a body, with only its aliases. */
function openRoute(path: string, rest: Partial<ApiRouteSchema>): ApiRouteSchema {
	return {
		path,
		mappingPolicy: "restrict",
		logging: logRequests,
		authentication: false,
		authorization: false,
		bodyParsers: { json: false, urlencoded: false },
		...rest
	};
}

interface GatewaySettings extends ApiSettingsSchema {
	jwtSecret: string | null;
	/** HS256 secrets still accepted while tokens signed with them live out their time. */
	jwtPreviousSecrets: string[];
	jwtPublicKey: string | null;
	/** A JWKS file of RS256/ES256 public keys, by kid. */
	jwtJwks: string | null;
	/** The `iss` and `aud` tokens must carry (null: not checked). */
	jwtIssuer: string | null;
	jwtAudience: string | null;
	/** Seconds a token's `exp`, `nbf` and `iat` may be off. */
	jwtClockTolerance: number;
	dataDir: string;
	/** Deadlines and header size of the HTTP server (server-limits.ts). */
	httpLimits: ServerLimits;
	/** Audit hooks on (default); off only for the benchmark's audit-off row (ISA_AUDIT=off). */
	audit: boolean;
	/** Whose X-Forwarded-For names the client (ISA_TRUST_PROXY). */
	trustProxy: TrustProxy;
	/** Request rate limits and failed-authentication limits (ISA_RATE_*). */
	rateLimits: RateLimitSettings;
	/** The certificate, key and client CA files (ISA_TLS_*); null serves plain HTTP. */
	tls: TlsFiles | null;
	/** ms between two looks at the TLS files for a renewed certificate. */
	tlsReloadInterval: number;
	/** ms a stopping gateway lets its requests finish (ISA_SHUTDOWN_GRACE). */
	shutdownGrace: number;
	/** Event-loop lag (ms) past which API requests are shed (ISA_SHED_LAG; null: never). */
	shedLag: number | null;
	/** Event-loop utilization past which tenants over their part are held back (ISA_SHED_BUSY). */
	shedBusy: number | null;
	/** Mutations of one tenant in flight at once (ISA_QUEUE_TENANT_MUTATIONS). */
	tenantMutations: number;
	/** Mutations in flight split between the active tenants (ISA_QUEUE_MUTATIONS). */
	mutations: number;
}

interface Meta {
	user?: Principal;
}

interface GatewayThis extends Service<GatewaySettings> {
	verifier: TokenVerifier;
	/** The secret was made or read from the data directory: print a ready-to-paste admin token. */
	localSecret: string | null;
	store: Store;
	storeIdentity: IdentityGuard;
	server: GatewayServer;
	/** Set by createServer: the server speaks TLS. */
	isHTTPS: boolean;
	/** moleculer-web's request handler. */
	httpHandler(req: IncomingMessage, res: ServerResponse): void;
	/** Follows the TLS files while serving HTTPS. */
	tlsReloader: CertificateReloader | null;
	/** The HTTP/2 sessions, ended on stop (HTTPS only). */
	h2Sessions: SessionTracker | null;
	/** The dashboard's server-sent events (GET /api/v1/events). */
	eventStream: EventStream;
	/** The event stream's single-use tickets (POST /api/v1/events/ticket). */
	tickets: EventTickets;
	drain: HttpDrain;
	/** The shutdown under way (`shutdown`), once begun. */
	stopping: Promise<void> | null;
	createServer(): void;
	shutdown(quiet?: number): Promise<void>;
	/** This process's event-loop lag, and what is shed for it (gateway/overload.ts). */
	lag: LagMonitor;
	stopLag: () => void;
	busy: UtilizationMonitor;
	stopBusy: () => void;
	shedder: Shedder;
	/** The rate limits (gateway/rate-limits.ts); null with ISA_RATE_LIMITS=off. */
	rateLimiter: RateLimiter | null;
	/** The counts' Redis client when the store is Redis. */
	sharedRedis: Redis | null;
	/** The request counts (rate-limits.ts requestCounter); null while limits are off. */
	requestCounts: (Counter & { stop?(): Promise<void> }) | null;
	/** Each tenant's rate overrides, from the tenants service (gateway/tenant-rates.ts). */
	tenantRates: TenantRates;
	/** The client's address of a request (ISA_TRUST_PROXY). */
	clientOf(req: IncomingMessage): string | null;
}

/** ms the gateway waits for a tenant's rate overrides; the defaults apply meanwhile after. */
const TENANT_RATES_CALL_MS = 1000;

/** POST /api/v1/cluster/adopt: the one mutation a store of another identity lets through. */
const ADOPT_ACTION = "scheduler.adopt";

/**
 * 503 from /ready, with what is not reachable. Not retryable: a probe's answer is due within
 * its own timeout (k8s: 3 s), and retries of the check would only delay it.
 */
class NotReadyError extends Errors.MoleculerError {
	constructor(checks: Record<string, string>, why = "a dependency is unreachable") {
		super(`Not ready: ${why}.`, 503, "NOT_READY", { checks });
	}
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
	let timer: NodeJS.Timeout;
	const timeout = new Promise<never>((_, reject) => {
		timer = setTimeout(() => reject(new Error(`${what} did not answer in ${ms} ms`)), ms);
	});
	return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const GatewayService: ServiceSchema<GatewaySettings, GatewayThis> = {
	name: "gateway",
	mixins: [ApiGateway, StoreMixin()],

	settings: {
		port: env.port,
		ip: env.host,
		jwtSecret: env.jwtSecret,
		jwtPreviousSecrets: env.jwtPreviousSecrets,
		jwtPublicKey: env.jwtPublicKey,
		jwtJwks: env.jwtJwks,
		jwtIssuer: env.jwtIssuer,
		jwtAudience: env.jwtAudience,
		jwtClockTolerance: env.jwtClockTolerance,
		dataDir: env.dataDir,
		httpLimits: {
			headersTimeout: env.httpHeadersTimeout,
			requestTimeout: env.httpRequestTimeout,
			keepAliveTimeout: KEEP_ALIVE_TIMEOUT,
			maxHeaderSize: MAX_HEADER_SIZE
		},
		audit: env.audit,
		trustProxy: env.trustProxy,
		rateLimits: env.rateLimits,
		tls:
			env.tlsCert && env.tlsKey
				? { cert: env.tlsCert, key: env.tlsKey, clientCa: env.tlsClientCa }
				: null,
		tlsReloadInterval: RELOAD_INTERVAL,
		shutdownGrace: env.shutdownGrace,
		// The server is made in `created` and listened on in `started`, below.
		server: false,
		shedLag: env.shedLag,
		shedBusy: env.shedBusy,
		tenantMutations: env.queueTenantMutations,
		mutations: env.queueMutations,

		logRequest: "debug",
		logResponse: "debug",
		logRequestParams: null,
		logResponseData: null,
		log4XXResponses: false,

		// GET / is the dashboard: what no route answers is looked up here (index.html for "/").
		assets: { folder: dashboard.publicDir, options: { index: ["index.html"] } },

		routes: [
			openRoute("/", {
				aliases: {
					"GET health": "gateway.health",
					"GET ready": "gateway.ready",
					"GET metrics"(this: GatewayThis, _req: IncomingMessage, res: ServerResponse) {
						const reporter = (this.broker.metrics as any).reporter.find(
							(r: any) => typeof r.generatePrometheusResponse === "function"
						);
						res.setHeader("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
						res.end(reporter ? reporter.generatePrometheusResponse() : "");
					}
				}
			}),
			{
				path: "/api/v1",
				mappingPolicy: "restrict",
				logging: logRequests,
				authentication: true,
				authorization: true,
				// A retried POST with the same Idempotency-Key does not act twice.
				onBeforeCall(
					ctx: Context<unknown, { idempotencyKey?: string }>,
					_route: unknown,
					req: IncomingMessage & { body?: unknown; $params: Record<string, unknown> }
				) {
					checkBody(req);
					// A YAML body (POST /apply) arrives as text: hand it over as the document.
					if (typeof req.body === "string" && req.body.length > 0)
						req.$params.document = req.body;
					const key = req.headers["idempotency-key"];
					if (key === undefined) return;
					if (typeof key !== "string" || !/^[\x21-\x7e]{1,256}$/.test(key))
						throw new InvalidInputError(
							"Idempotency-Key must be 1 to 256 printable characters without spaces.",
							{ header: "Idempotency-Key" }
						);
					ctx.meta.idempotencyKey = key;
				},
				// Every mutation and every denial leaves one audit record (gateway/audit-hooks.ts).
				async onAfterCall(
					this: GatewayThis,
					_ctx: Context,
					_route: unknown,
					req: any,
					res: ServerResponse,
					data: unknown
				) {
					await endAudit(this, req, res, { data });
					return data;
				},
				onError(this: GatewayThis, req: any, res: ServerResponse, err: unknown) {
					void auditedError(this as any, req, res, err);
				},
				// Larger bodies get 413; a JSON body must be an object or array. The parsers run as
				// `use` middlewares so that their errors become client errors (a broken gzip body
				// is a 400, an unknown Content-Encoding a 415), not moleculer-web's 500.
				bodyParsers: false,
				use: [
					mapBodyErrors(bodyParser.json({ limit: "1mb", strict: true })),
					mapBodyErrors(
						bodyParser.text({
							limit: "1mb",
							type: ["application/yaml", "application/x-yaml", "text/yaml"]
						})
					)
				],
				aliases: {
					"GET nodes": "nodes.list",
					"GET nodes/:id": "nodes.get",
					"POST nodes/:id/drain": "nodes.drain",
					"POST nodes/:id/uncordon": "nodes.uncordon",
					"DELETE nodes/:id": "nodes.remove",

					"POST workloads": "scheduler.create",
					"GET workloads": "scheduler.list",
					"GET workloads/:id": "scheduler.get",
					"POST workloads/:id/scale": "scheduler.scale",
					"POST workloads/:id/retry": "scheduler.retry",
					"DELETE workloads/:id": "scheduler.remove",
					"GET workloads/:id/logs": "scheduler.logs",

					"GET tenants": "tenants.listTenants",
					"POST tenants": "tenants.createTenant",
					"GET tenants/:id": "tenants.getTenant",
					"PUT tenants/:id": "tenants.updateTenant",
					"DELETE tenants/:id": "tenants.deleteTenant",

					"GET resources": "registry.listResources",
					"POST resources": "registry.createResource",
					"GET resources/:id": "registry.getResource",
					"PUT resources/:id": "registry.updateResource",
					"DELETE resources/:id": "registry.deleteResource",
					"GET services": "registry.listServices",
					"POST services/call": "registry.call",
					"POST services": "registry.createService",
					"GET services/:name": "registry.getService",
					"DELETE services/:name": "registry.deleteService",
					"POST apply": "registry.apply",

					"GET config": "config.list",
					"GET config/:key": "config.get",
					"PUT config/:key": "config.set",
					"DELETE config/:key": "config.remove",

					"GET stats": "monitor.stats",
					"GET alerts/rules": "monitor.listRules",
					"POST alerts/rules": "monitor.createRule",
					"DELETE alerts/rules/:id": "monitor.deleteRule",
					"GET alerts": "monitor.listAlerts",

					"GET audit": "audit.list",

					"POST events/ticket": "gateway.eventTicket",

					"POST cluster/adopt": "scheduler.adopt"
				}
			},
			// uPlot for the dashboard, from node_modules: the page needs no CDN.
			openRoute("/vendor", {
				use: [serveStatic(dashboard.vendorDir, { index: false })],
				aliases: {}
			}),
			// The dashboard's live events. The handler checks the token itself, from the
			// Authorization header or a ticket in ?ticket= (EventSource cannot send headers).
			openRoute("/api/v1/events", {
				onError(this: GatewayThis, req: any, res: ServerResponse, err: unknown) {
					void auditedError(this as any, req, res, err);
				},
				aliases: {
					"GET /"(
						this: GatewayThis,
						req: IncomingMessage,
						res: ServerResponse,
						next: (err?: unknown) => void
					) {
						void this.eventStream.handle(req, res, next);
					}
				}
			})
		]
	},

	actions: {
		/** 200 while the process lives. */
		health: {
			idempotent: true,
			handler() {
				return { status: "ok" };
			}
		},

		/** A single-use ticket for one event-stream connection (gateway/ticket.ts). */
		eventTicket: {
			access: "read",
			// A repeat signs another ticket, which the caller never gets and which expires unused.
			idempotent: true,
			// Issuing a ticket changes nothing: audited when denied only, like a GET.
			mutates: false,
			params: { $$strict: true },
			handler(this: GatewayThis, ctx: Context<unknown, Meta>) {
				const user = ctx.meta.user;
				if (!user)
					throw new ForbiddenError("Event tickets are issued to authenticated callers.", {
						access: "read",
						roles: []
					});
				return this.tickets.issue(user);
			}
		},

		/**
		 * 200 when the transporter and the store are reachable and this gateway does not shed
		 * load, else 503 with what is not; at once while the store's circuit is open (its ping
		 * is refused), else within 1 s.
		 */
		ready: {
			idempotent: true,
			async handler(this: GatewayThis) {
				// Stopping: out of the load balancer first, whatever the dependencies say.
				if (this.drain.isDraining)
					throw new NotReadyError(
						{ gateway: "shutting down" },
						"this gateway is shutting down"
					);
				const checks: Record<string, string> = {};
				const transit = this.broker.transit;
				checks.transporter = !transit || transit.connected ? "ok" : "disconnected";
				checks.load = this.shedder.readiness();
				try {
					await withTimeout(this.store.ping(), 1000, "The store");
					// Reachable is not enough: a store that is not the cluster's is not used.
					const mismatch = this.storeIdentity.mismatch;
					checks.store = mismatch ? `identity mismatch: ${mismatch.message}` : "ok";
				} catch (err) {
					checks.store = (err as Error).message;
				}
				if (Object.values(checks).some(v => v !== "ok")) throw new NotReadyError(checks);
				return { status: "ready", checks };
			}
		}
	},

	events: {
		/** Cluster events, fed to the dashboard's event stream; a group per gateway process. */
		...Object.fromEntries(
			STREAMED_EVENTS.map(name => [
				name,
				{
					group: STREAM_GROUP,
					handler(this: GatewayThis, ctx: Context) {
						this.eventStream.publish(name, ctx.params);
					}
				}
			])
		),
		/** SIGTERM (bin/isa.ts): drain before the services stop. */
		[EVENTS.nodeDraining]: {
			handler(this: GatewayThis) {
				return this.shutdown();
			}
		}
	},

	methods: {
		/**
		 * Replaces moleculer-web's: HTTPS with HTTP/2 and HTTP/1.1 when TLS files are set (a bad
		 * file throws here, in `created`, and the node exits with status 2), and the security
		 * headers on every answer.
		 */
		createServer(this: GatewayThis) {
			if (this.server) return;
			const material = this.settings.tls ? readTlsFiles(this.settings.tls) : null;
			this.isHTTPS = material !== null;
			const handler = withSecurityHeaders(
				(req: IncomingMessage, res: ServerResponse) => this.httpHandler(req, res),
				securityHeaders(this.isHTTPS)
			);
			this.server = createGatewayServer(handler, material);
		},

		/** Every failed request: the error as the client gets it (gateway/errors.ts). */
		errorHandler(this: GatewayThis, req: any, res: ServerResponse, err: unknown) {
			answerError(this as any, req, res, err);
		},

		/**
		 * The principal of the request's bearer token, or 401; 429 for an address blocked after
		 * too many tokens that did not verify (gateway/rate-limits.ts). A missing token is not
		 * counted: it guesses nothing.
		 */
		async authenticate(
			this: GatewayThis,
			_ctx: Context,
			_route: unknown,
			req: IncomingMessage
		) {
			const limiter = this.rateLimiter;
			const address = limiter ? this.clientOf(req) : null;
			const blocked = limiter?.blocked(address);
			if (blocked) throw blocked;
			try {
				return await this.verifier.verifyHeader(req.headers.authorization);
			} catch (err) {
				const type = (err as { type?: unknown }).type;
				if (limiter && (type === ERR_INVALID_TOKEN || type === ERR_TOKEN_EXPIRED))
					throw (await limiter.failed(address)) ?? err;
				throw err;
			}
		},

		clientOf(this: GatewayThis, req: IncomingMessage) {
			return clientAddress(
				req.socket?.remoteAddress,
				req.headers["x-forwarded-for"],
				this.settings.trustProxy
			);
		},

		/** 403 unless one of the token's roles grants the access the action declares. */
		async authorize(
			this: GatewayThis,
			ctx: Context<unknown, Meta>,
			_route: unknown,
			req: any,
			res: ServerResponse
		) {
			const access: Access = req.$action?.access ?? (req.method === "GET" ? "read" : "write");
			const user = ctx.meta.user as Principal;
			const mutation = isMutation(req);
			// First: the cheapest refusal, and one that bounds what comes after it, the audit
			// records of 403s and the write-ahead entries included, for a tenant that floods.
			if (this.rateLimiter) {
				const override = await this.tenantRates.get(user.tenant);
				const { headers, refusal } = await this.rateLimiter.admit(user, mutation, override);
				for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
				if (refusal) throw refusal;
			}
			if (!canAccess(user, access))
				throw new ForbiddenError(
					`This needs the role ${rolesFor(access).join(" or ")}; the token has ${user.roles.join(", ")}.`,
					{ access, roles: user.roles }
				);
			// Before the audit's write-ahead entry: a request shed for load costs no store write,
			// and the audit log's commits stay free for the other tenants (gateway/overload.ts).
			res.once("close", this.shedder.admit(user.tenant, mutation));
			const mismatch = mutation ? this.storeIdentity.mismatch : null;
			if (mismatch) {
				// The adoption is what makes the store writable, the audit log in it included:
				// it is recorded after it ran (endAudit), by then into the adopted store.
				if (req.$action?.name === ADOPT_ACTION) return;
				throw new StoreIdentityMismatchError(mismatch.message, {
					problem: mismatch.problem,
					expected: mismatch.expected,
					found: mismatch.found
				});
			}
			// Fail closed: a mutation's audit entry is durable before its action runs, or 503.
			await beginAudit(this, req, res);
		},

		/**
		 * Stops following the TLS files and ends the event streams (they would hold the server
		 * open), then drains the HTTP connections and HTTP/2 sessions within the grace; once,
		 * whoever asks first.
		 */
		shutdown(this: GatewayThis, quiet = QUIET_MS) {
			this.stopping ??= (async () => {
				this.tlsReloader?.stop();
				this.eventStream.close();
				const { open, forced, took } = await this.drain.drain(
					this.settings.shutdownGrace,
					quiet
				);
				const cut = forced ? `; ${forced} still open at the end of the grace, closed` : "";
				this.logger.info(`HTTP connections drained in ${took} ms (${open} open${cut}).`);
			})();
			return this.stopping;
		}
	},

	created(this: GatewayThis) {
		// moleculer-web's server, made here (`server: false`); `started` listens on it.
		this.createServer();
		// A failed listen is `started`'s to report (gateway/listen.ts).
		this.server.on("error", err => {
			if (this.server.listening) this.logger.error("HTTP server error:", err);
		});
		// The HTTP/2 server applies them to its HTTP/1.1 connections.
		applyServerLimits(this.server as import("http").Server, this.settings.httpLimits);
		const tlsFiles = this.settings.tls;
		this.tlsReloader = tlsFiles
			? new CertificateReloader(
					tlsFiles,
					options => (this.server as import("tls").Server).setSecureContext(options),
					this.logger
				)
			: null;
		this.h2Sessions = this.isHTTPS
			? new SessionTracker(this.server as import("http2").Http2SecureServer)
			: null;
		this.drain = new HttpDrain(this.server, this.h2Sessions);
		this.stopping = null;
		let secret = this.settings.jwtSecret;
		this.localSecret = null;
		const publicKeyPem = readPublicKey(this.settings.jwtPublicKey);
		if (!secret && !publicKeyPem && !this.settings.jwtJwks) {
			secret = loadOrCreateSecret(this.settings.dataDir, msg => this.logger.warn(msg)).secret;
			this.localSecret = secret;
		}
		this.verifier = new TokenVerifier({
			secret,
			previousSecrets: this.settings.jwtPreviousSecrets,
			publicKeyPem,
			jwksFile: this.settings.jwtJwks,
			issuer: this.settings.jwtIssuer,
			audience: this.settings.jwtAudience,
			clockTolerance: this.settings.jwtClockTolerance
		});
		// Any gateway sharing the HS256 secret redeems the tickets; else this one only.
		this.tickets = new EventTickets({
			key: secret ? ticketKey(secret) : crypto.randomBytes(32)
		});
		this.eventStream = new EventStream({
			verifier: this.verifier,
			tickets: this.tickets,
			lookupTenant: id => workloadTenant(this.broker, id),
			logger: this.logger,
			// The limiter is made in `started`; until then nothing is counted.
			failures: {
				blocked: req => this.rateLimiter?.blocked(this.clientOf(req)) ?? null,
				failed: async req =>
					this.rateLimiter ? this.rateLimiter.failed(this.clientOf(req)) : null
			}
		});
		this.lag = new LagMonitor();
		this.busy = new UtilizationMonitor();
		this.shedder = new Shedder(
			() => this.lag.lag(),
			this.settings.shedLag,
			{
				budget: this.settings.mutations,
				perTenant: this.settings.tenantMutations,
				windowMs: FAIR_SHARE_WINDOW_MS
			},
			() => this.busy.utilization(),
			this.settings.shedBusy
		);
	},

	async started(this: GatewayThis) {
		// Shared by the cluster's gateways through Redis; in this process with the embedded
		// store, which only a single node uses (gateway/rate-limits.ts).
		// The store's settings come from StoreMixin.
		const { store, storePrefix } = this.settings as GatewaySettings & StoreSettings;
		this.sharedRedis = isRedisUrl(store)
			? sharedRedis(store, redisConnection(env.redis), this.logger)
			: null;
		if (this.sharedRedis) this.tickets.share(redisSpentTickets(this.sharedRedis, storePrefix));
		const counts: CountStore = this.sharedRedis
			? { redis: this.sharedRedis, prefix: storePrefix }
			: null;
		const { enabled } = this.settings.rateLimits;
		this.requestCounts = enabled ? requestCounter(counts, RATE_WINDOW_S) : null;
		this.rateLimiter = this.requestCounts
			? new RateLimiter(this.settings.rateLimits, {
					requests: this.requestCounts,
					failures: makeCounter(counts, "auth-failures", AUTH_WINDOW_S)
				})
			: null;
		this.tenantRates = new TenantRates(tenant =>
			this.broker.call<RateOverride, { tenant: string }>(
				"tenants.rateLimits",
				{ tenant },
				{ timeout: TENANT_RATES_CALL_MS, retries: 0 }
			)
		);
		// Both are set above; moleculer-web's own defaults otherwise.
		await listen(this.server, this.settings.port ?? 3000, this.settings.ip ?? "0.0.0.0");
		this.stopLag = this.lag.start();
		this.stopBusy = this.busy.start();
		this.tlsReloader?.start(this.settings.tlsReloadInterval);
		const address = this.server.address();
		const port = typeof address === "object" && address ? address.port : this.settings.port;
		const url = `${this.isHTTPS ? "https" : "http"}://${this.settings.ip === "0.0.0.0" ? "localhost" : this.settings.ip}:${port}`;
		if (!this.localSecret) {
			this.logger.info(`IsA Cloud gateway on ${url}`);
			return;
		}
		const token = await mintToken({
			secret: this.localSecret,
			sub: "admin",
			tenant: "default",
			roles: ["admin"],
			ttl: 24 * 3600,
			issuer: this.settings.jwtIssuer,
			audience: this.settings.jwtAudience
		});
		this.logger.info(
			[
				`IsA Cloud is up on ${url}`,
				`Admin token (24 h; more with \`npm run -s token -- --tenant T --role R\`):`,
				`export TOKEN=${token}`,
				`curl -H "Authorization: Bearer $TOKEN" ${url}/api/v1/nodes`
			].join("\n")
		);
	},

	/**
	 * Stopped without a SIGTERM drain (a test's broker, a hot reload): idle connections are
	 * closed at once, as Node's server.close() does; HTTP/2 sessions get their GOAWAY.
	 */
	async stopped(this: GatewayThis) {
		this.stopLag?.();
		this.stopBusy?.();
		await this.shutdown(0);
		// What was counted since the last batch counts on the other gateways too.
		await this.requestCounts?.stop?.();
		this.sharedRedis?.disconnect();
	}
};

export default GatewayService;
