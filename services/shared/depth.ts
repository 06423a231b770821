/** How deep a JSON value nests, checked without recursion (a hostile value may nest 100,000 deep). */

/** Whether a value nests objects or arrays deeper than `limit`. Iterative: no recursion. */
export function deeperThan(value: unknown, limit: number): boolean {
	const stack: Array<{ v: unknown; depth: number }> = [{ v: value, depth: 0 }];
	while (stack.length) {
		const { v, depth } = stack.pop()!;
		if (v === null || typeof v !== "object") continue;
		if (depth >= limit) return true;
		for (const child of Object.values(v)) stack.push({ v: child, depth: depth + 1 });
	}
	return false;
}
