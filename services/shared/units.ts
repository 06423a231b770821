/**
 * Parsing of the quantities the API accepts: sizes in bytes or "16Gi"/"512Mi"/"10G", CPU in
 * cores (fractions allowed) or millicores ("500m"). Pure, shared by the API, the agent's
 * capacity override and the scheduler.
 */
import { InvalidInputError } from "./errors";

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

/** Bytes from a number of bytes or a string such as "16Gi", "512Mi", "1.5G". */
export function parseSize(value: number | string, field = "size"): number {
	if (typeof value === "number") {
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
	return Math.floor(parseFloat(match[1]) * factor);
}

/** Cores from a number of cores or millicores such as "500m". */
export function parseCpu(value: number | string, field = "cpu"): number {
	if (typeof value === "number") {
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
	return match[2] === "m" ? n / 1000 : n;
}
