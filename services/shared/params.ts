/** Parameter schemas and helpers that every list action shares (API.md: `limit` and `offset`). */

/** `limit` and `offset` from a query string: numbers, converted, bounded. */
export function pageParams(maxLimit = 1000) {
	return {
		limit: {
			type: "number",
			integer: true,
			min: 1,
			max: maxLimit,
			optional: true,
			convert: true
		},
		offset: { type: "number", integer: true, min: 0, optional: true, convert: true }
	} as const;
}

/** One page of `items` in the API's list shape. */
export function page<T>(items: T[], p: { limit?: number; offset?: number }, defaultLimit = 100) {
	const { limit = defaultLimit, offset = 0 } = p;
	return { items: items.slice(offset, offset + limit), total: items.length };
}

/**
 * A quantity as the API takes it: a number (bytes, cores) or a string such as "16Gi" or "500m",
 * parsed afterwards by services/shared/units.ts.
 */
export function quantity(optional = false) {
	return [
		{ type: "number", min: 0, optional },
		{ type: "string", max: 32, optional }
	];
}
