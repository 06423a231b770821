/**
 * Every setting of a node comes from environment variables with defaults that start a working
 * single-node cluster; this is the one place that reads them (the README's table mirrors it).
 */
import os from "os";
import path from "path";
import { parseDuration } from "./duration";
import { InvalidInputError } from "./errors";

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
	dataDir: string;
	/** Service names this node runs; null runs all of them. */
	services: string[] | null;
	namespace: string;
	logLevel: string;
	jwtSecret: string | null;
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
	/** ISA_NODE_CAPACITY, simulation only. */
	capacityOverride: string | null;
	/** Port of the Prometheus reporter's own listener; null: /metrics on the gateway only. */
	metricsPort: number | null;
	requestTimeout: number;
	/** Moleculer's per-action request metrics (costly on the hot path; off by default). */
	requestMetrics: boolean;
	/** ISA_ALLOWED_COMMANDS: what process workloads this node may run (none by default). */
	allowedCommands: string | undefined;
	/** ISA_SERVICE_DIRS: where service workloads' modules are looked up. */
	serviceDirs: string | undefined;
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
	/** ISA_TRUST_PROXY: take the client address from X-Forwarded-For (behind a proxy only). */
	trustProxy: boolean;
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

function auditSwitch(raw: string | undefined): boolean {
	if (raw === undefined || raw === "" || /^(on|1|true|yes)$/i.test(raw)) return true;
	if (/^(off|0|false|no)$/i.test(raw)) return false;
	throw new InvalidInputError(`ISA_AUDIT='${raw}' is not on or off.`, { value: raw });
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
	return {
		nodeID: env.NODEID || os.hostname(),
		givenNodeID: env.NODEID || null,
		host: env.HOST || "127.0.0.1",
		port: number(env, "PORT", 3000),
		transporter: env.TRANSPORTER || null,
		store: env.STORE || path.join(dataDir, "isa.db"),
		dataDir,
		services,
		namespace: env.NAMESPACE || "",
		logLevel: env.LOGLEVEL || "info",
		jwtSecret: env.ISA_JWT_SECRET || null,
		jwtPublicKey: env.ISA_JWT_PUBLIC_KEY || null,
		jwtIssuer: env.ISA_JWT_ISSUER || null,
		jwtAudience: env.ISA_JWT_AUDIENCE || null,
		jwtClockTolerance:
			parseDuration(env.ISA_JWT_CLOCK_TOLERANCE || "30s", {
				field: "ISA_JWT_CLOCK_TOLERANCE",
				max: 3_600_000
			}) / 1000,
		labels: parseLabels(env.ISA_NODE_LABELS),
		reportInterval: Math.max(100, number(env, "ISA_REPORT_INTERVAL", 2) * 1000),
		capacityOverride: env.ISA_NODE_CAPACITY || null,
		metricsPort: env.METRICS_PORT ? number(env, "METRICS_PORT", 3030) : null,
		requestTimeout: number(env, "ISA_REQUEST_TIMEOUT", 10) * 1000,
		requestMetrics: /^(1|true|yes)$/i.test(env.ISA_REQUEST_METRICS ?? ""),
		allowedCommands: env.ISA_ALLOWED_COMMANDS,
		serviceDirs: env.ISA_SERVICE_DIRS,
		tenant: env.ISA_TENANT || "default",
		token: env.ISA_TOKEN || null,
		applyFile: env.ISA_APPLY || null,
		audit: auditSwitch(env.ISA_AUDIT),
		auditKey: env.ISA_AUDIT_KEY || null,
		auditMaxRecords: number(env, "ISA_AUDIT_MAX_RECORDS", 1_000_000) || null,
		auditMaxAge:
			parseDuration(env.ISA_AUDIT_MAX_AGE || "90d", { field: "ISA_AUDIT_MAX_AGE" }) || null,
		trustProxy: /^(1|true|yes)$/i.test(env.ISA_TRUST_PROXY ?? "")
	};
}
