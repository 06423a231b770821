/**
 * Parsing of the quantities the API accepts: sizes in bytes or "16Gi"/"512Mi"/"10G", CPU in
 * cores (fractions allowed) or millicores ("500m"). Pure, shared by the API, the agent's
 * capacity override and the scheduler.
 */
import { InvalidInputError } from "./errors";
import { formatSize } from "./format";
import type { Bounds } from "./limits";

const SIZE_UNITS: Record<string, number> = {
	"": 1,
	b: 1,
	k: 1e3,
	kb: 1e3,
	m: 1e6,
	mb: 1e6,
	g: 1e9,
	gb: 1e9,
	t: 1e12,
	tb: 1e12,
	ki: 1024,
	kib: 1024,
	mi: 1024 ** 2,
	mib: 1024 ** 2,
	gi: 1024 ** 3,
	gib: 1024 ** 3,
	ti: 1024 ** 4,
	tib: 1024 ** 4
};

/** Bytes from a number of bytes or a string such as "16Gi", "512Mi", "1.5G", within `bounds`. */
export function parseSize(value: number | string, field = "size", bounds?: Bounds): number {
	if (typeof value === "number") {
		if (bounds) return inBounds(Math.floor(value), value, field, bounds, formatSize);
		if (!Number.isFinite(value) || value < 0)
			throw new InvalidInputError(`${field} must be a non-negative number of bytes.`, {
				field,
				value
			});
		return Math.floor(value);
	}
	const match = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(String(value));
	const factor = match ? SIZE_UNITS[match[2].toLowerCase()] : undefined;
	if (!match || factor === undefined)
		throw new InvalidInputError(
			`${field} '${value}' is not a size: use bytes or a string like "512Mi" or "16Gi".`,
			{ field, value }
		);
	const bytes = Math.floor(parseFloat(match[1]) * factor);
	return bounds ? inBounds(bytes, value, field, bounds, formatSize) : bytes;
}

/** Cores from a number of cores or millicores such as "500m", within `bounds`. */
export function parseCpu(value: number | string, field = "cpu", bounds?: Bounds): number {
	if (typeof value === "number") {
		if (bounds) return inBounds(value, value, field, bounds, cores);
		if (!Number.isFinite(value) || value < 0)
			throw new InvalidInputError(`${field} must be a non-negative number of cores.`, {
				field,
				value
			});
		return value;
	}
	const match = /^\s*(\d+(?:\.\d+)?)\s*(m?)\s*$/.exec(String(value));
	if (!match)
		throw new InvalidInputError(
			`${field} '${value}' is not a CPU amount: use cores (2, 0.5) or millicores ("500m").`,
			{ field, value }
		);
	const n = parseFloat(match[1]);
	const amount = match[2] === "m" ? n / 1000 : n;
	return bounds ? inBounds(amount, value, field, bounds, cores) : amount;
}

const cores = (n: number) => `${n} core${n === 1 ? "" : "s"}`;

/** The allowed range in words: "above 0 and at most 64Ti", "0 to 64". */
export function describeBounds(bounds: Bounds, show: (n: number) => string = String): string {
	if (bounds.positive) return `above 0 and at most ${show(bounds.max)}`;
	return `from ${show(bounds.min ?? 0)} to ${show(bounds.max)}`;
}

/**
 * `n` (the parsed form of `value`) when it is finite and within `bounds`; else a 422 that names
 * the field and the allowed range, with both in `data` for clients.
 */
export function inBounds(
	n: number,
	value: unknown,
	field: string,
	bounds: Bounds,
	show: (n: number) => string = String
): number {
	const min = bounds.min ?? 0;
	const ok = Number.isFinite(n) && n <= bounds.max && (bounds.positive ? n > 0 : n >= min);
	if (!ok)
		throw new InvalidInputError(
			`${field} must be ${describeBounds(bounds, show)}; got ${String(value)}.`,
			{ field, value, min, max: bounds.max, ...(bounds.positive ? { positive: true } : {}) }
		);
	return n;
}
