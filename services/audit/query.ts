/**
 * `GET /api/v1/audit`: which records a query matches and how a page of them is read. The log is
 * read in windows of seq (the store reads a log forward from a seq), newest first by default,
 * oldest first with `order=asc` (what a SIEM that ships new records wants). The cursor is the
 * seq the next page continues from; a page also ends after SCAN_LIMIT records looked at, so a
 * filter that matches little cannot make one request read the whole log: such a page may hold
 * fewer than `limit` items and still carry a `nextCursor`.
 */
import type { LogEntry } from "../shared/store";
import { InvalidInputError } from "../shared/errors";
import { outcomeClass, type AuditRecord, type OutcomeClass } from "./record";

/** Records looked at per page at most. */
export const SCAN_LIMIT = 10_000;
/** Records read from the store per window. */
const WINDOW = 500;
/**
 * A record's time is when its request arrived, its seq when it ended: a slow request's record
 * follows faster ones that arrived after it. A scan stops at `since`/`until` only this far past
 * them, so no record within the bound is missed.
 */
export const TIME_SLACK_MS = 5 * 60_000;

export interface AuditFilter {
	/** ms since the epoch, inclusive. */
	since?: number;
	/** ms since the epoch, exclusive. */
	until?: number;
	actor?: string;
	/** An action name, or a prefix ending in "." or "*" (`scheduler.`, `registry.*`). */
	action?: string;
	outcome?: OutcomeClass;
	target?: string;
	/** Only this tenant's records (a non-admin's own tenant, always). */
	tenant?: string;
}

export interface AuditPage {
	items: AuditRecord[];
	/** Pass as `cursor` for the next page; null when there is none. */
	nextCursor: string | null;
}

/** ms since the epoch, or an ISO 8601 date; a 422 for anything else. */
export function parseTime(value: string | number | undefined, field: string): number | undefined {
	if (value === undefined || value === "") return undefined;
	const n = typeof value === "number" ? value : /^\d+$/.test(value) ? Number(value) : NaN;
	const ms = Number.isFinite(n) ? n : Date.parse(String(value));
	if (!Number.isFinite(ms))
		throw new InvalidInputError(
			`${field} must be milliseconds since the epoch or an ISO date (2025-01-31T12:00:00Z).`,
			{ field, value }
		);
	return ms;
}

/** A cursor is the seq a page continues from; a 422 for anything else. */
export function parseCursor(value: string | undefined): number | undefined {
	if (value === undefined || value === "") return undefined;
	if (!/^\d{1,15}$/.test(value))
		throw new InvalidInputError("cursor must be the nextCursor of a previous page.", {
			field: "cursor",
			value
		});
	return Number(value);
}

export function matches(record: AuditRecord, filter: AuditFilter): boolean {
	const time = Date.parse(record.time);
	if (filter.since !== undefined && !(time >= filter.since)) return false;
	if (filter.until !== undefined && !(time < filter.until)) return false;
	if (filter.tenant !== undefined && record.tenant !== filter.tenant) return false;
	if (filter.actor !== undefined && record.actor !== filter.actor) return false;
	if (filter.target !== undefined && record.target !== filter.target) return false;
	if (filter.outcome !== undefined && outcomeClass(record.outcome) !== filter.outcome)
		return false;
	if (filter.action !== undefined) {
		const a = filter.action;
		const prefix = a.endsWith("*") ? a.slice(0, -1) : a.endsWith(".") ? a : null;
		if (prefix === null ? record.action !== a : !record.action?.startsWith(prefix))
			return false;
	}
	return true;
}

/** Reads `limit` entries with seq above `afterSeq`, oldest first (Store.readLog). */
export type LogReader = (afterSeq: number, limit: number) => Promise<LogEntry<AuditRecord>[]>;

/**
 * One page of matching records. `newest`: the log's newest seq (where a descending read starts
 * without a cursor); `oldest`: its oldest kept seq (where a descending read stops).
 */
export async function readPage(
	read: LogReader,
	filter: AuditFilter,
	opts: {
		limit: number;
		cursor?: number;
		order: "asc" | "desc";
		newest: number;
		oldest: number;
		scanLimit?: number;
	}
): Promise<AuditPage> {
	const scanLimit = opts.scanLimit ?? SCAN_LIMIT;
	const items: AuditRecord[] = [];
	let scanned = 0;
	if (opts.order === "asc") {
		let after = opts.cursor ?? opts.oldest - 1;
		while (items.length < opts.limit && scanned < scanLimit && after < opts.newest) {
			const entries = await read(after, Math.min(WINDOW, scanLimit - scanned));
			if (entries.length === 0) break;
			for (const e of entries) {
				scanned++;
				after = e.seq;
				if (
					filter.until !== undefined &&
					Date.parse(e.entry.time) >= filter.until + TIME_SLACK_MS
				)
					return { items, nextCursor: null };
				if (matches(e.entry, filter)) items.push(e.entry);
				if (items.length === opts.limit) break;
			}
		}
		return { items, nextCursor: after < opts.newest ? String(after) : null };
	}
	// Descending: windows (lo, below) read forward, then walked backwards.
	let below = Math.min(opts.cursor ?? opts.newest + 1, opts.newest + 1);
	while (items.length < opts.limit && scanned < scanLimit && below > opts.oldest) {
		const lo = Math.max(below - 1 - Math.min(WINDOW, scanLimit - scanned), opts.oldest - 1);
		const entries = await read(lo, below - 1 - lo);
		if (entries.length === 0) break;
		for (let i = entries.length - 1; i >= 0; i--) {
			const e = entries[i];
			scanned++;
			below = e.seq;
			if (
				filter.since !== undefined &&
				Date.parse(e.entry.time) < filter.since - TIME_SLACK_MS
			)
				return { items, nextCursor: null };
			if (matches(e.entry, filter)) items.push(e.entry);
			if (items.length === opts.limit) break;
		}
	}
	return { items, nextCursor: below > opts.oldest ? String(below) : null };
}

/** One JSON line per record, for `?format=jsonl` (application/x-ndjson). */
export function toJsonLines(records: AuditRecord[]): string {
	return records.map(r => JSON.stringify(r)).join("\n") + (records.length ? "\n" : "");
}
