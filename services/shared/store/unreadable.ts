/**
 * Documents a backend cannot decode. A list skips them instead of failing whole, so that one bad
 * record (written by hand, by an older version, or cut short) can never take a route down; each
 * is reported with its collection and id, so that an operator can find and remove it.
 */
import type { StoredDoc } from "./store";

/** Told of each document skipped: where it is and why it was not read. */
export type UnreadableHandler = (collection: string, id: string, reason: string) => void;

/** The default report when a backend is opened without a logger: a process warning. */
export const warnUnreadable: UnreadableHandler = (collection, id, reason) =>
	process.emitWarning(`Skipped stored document ${collection}/${id}: ${reason}`, "IsaStore");

/** The value of a stored JSON text, or undefined (reported) when it does not parse. */
export function decodeDoc<T>(
	collection: string,
	id: string,
	json: string,
	onUnreadable: UnreadableHandler
): T | undefined {
	try {
		return JSON.parse(json) as T;
	} catch (err) {
		onUnreadable(collection, id, `not JSON: ${(err as Error).message}`);
		return undefined;
	}
}

/** The documents of (id, json, version) rows whose JSON parses; the others reported. */
export function decodeDocs<T>(
	collection: string,
	rows: Iterable<{ id: string; value: string; version: number }>,
	onUnreadable: UnreadableHandler
): StoredDoc<T>[] {
	const docs: StoredDoc<T>[] = [];
	for (const row of rows) {
		const value = decodeDoc<T>(collection, row.id, row.value, onUnreadable);
		if (value !== undefined) docs.push({ id: row.id, value, version: row.version });
	}
	return docs;
}
