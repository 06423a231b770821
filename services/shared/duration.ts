/**
 * The one grammar for durations, wherever a client or an operator gives one (health check
 * intervals and timeouts, alert `for`, history `since` and `step`, token lifetimes): a number of
 * seconds (fractions allowed, also as a string of digits), or numbers with units as in
 * Prometheus and Go: "500ms", "30s", "5m", "1h30m", "7d" (a space before a unit is allowed, as
 * the health checks always took "10 s"). Each use sets its own bounds; the grammar is the same
 * everywhere.
 */
import { InvalidInputError } from "./errors";

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const NUMBER = /^\s*\d+(\.\d+)?\s*$/;
const WHOLE = /^(\d+(\.\d+)?\s*(ms|s|m|h|d)\s*)+$/;
const PART = /(\d+(\.\d+)?)\s*(ms|s|m|h|d)/g;

export interface DurationBounds {
	/** The field's name, as the client wrote it, for the error. */
	field: string;
	/** Shortest accepted, ms (default 0). */
	min?: number;
	/** Longest accepted, ms (default: no limit). */
	max?: number;
}

/** Milliseconds of a duration in the grammar above; 422 for anything else or out of bounds. */
export function parseDuration(value: number | string, bounds: DurationBounds): number {
	const { field, min = 0, max = Infinity } = bounds;
	const notDuration = () =>
		new InvalidInputError(
			`${field} '${value}' is not a duration: use seconds or a string like "30s", "5m", "1h30m" or "7d".`,
			{ field, value }
		);
	let ms: number;
	if (typeof value === "number" || NUMBER.test(value)) {
		ms = Number(value) * 1000;
	} else {
		const text = value.trim();
		if (!WHOLE.test(text)) throw notDuration();
		ms = 0;
		for (const [, n, , unit] of text.matchAll(PART)) ms += Number(n) * UNITS[unit];
	}
	if (!Number.isFinite(ms) || ms < 0) throw notDuration();
	if (ms < min)
		throw new InvalidInputError(
			min <= 1
				? `${field} must be a positive duration.`
				: `${field} must be at least ${formatDuration(min)}.`,
			{ field, value }
		);
	if (ms > max)
		throw new InvalidInputError(`${field} '${value}' is longer than ${formatDuration(max)}.`, {
			field,
			value
		});
	return Math.round(ms);
}

/** A bound in words for messages: "500ms", "2s", "5m", "6h", "30 days". */
export function formatDuration(ms: number): string {
	const day = UNITS.d;
	if (ms >= day && ms % day === 0) return ms === day ? "1 day" : `${ms / day} days`;
	for (const unit of ["h", "m", "s"])
		if (ms >= UNITS[unit] && ms % UNITS[unit] === 0) return `${ms / UNITS[unit]}${unit}`;
	return `${ms}ms`;
}
