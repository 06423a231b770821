/**
 * What an audit record holds, and how one is made from a request: who (the token's `sub`,
 * tenant and roles), what (the Moleculer action, the method and route), on what (the target id),
 * from where (the socket's address, the user agent), the request id, the outcome and how long it
 * took. The request body is kept as a summary: secrets masked with the registry's rules
 * (services/shared/secrets.ts), nesting and size bounded, a text body (a YAML apply) by its size
 * only, since free text can carry secrets no key names.
 */
import crypto from "crypto";
import { MASK, SECRET_KEY, redactUrl } from "../shared/secrets";
import type { Chained } from "./chain";

/** Depth of a body summary; deeper values read "…". */
export const SUMMARY_DEPTH = 8;
/** Characters of a body summary's JSON at most; a larger body is described by its keys. */
export const SUMMARY_BYTES = 4096;
/** Characters kept of a header value (user agent, request id). */
const HEADER_CHARS = 256;

export interface Outcome {
	/** The HTTP status, null when unknown (a record completed after a crash). */
	status: number | null;
	/** The error's type (`FORBIDDEN`, `VALIDATION_ERROR`…) when it failed. */
	errorType?: string;
	/** Whether the change happened: null when nobody knows (the gateway died before the end). */
	succeeded: boolean | null;
}

/** A record before it is chained: everything but seq, prev and hash. */
export interface AuditFields {
	id: string;
	/** ISO time the request arrived (or the system change was made). */
	time: string;
	/** "request" for the API, "system" for what the control plane does by itself. */
	kind: "request" | "system";
	/** The token's `sub`; `system:scheduler`, `repl:<user>`, `system:apply` for the cluster. */
	actor: string | null;
	tenant: string | null;
	roles: string[];
	/** The Moleculer action, e.g. `scheduler.create`. */
	action: string | null;
	method: string | null;
	/** The route pattern, e.g. `/api/v1/workloads/:id/scale`. */
	route: string | null;
	/** The path as requested (without its query). */
	path: string | null;
	/** The id of the object acted on: the route's :id/:name/:key, or the created object's id. */
	target: string | null;
	/** The socket's remote address (X-Forwarded-For only behind ISA_TRUST_PROXY). */
	source: string | null;
	userAgent: string | null;
	requestId: string;
	outcome: Outcome;
	durationMs: number | null;
	/** The request body, secrets masked, bounded. */
	body?: unknown;
	/** What a system change did, in words ("rescheduled 2 replicas from node-3"). */
	detail?: string;
}

export type AuditRecord = AuditFields & Chained;

/** Outcome classes the API filters by. */
export type OutcomeClass = "succeeded" | "failed" | "denied" | "unknown";

export const DENIED_STATUSES: readonly number[] = [401, 403, 429];

export function outcomeClass(outcome: Outcome): OutcomeClass {
	if (outcome.status !== null && DENIED_STATUSES.includes(outcome.status)) return "denied";
	if (outcome.succeeded === null) return "unknown";
	return outcome.succeeded ? "succeeded" : "failed";
}

export function newRecordId(): string {
	return crypto.randomUUID();
}

/** A header's value as one bounded string, or null. */
export function headerText(value: string | string[] | undefined): string | null {
	const text = Array.isArray(value) ? value.join(", ") : value;
	if (typeof text !== "string" || text === "") return null;
	return text.length > HEADER_CHARS ? `${text.slice(0, HEADER_CHARS)}…` : text;
}

/** A client's X-Request-Id is kept when it is printable and short; else one is made. */
export function requestIdFrom(header: string | string[] | undefined, fallback: string): string {
	return typeof header === "string" && /^[\x21-\x7e]{1,128}$/.test(header) ? header : fallback;
}

function summarize(value: unknown, depth: number): unknown {
	if (typeof value === "string") return redactUrl(value);
	if (value === null || typeof value !== "object") return value;
	if (depth >= SUMMARY_DEPTH) return "…";
	if (Array.isArray(value)) return value.map(item => summarize(item, depth + 1));
	const out: Record<string, unknown> = {};
	for (const [key, item] of Object.entries(value)) {
		out[key] = SECRET_KEY.test(key) ? MASK : summarize(item, depth + 1);
	}
	return out;
}

/**
 * What a record keeps of a body: undefined for none; secrets masked; a text body by its size;
 * past SUMMARY_BYTES, the top-level keys and the size only.
 */
export function summarizeBody(body: unknown): unknown {
	if (body === undefined || body === null) return undefined;
	if (typeof body === "string")
		return body === "" ? undefined : { text: true, bytes: Buffer.byteLength(body) };
	if (typeof body !== "object") return body;
	if (!Array.isArray(body) && Object.keys(body).length === 0) return undefined;
	const summary = summarize(body, 0);
	const json = JSON.stringify(summary);
	if (json.length <= SUMMARY_BYTES) return summary;
	return {
		truncated: true,
		bytes: json.length,
		keys: Array.isArray(body) ? undefined : Object.keys(body).slice(0, 50)
	};
}

/** The target of a request: the route's id parameter, else the created object's id or name. */
export function targetOf(
	routeParams: Record<string, unknown> | undefined,
	response?: unknown
): string | null {
	for (const name of ["id", "name", "key"]) {
		const value = routeParams?.[name];
		if (typeof value === "string" && value !== "") return value;
	}
	const r = response as { id?: unknown; name?: unknown; key?: unknown } | null | undefined;
	for (const value of [r?.id, r?.name, r?.key])
		if (typeof value === "string" && value !== "") return value;
	return null;
}

/** A record of what the control plane did by itself (a reschedule, a drain from the REPL). */
export function systemFields(input: {
	actor: string;
	action: string;
	target?: string | null;
	tenant?: string | null;
	detail?: string;
	succeeded?: boolean;
	errorType?: string;
	now?: number;
}): AuditFields {
	return {
		id: newRecordId(),
		time: new Date(input.now ?? Date.now()).toISOString(),
		kind: "system",
		actor: input.actor,
		tenant: input.tenant ?? null,
		roles: [],
		action: input.action,
		method: null,
		route: null,
		path: null,
		target: input.target ?? null,
		source: null,
		userAgent: null,
		requestId: newRecordId(),
		outcome: {
			status: null,
			succeeded: input.succeeded ?? true,
			...(input.errorType ? { errorType: input.errorType } : {})
		},
		durationMs: null,
		...(input.detail ? { detail: input.detail } : {})
	};
}
