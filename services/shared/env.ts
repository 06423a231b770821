/**
 * Every setting of a node comes from environment variables with defaults that start a working
 * single-node cluster; this is the one place that reads them (the README's table mirrors it).
 */
import { redisTarget } from "./store/redis-target";
import os from "os";
import path from "path";
import { parseDuration } from "./duration";
import { InvalidInputError } from "./errors";
import { parseTrustProxy, type TrustProxy } from "./trust-proxy";

export interface IsaEnv {
	nodeID: string;
	/** NODEID as set, null when unset (a REPL then names itself apart from the host's node). */
	givenNodeID: string | null;
	host: string;
	port: number;
	/** Moleculer transporter URL; null runs a single node without one. */
	transporter: string | null;
	/** `redis://…` or a path to the embedded database file. */
	store: string;
	/** STORE was set (not the embedded default): the node takes a NODEID lease there. */
	storeGiven: boolean;
	/**
	 * ISA_STORE_TIMEOUT: ms a store call waits for an answer before the store counts as down
	 * (default 2 s; services/shared/store/fail-fast.ts).
	 */
	storeTimeout: number;
	dataDir: string;
	/** Service names this node runs; null runs all of them. */
	services: string[] | null;
	namespace: string;
	logLevel: string;
	/** ISA_JWT_SECRET: the HS256 secret that signs. */
	jwtSecret: string | null;
	/** ISA_JWT_PREVIOUS_SECRETS: HS256 secrets still accepted during a rotation (comma-separated). */
	jwtPreviousSecrets: string[];
	/** ISA_JWT_JWKS: a JWKS file of RS256/ES256 public keys, chosen by `kid`. */
	jwtJwks: string | null;
	/** PEM of an RS256 public key; tokens signed with its private key are accepted too. */
	jwtPublicKey: string | null;
	/** ISA_JWT_ISSUER / ISA_JWT_AUDIENCE: the `iss` and `aud` tokens must carry, when set. */
	jwtIssuer: string | null;
	jwtAudience: string | null;
	/** ISA_JWT_CLOCK_TOLERANCE: seconds a token's times may be off (default 30). */
	jwtClockTolerance: number;
	labels: Record<string, string>;
	/** Node report interval in ms. */
	reportInterval: number;
	/**
	 * ISA_DISRUPTION_THRESHOLD: the share of up nodes (0–1, or a percentage) that may go silent
	 * within one down window and still be declared down; more is held as a disruption.
	 */
	disruptionThreshold: number;
	/** ISA_NODE_CAPACITY, simulation only. */
	capacityOverride: string | null;
	/** Port of the Prometheus reporter's own listener; null: /metrics on the gateway only. */
	metricsPort: number | null;
	requestTimeout: number;
	/** ISA_HTTP_HEADERS_TIMEOUT: ms the gateway waits for a request's headers (default 10 s). */
	httpHeadersTimeout: number;
	/** ISA_HTTP_REQUEST_TIMEOUT: ms it waits for a whole request, body included (default 30 s). */
	httpRequestTimeout: number;
	/** Moleculer's per-action request metrics (costly on the hot path; off by default). */
	requestMetrics: boolean;
	/** ISA_ALLOWED_COMMANDS: what process workloads this node may run (none by default). */
	allowedCommands: string | undefined;
	/** ISA_SERVICE_DIRS: where service workloads' modules are looked up. */
	serviceDirs: string | undefined;
	/** ISA_WORKLOAD_USER: who process replicas run as when the agent is root (null: `nobody`). */
	workloadUser: string | null;
	/** ISA_TENANT: the tenant the REPL's commands act for, as an admin. */
	tenant: string;
	/** ISA_TOKEN: the token `npm run apply` sends. */
	token: string | null;
	/** ISA_APPLY: a services/resources document the registry applies at start. */
	applyFile: string | null;
	/**
	 * ISA_AUDIT: "on" (default) audits and fails closed; "off" turns the gateway's audit hooks
	 * off, for the benchmark's audit-off row only (nothing is then recorded).
	 */
	audit: boolean;
	/** ISA_AUDIT_KEY: the HMAC key of the audit chain; null: the data directory's audit-key. */
	auditKey: string | null;
	/** ISA_AUDIT_MAX_RECORDS: audit records kept at most (default 1,000,000; 0: no bound). */
	auditMaxRecords: number | null;
	/** ISA_AUDIT_MAX_AGE: the oldest audit record kept, in ms (default 90d; 0: no bound). */
	auditMaxAge: number | null;
	/** ISA_NODE_RETENTION: ms a down node stays in the inventory (default 24h; null: forever). */
	nodeRetention: number | null;
	/**
	 * ISA_TRUST_PROXY: whose X-Forwarded-For names the client (audit records, rate limits by
	 * address): nobody's (false), any peer's (true), or a list of proxies (trust-proxy.ts).
	 */
	trustProxy: TrustProxy;
	/** ISA_RATE_*: the gateways' request rate limits (services/gateway/rate-limits.ts). */
	rateLimits: RateLimitSettings;
	/**
	 * ISA_TLS_CERT / ISA_TLS_KEY: PEM files of the gateway's certificate (chain) and key; both
	 * set, the gateway serves HTTPS (HTTP/1.1 and HTTP/2). Null: plain HTTP.
	 */
	tlsCert: string | null;
	tlsKey: string | null;
	/** ISA_TLS_CLIENT_CA: a PEM file of CAs whose client certificates the gateway requires. */
	tlsClientCa: string | null;
	/** ISA_SHUTDOWN_GRACE: ms a stopping gateway lets its requests finish (default 10 s). */
	shutdownGrace: number;
	/** ISA_TRANSPORTER_TIMEOUT: ms a starting node waits for its transporter (30 s). */
	transporterConnectTimeout: number;
	/**
	 * ISA_LEADER_LEASE: ms a service that acts once per cluster (the monitor) holds its lead
	 * without renewing it; a standby copy takes over within it (default 8 s).
	 */
	leaderLease: number;
	/** ISA_QUEUE_CREATES: creates one scheduler holds at once, all tenants (default 1000). */
	queueCreates: number;
	/** ISA_QUEUE_TENANT_CREATES: creates one scheduler holds at once for one tenant (default 100). */
	queueTenantCreates: number;
	/** ISA_QUEUE_SCHEDULER: tasks in the scheduler's queue past which a scale is refused (1000). */
	queueScheduler: number;
	/** ISA_QUEUE_TENANT_MUTATIONS: mutations of one tenant one gateway lets in at once (16). */
	queueTenantMutations: number;
	/** ISA_QUEUE_MUTATIONS: mutations one gateway shares between its active tenants (16). */
	queueMutations: number;
	/** ISA_QUEUE_HEALTH_CHECKS: health checks one registry runs at once (default 64). */
	queueHealthChecks: number;
	/** ISA_SHED_LAG: event-loop lag (ms) past which the gateway sheds (default 200; null: off). */
	shedLag: number | null;
	/**
	 * ISA_SHED_BUSY: event-loop utilization (0 to 1) past which the gateway holds back the
	 * tenants sending more than their part (default 0.5; null: off, with 0 or 1).
	 */
	shedBusy: number | null;
	/** ISA_NATS_*: how this node proves itself to NATS and checks the server (connections.ts). */
	nats: NatsAuth;
	/** ISA_REDIS_*: the same for a Redis store. */
	redis: RedisAuth;
	/**
	 * ISA_REDIS_WAIT_REPLICAS and ISA_REDIS_WAIT_TIMEOUT: a write to a Redis store is answered
	 * once that many replicas have it (Redis's WAIT), within that long (default: none, 1 s).
	 */
	redisWait: RedisWait;
	/**
	 * ISA_CLUSTER_KEY: the HMAC key that signs every request between nodes with its caller
	 * (services/shared/signed-principal.ts); null: the data directory's `cluster-key`.
	 */
	clusterKey: string | null;
}

/** Requests per second of one tenant, by kind. */
export interface RequestRates {
	reads: number;
	writes: number;
}

export interface RateLimitSettings {
	/** ISA_RATE_LIMITS: on (default) or off. */
	enabled: boolean;
	/** ISA_RATE_READS / ISA_RATE_WRITES: one tenant's requests per second (50 and 10). */
	tenant: RequestRates;
	/** ISA_RATE_SUBJECT_SHARE: the share of its tenant's rates one token subject gets (50%). */
	subjectShare: number;
	/** ISA_RATE_AUTH_FAILURES: failed authentications per minute one address may make (20). */
	authFailures: number;
}

/** PEM file paths of a TLS connection: the CA that signs the server, and this client's own pair. */
export interface TlsFiles {
	ca: string | null;
	cert: string | null;
	key: string | null;
}

/** NATS credentials (at most one kind) and TLS files. */
export interface NatsAuth {
	tls: TlsFiles;
	user: string | null;
	password: string | null;
	token: string | null;
	/** ISA_NATS_CREDS: a `.creds` file (a user JWT and its NKey seed, decentralized auth). */
	creds: string | null;
	/** ISA_NATS_NKEY: a file that holds an NKey seed (`SU…`). */
	nkey: string | null;
}

/** How many replicas must have a write before it is answered (services/shared/store/redis.ts). */
export interface RedisWait {
	replicas: number;
	timeoutMs: number;
}

/** Redis credentials (a password, or an ACL user and its password) and TLS files. */
export interface RedisAuth {
	tls: TlsFiles;
	username: string | null;
	password: string | null;
}

export const ALL_SERVICES = [
	"agent",
	"nodes",
	"scheduler",
	"tenants",
	"registry",
	"config",
	"monitor",
	"audit",
	"gateway"
];

function number(env: NodeJS.ProcessEnv, name: string, def: number): number {
	const raw = env[name];
	if (raw == null || raw === "") return def;
	const n = Number(raw);
	if (!Number.isFinite(n) || n < 0)
		throw new InvalidInputError(`${name}='${raw}' is not a number.`, { name, value: raw });
	return n;
}

/** "gpu=a100,zone=eu-1" → { gpu: "a100", zone: "eu-1" }. */
export function parseLabels(raw: string | undefined): Record<string, string> {
	const labels: Record<string, string> = {};
	for (const part of (raw ?? "").split(",")) {
		if (!part.trim()) continue;
		const [key, ...rest] = part.split("=");
		if (!/^[A-Za-z0-9._/-]+$/.test(key.trim()))
			throw new InvalidInputError(
				`ISA_NODE_LABELS entry '${part}' is not key=value (example: gpu=a100,zone=eu-1).`,
				{ entry: part }
			);
		labels[key.trim()] = rest.join("=").trim();
	}
	return labels;
}

/** "0.5" or "50%" → 0.5; within 0 and 1. */
function share(env: NodeJS.ProcessEnv, name: string, def: number): number {
	const raw = env[name]?.trim();
	if (!raw) return def;
	const n = raw.endsWith("%") ? Number(raw.slice(0, -1)) / 100 : Number(raw);
	if (!Number.isFinite(n) || n < 0 || n > 1 || raw === "%")
		throw new InvalidInputError(
			`${name}='${raw}' is not a share between 0 and 1 (or 0%–100%).`,
			{
				name,
				value: raw
			}
		);
	return n;
}

/** ISA_<prefix>_CA/_CERT/_KEY; a certificate needs its key and a key its certificate. */
function tlsFiles(env: NodeJS.ProcessEnv, prefix: string): TlsFiles {
	const files = {
		ca: env[`${prefix}_CA`] || null,
		cert: env[`${prefix}_CERT`] || null,
		key: env[`${prefix}_KEY`] || null
	};
	if (Boolean(files.cert) !== Boolean(files.key))
		throw new InvalidInputError(
			`${prefix}_CERT and ${prefix}_KEY go together: the client certificate and its key.`,
			{ name: files.cert ? `${prefix}_KEY` : `${prefix}_CERT` }
		);
	return files;
}

function natsAuth(env: NodeJS.ProcessEnv): NatsAuth {
	const auth: NatsAuth = {
		tls: tlsFiles(env, "ISA_NATS"),
		user: env.ISA_NATS_USER || null,
		password: env.ISA_NATS_PASSWORD || null,
		token: env.ISA_NATS_TOKEN || null,
		creds: env.ISA_NATS_CREDS || null,
		nkey: env.ISA_NATS_NKEY || null
	};
	if (auth.password && !auth.user)
		throw new InvalidInputError("ISA_NATS_PASSWORD needs ISA_NATS_USER.", {
			name: "ISA_NATS_USER"
		});
	const kinds = (["ISA_NATS_USER", "ISA_NATS_TOKEN", "ISA_NATS_CREDS", "ISA_NATS_NKEY"] as const)
		.filter(name => env[name])
		.map(String);
	if (kinds.length > 1)
		throw new InvalidInputError(
			`Set one kind of NATS credentials, not ${kinds.join(" and ")}.`,
			{ names: kinds }
		);
	return auth;
}

function redisAuth(env: NodeJS.ProcessEnv, store: string): RedisAuth {
	const auth: RedisAuth = {
		tls: tlsFiles(env, "ISA_REDIS"),
		username: env.ISA_REDIS_USERNAME || null,
		password: env.ISA_REDIS_PASSWORD || null
	};
	if (auth.username && !auth.password)
		throw new InvalidInputError("ISA_REDIS_USERNAME needs ISA_REDIS_PASSWORD.", {
			name: "ISA_REDIS_PASSWORD"
		});
	// A CA for a plain connection would be ignored: the store would talk in clear text.
	if ((auth.tls.ca || auth.tls.cert) && !/^rediss:\/\//i.test(store))
		throw new InvalidInputError(
			"ISA_REDIS_CA/ISA_REDIS_CERT are set but STORE is not a rediss:// URL (TLS).",
			{ name: "STORE" }
		);
	return auth;
}

/** ISA_SHED_BUSY's share; 0 and 1 turn it off (a loop is never busier than 1). */
function shedBusy(n: number): number | null {
	return n > 0 && n < 1 ? n : null;
}

/** STORE as given; a Sentinel URL not of its form is refused here, before anything starts. */
function checkedStore(store: string | undefined): string | undefined {
	if (store && /^redis-sentinel:\/\//i.test(store)) redisTarget(store);
	return store;
}

/** A whole number of at least 0. */
function wholeNumber(env: NodeJS.ProcessEnv, name: string, def: number): number {
	const n = number(env, name, def);
	if (!Number.isInteger(n))
		throw new InvalidInputError(`${name}='${env[name]}' is not a whole number.`, {
			name,
			value: env[name]
		});
	return n;
}

/** A queue's bound: a whole number of at least 1. */
function bound(env: NodeJS.ProcessEnv, name: string, def: number): number {
	const n = number(env, name, def);
	if (!Number.isInteger(n) || n < 1)
		throw new InvalidInputError(`${name}='${env[name]}' is not a whole number of at least 1.`, {
			name,
			value: env[name]
		});
	return n;
}

/** An on/off switch that is on when unset. */
function onOff(env: NodeJS.ProcessEnv, name: string): boolean {
	const raw = env[name];
	if (raw === undefined || raw === "" || /^(on|1|true|yes)$/i.test(raw)) return true;
	if (/^(off|0|false|no)$/i.test(raw)) return false;
	throw new InvalidInputError(`${name}='${raw}' is not on or off.`, { name, value: raw });
}

function rateLimits(env: NodeJS.ProcessEnv): RateLimitSettings {
	const subjectShare = share(env, "ISA_RATE_SUBJECT_SHARE", 0.5);
	if (subjectShare === 0)
		throw new InvalidInputError(
			"ISA_RATE_SUBJECT_SHARE must be more than 0 (100%: a token may use all of its tenant's rate).",
			{ name: "ISA_RATE_SUBJECT_SHARE" }
		);
	return {
		enabled: onOff(env, "ISA_RATE_LIMITS"),
		tenant: {
			reads: bound(env, "ISA_RATE_READS", 50),
			writes: bound(env, "ISA_RATE_WRITES", 10)
		},
		subjectShare,
		authFailures: bound(env, "ISA_RATE_AUTH_FAILURES", 20)
	};
}

export function loadEnv(env: NodeJS.ProcessEnv = process.env): IsaEnv {
	const dataDir = path.resolve(env.ISA_DATA_DIR || "data");
	const services = env.SERVICES?.trim()
		? env.SERVICES.split(",")
				.map(s => s.trim())
				.filter(Boolean)
		: null;
	const unknown = services?.filter(s => !ALL_SERVICES.includes(s)) ?? [];
	if (unknown.length)
		throw new InvalidInputError(
			`SERVICES names unknown services: ${unknown.join(", ")}. Known: ${ALL_SERVICES.join(", ")}.`,
			{ unknown }
		);
	const httpTimeout = (name: string, def: string) =>
		parseDuration(env[name] || def, { field: name, min: 1, max: 3_600_000 });
	const httpHeadersTimeout = httpTimeout("ISA_HTTP_HEADERS_TIMEOUT", "10s");
	const httpRequestTimeout = httpTimeout("ISA_HTTP_REQUEST_TIMEOUT", "30s");
	if (httpHeadersTimeout > httpRequestTimeout)
		throw new InvalidInputError(
			"ISA_HTTP_HEADERS_TIMEOUT must not be longer than ISA_HTTP_REQUEST_TIMEOUT.",
			{ name: "ISA_HTTP_HEADERS_TIMEOUT" }
		);
	const tlsCert = env.ISA_TLS_CERT || null;
	const tlsKey = env.ISA_TLS_KEY || null;
	const tlsClientCa = env.ISA_TLS_CLIENT_CA || null;
	if (Boolean(tlsCert) !== Boolean(tlsKey))
		throw new InvalidInputError(
			"ISA_TLS_CERT and ISA_TLS_KEY go together: set both for HTTPS, or neither.",
			{ name: tlsCert ? "ISA_TLS_KEY" : "ISA_TLS_CERT" }
		);
	if (tlsClientCa && !tlsCert)
		throw new InvalidInputError(
			"ISA_TLS_CLIENT_CA needs ISA_TLS_CERT and ISA_TLS_KEY: client certificates are asked for over HTTPS only.",
			{ name: "ISA_TLS_CLIENT_CA" }
		);
	return {
		nodeID: env.NODEID || os.hostname(),
		givenNodeID: env.NODEID || null,
		host: env.HOST || "127.0.0.1",
		port: number(env, "PORT", 3000),
		transporter: env.TRANSPORTER || null,
		store: checkedStore(env.STORE) || path.join(dataDir, "isa.db"),
		storeGiven: Boolean(env.STORE),
		storeTimeout: parseDuration(env.ISA_STORE_TIMEOUT || "2s", {
			field: "ISA_STORE_TIMEOUT",
			min: 50,
			max: 60_000
		}),
		dataDir,
		services,
		namespace: env.NAMESPACE || "",
		logLevel: env.LOGLEVEL || "info",
		jwtSecret: env.ISA_JWT_SECRET || null,
		jwtPreviousSecrets: (env.ISA_JWT_PREVIOUS_SECRETS ?? "")
			.split(",")
			.map(s => s.trim())
			.filter(Boolean),
		jwtPublicKey: env.ISA_JWT_PUBLIC_KEY || null,
		jwtJwks: env.ISA_JWT_JWKS || null,
		jwtIssuer: env.ISA_JWT_ISSUER || null,
		jwtAudience: env.ISA_JWT_AUDIENCE || null,
		jwtClockTolerance:
			parseDuration(env.ISA_JWT_CLOCK_TOLERANCE || "30s", {
				field: "ISA_JWT_CLOCK_TOLERANCE",
				max: 3_600_000
			}) / 1000,
		labels: parseLabels(env.ISA_NODE_LABELS),
		reportInterval: Math.max(100, number(env, "ISA_REPORT_INTERVAL", 2) * 1000),
		disruptionThreshold: share(env, "ISA_DISRUPTION_THRESHOLD", 0.5),
		capacityOverride: env.ISA_NODE_CAPACITY || null,
		metricsPort: env.METRICS_PORT ? number(env, "METRICS_PORT", 3030) : null,
		requestTimeout: number(env, "ISA_REQUEST_TIMEOUT", 10) * 1000,
		httpHeadersTimeout,
		httpRequestTimeout,
		requestMetrics: /^(1|true|yes)$/i.test(env.ISA_REQUEST_METRICS ?? ""),
		allowedCommands: env.ISA_ALLOWED_COMMANDS,
		serviceDirs: env.ISA_SERVICE_DIRS,
		workloadUser: env.ISA_WORKLOAD_USER?.trim() || null,
		tenant: env.ISA_TENANT || "default",
		token: env.ISA_TOKEN || null,
		applyFile: env.ISA_APPLY || null,
		audit: onOff(env, "ISA_AUDIT"),
		auditKey: env.ISA_AUDIT_KEY || null,
		auditMaxRecords: number(env, "ISA_AUDIT_MAX_RECORDS", 1_000_000) || null,
		auditMaxAge:
			parseDuration(env.ISA_AUDIT_MAX_AGE || "90d", { field: "ISA_AUDIT_MAX_AGE" }) || null,
		nodeRetention:
			parseDuration(env.ISA_NODE_RETENTION || "24h", { field: "ISA_NODE_RETENTION" }) || null,
		trustProxy: parseTrustProxy(env.ISA_TRUST_PROXY),
		rateLimits: rateLimits(env),
		tlsCert,
		tlsKey,
		tlsClientCa,
		shutdownGrace: parseDuration(env.ISA_SHUTDOWN_GRACE || "10s", {
			field: "ISA_SHUTDOWN_GRACE",
			max: 3_600_000
		}),
		transporterConnectTimeout: parseDuration(env.ISA_TRANSPORTER_TIMEOUT || "30s", {
			field: "ISA_TRANSPORTER_TIMEOUT",
			min: 1,
			max: 3_600_000
		}),
		leaderLease: parseDuration(env.ISA_LEADER_LEASE || "8s", {
			field: "ISA_LEADER_LEASE",
			min: 1000,
			max: 600_000
		}),
		queueCreates: bound(env, "ISA_QUEUE_CREATES", 1000),
		queueTenantCreates: bound(env, "ISA_QUEUE_TENANT_CREATES", 100),
		queueScheduler: bound(env, "ISA_QUEUE_SCHEDULER", 1000),
		queueTenantMutations: bound(env, "ISA_QUEUE_TENANT_MUTATIONS", 16),
		queueMutations: bound(env, "ISA_QUEUE_MUTATIONS", 16),
		queueHealthChecks: bound(env, "ISA_QUEUE_HEALTH_CHECKS", 64),
		shedLag:
			parseDuration(env.ISA_SHED_LAG || "200ms", { field: "ISA_SHED_LAG", max: 60_000 }) ||
			null,
		shedBusy: shedBusy(share(env, "ISA_SHED_BUSY", 0.5)),
		nats: natsAuth(env),
		redis: redisAuth(env, env.STORE || ""),
		redisWait: {
			replicas: wholeNumber(env, "ISA_REDIS_WAIT_REPLICAS", 0),
			timeoutMs: parseDuration(env.ISA_REDIS_WAIT_TIMEOUT || "1s", {
				field: "ISA_REDIS_WAIT_TIMEOUT",
				min: 1,
				max: 60_000
			})
		},
		clusterKey: env.ISA_CLUSTER_KEY || null
	};
}
