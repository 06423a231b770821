/**
 * A store that keeps nothing it could not read back: a write to a collection with a schema
 * (schemas.ts) is checked first and refused with 422 when the document does not fit, and `get`
 * and `list` skip (and report) a stored document that does not fit, as the backends skip one
 * that does not parse. Every other method, including any added to the Store interface later,
 * passes through unchanged.
 */
import { Errors } from "moleculer";
import type { DocWrite, Store, StoredDoc, Versioned } from "./store";
import type { DocCheck } from "./schemas";
import type { UnreadableHandler } from "./unreadable";
import { overlay } from "./overlay";

/** 422: a document that does not fit its collection's schema; nothing was written. */
export class InvalidDocumentError extends Errors.MoleculerClientError {
	constructor(collection: string, id: string, problems: string[]) {
		super(
			`The ${collection} document '${id}' cannot be stored: ${problems.join("; ")}`,
			422,
			"INVALID_DOCUMENT",
			{ collection, id, problems }
		);
	}
}

export function validatingStore(
	store: Store,
	checks: ReadonlyMap<string, DocCheck>,
	onUnreadable: UnreadableHandler
): Store {
	const assertFits = (collection: string, id: string, value: unknown) => {
		const problems = checks.get(collection)?.(value) ?? [];
		if (problems.length) throw new InvalidDocumentError(collection, id, problems);
	};
	const fits = (collection: string, id: string, value: unknown) => {
		const problems = checks.get(collection)?.(value) ?? [];
		if (problems.length) onUnreadable(collection, id, problems.join("; "));
		return problems.length === 0;
	};
	const overrides: Partial<Store> = {
		async get<T>(collection: string, id: string): Promise<Versioned<T> | null> {
			const doc = await store.get<T>(collection, id);
			return doc && fits(collection, id, doc.value) ? doc : null;
		},
		async list<T>(collection: string): Promise<StoredDoc<T>[]> {
			const docs = await store.list<T>(collection);
			return checks.has(collection)
				? docs.filter(d => fits(collection, d.id, d.value))
				: docs;
		},
		async put<T>(collection: string, id: string, value: T) {
			assertFits(collection, id, value);
			return store.put(collection, id, value);
		},
		async cas<T>(collection: string, id: string, value: T, expected: number) {
			assertFits(collection, id, value);
			return store.cas(collection, id, value, expected);
		},
		async transact(versionChecks, writes: DocWrite[]) {
			for (const w of writes)
				if (w.value !== null && checks.has(w.collection))
					assertFits(w.collection, w.id, w.value);
			return store.transact(versionChecks, writes);
		}
	};
	return overlay(store, overrides);
}
