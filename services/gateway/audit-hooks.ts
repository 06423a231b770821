/**
 * The gateway's side of the audit log: every mutating request under /api/v1 and every denied
 * one (401, 403, 429, also on GET and on the event stream) leaves exactly one record.
 *
 * Fail closed: once a mutation is authenticated and authorized, `beginAudit` makes its
 * write-ahead entry durable (`audit.begin`) before the action runs; if that fails or times out
 * the request is refused with 503 AUDIT_UNAVAILABLE and the action never runs. After the action
 * (`onAfterCall`) or its error (`onError`, where moleculer-web 0.10.8 also delivers the errors of
 * `authenticate`, `authorize`, the rate limiter and the body parsers), `endAudit` appends the
 * final record with the outcome. If that append fails the write-ahead entry stays, and the audit
 * service completes it later with an unknown outcome: still one record.
 *
 * A request denied or failing before `beginAudit` changed nothing; its record is appended
 * directly, and a failure to write it is logged (the answer is an error anyway). One shed for
 * load before it began (503 OVERLOADED) is not recorded.
 */
import type { IncomingMessage, ServerResponse } from "http";
import type { Context, LoggerInstance, ServiceBroker } from "moleculer";
import { AuditUnavailableError, ERR_OVERLOADED, ERR_RATE_LIMITED } from "../shared/errors";
import type { Principal } from "../shared/principal";
import {
	DENIED_STATUSES,
	headerText,
	newRecordId,
	requestIdFrom,
	summarizeBody,
	targetOf,
	type AuditFields
} from "../audit/record";
import { clientAddress, type TrustProxy } from "../shared/trust-proxy";

/** How long a write-ahead entry may take before the mutation is refused. */
export const BEGIN_TIMEOUT_MS = 5000;
/** How long the final record may take before the answer goes out without it. */
export const END_TIMEOUT_MS = 5000;

const MUTATING = new Set(["POST", "PUT", "PATCH", "DELETE"]);

export interface AuditHost {
	broker: ServiceBroker;
	logger: LoggerInstance;
	settings: { audit: boolean; trustProxy: TrustProxy };
}

type Meta = { user?: Principal | null; $statusCode?: number };

export type AuditedRequest = IncomingMessage & {
	$ctx?: Context<unknown, Meta>;
	$alias?: { fullPath?: string; action?: string | null };
	/** `mutates: false` on an action: a POST that changes nothing (an event-stream ticket). */
	$action?: { name?: string; mutates?: boolean };
	$params?: Record<string, unknown>;
	$startTime?: [number, number];
	originalUrl?: string;
	body?: unknown;
	/** This request's record in the making; `begun` once its write-ahead entry is durable. */
	$audit?: { fields: AuditFields; begun: boolean; started: number };
};

/**
 * Whether a request changes something: a mutating method under /api/v1, unless its action
 * declares `mutates: false` (it is then audited only when denied, like a GET).
 */
export function isMutation(req: AuditedRequest): boolean {
	return (
		MUTATING.has(req.method ?? "") &&
		req.$action?.mutates !== false &&
		(req.originalUrl ?? req.url ?? "").startsWith("/api/v1")
	);
}

/** The values of the route's own parameters (`:id`, `:name`, `:key`), not the body's. */
function routeParams(req: AuditedRequest): Record<string, unknown> {
	const out: Record<string, unknown> = {};
	for (const [, name] of (req.$alias?.fullPath ?? "").matchAll(/:(\w+)/g))
		out[name] = req.$params?.[name];
	return out;
}

/** The record of a request as far as it is known before the action runs. */
export function requestFields(host: AuditHost, req: AuditedRequest, now = Date.now()): AuditFields {
	const ctx = req.$ctx;
	const user = ctx?.meta.user ?? null;
	const path = (req.originalUrl ?? req.url ?? "").split("?")[0];
	return {
		id: newRecordId(),
		time: new Date(now).toISOString(),
		kind: "request",
		actor: user?.sub ?? null,
		tenant: user?.tenant ?? null,
		roles: user?.roles ?? [],
		action: req.$action?.name ?? req.$alias?.action ?? null,
		method: req.method ?? null,
		route: req.$alias?.fullPath ?? null,
		path,
		target: targetOf(routeParams(req)),
		source: clientAddress(
			req.socket?.remoteAddress,
			req.headers["x-forwarded-for"],
			host.settings.trustProxy
		),
		userAgent: headerText(req.headers["user-agent"]),
		requestId: requestIdFrom(req.headers["x-request-id"], ctx?.id ?? newRecordId()),
		outcome: { status: null, succeeded: null },
		durationMs: null,
		body: isMutation(req) ? summarizeBody(req.body) : undefined
	};
}

/**
 * Called last in `authorize`: for a mutation, makes its write-ahead entry durable or refuses it
 * with AuditUnavailableError (503).
 */
export async function beginAudit(
	host: AuditHost,
	req: AuditedRequest,
	res: ServerResponse
): Promise<void> {
	if (!host.settings.audit || !isMutation(req)) return;
	const fields = requestFields(host, req);
	req.$audit = { fields, begun: false, started: Date.now() };
	res.setHeader("X-Request-Id", fields.requestId);
	try {
		// Moleculer's own call timeout bounds it, for a local service as for a remote one.
		await host.broker.call(
			"audit.begin",
			{ fields },
			{ timeout: BEGIN_TIMEOUT_MS, retries: 0 }
		);
	} catch (err) {
		const refused = new AuditUnavailableError((err as Error).message);
		// A cause that a retry cannot help (the store's open circuit, a full store) makes the
		// refusal final too: a retry would only delay the same answer.
		refused.retryable = (err as { retryable?: boolean }).retryable !== false;
		throw refused;
	}
	req.$audit.begun = true;
}

function durationOf(req: AuditedRequest, fallbackStart: number): number {
	if (req.$startTime) {
		const [s, ns] = process.hrtime(req.$startTime);
		return Math.round((s * 1e3 + ns / 1e6) * 1000) / 1000;
	}
	return Date.now() - fallbackStart;
}

/**
 * Appends the final record of an audited request: after its action (`data`, the answer) or its
 * error (`err`). Never throws: a failure is logged, and a begun request's write-ahead entry
 * stays for the audit service to complete.
 */
export async function endAudit(
	host: AuditHost,
	req: AuditedRequest,
	res: ServerResponse,
	result: { data?: unknown; err?: { code?: unknown; type?: unknown; message?: unknown } }
): Promise<void> {
	if (!host.settings.audit) return;
	const err = result.err;
	const status = err
		? typeof err.code === "number" && err.code >= 400 && err.code < 600
			? err.code
			: 500
		: (req.$ctx?.meta.$statusCode ?? 200);
	let audit = req.$audit;
	if (!audit) {
		// Shed for load before it began (services/gateway/overload.ts): nothing was done, and a
		// record would be a store write at the moment there is no time for one.
		if (err?.type === ERR_OVERLOADED) return;
		// Denied or refused before it began: recorded when it is a mutation or a denial.
		if (!isMutation(req) && !DENIED_STATUSES.includes(status)) return;
		audit = { fields: requestFields(host, req), begun: false, started: Date.now() };
		if (!res.headersSent) res.setHeader("X-Request-Id", audit.fields.requestId);
	} else if (err && (err as { type?: unknown }).type === "AUDIT_UNAVAILABLE") {
		return;
	}
	const fields: AuditFields = {
		...audit.fields,
		target: audit.fields.target ?? (err ? null : targetOf(undefined, result.data)),
		outcome: {
			status,
			succeeded: !err,
			...(err ? { errorType: typeof err.type === "string" ? err.type : "ERROR" } : {})
		},
		durationMs: durationOf(req, audit.started),
		// Which limit it was (a tenant's reads, an address's failed tokens), in words.
		...(err?.type === ERR_RATE_LIMITED && typeof err.message === "string"
			? { detail: err.message }
			: {})
	};
	try {
		await host.broker.call(
			"audit.commit",
			{ fields, begun: audit.begun },
			{ timeout: END_TIMEOUT_MS, retries: 0 }
		);
	} catch (e) {
		host.logger.warn(
			`Audit record ${fields.id} (${fields.method} ${fields.path}) not written: ${(e as Error).message}` +
				(audit.begun ? "; the audit service completes it later." : ".")
		);
	}
}

/**
 * A route's `onError`: records the request, then answers the error as moleculer-web would
 * without the hook (its own error handler, reached with the route hook set aside).
 */
export async function auditedError(
	host: AuditHost & { sendError(req: unknown, res: unknown, err: unknown): void },
	req: AuditedRequest & { $route?: unknown },
	res: ServerResponse,
	err: unknown
): Promise<void> {
	await endAudit(host, req, res, { err: (err ?? {}) as { code?: unknown } });
	const route = req.$route;
	req.$route = undefined;
	try {
		host.sendError(req, res, err);
	} finally {
		req.$route = route;
	}
}
