/**
 * The one narrow interface all durable state goes through. Two backends pass the same contract
 * suite (test/integration/store.contract.spec.ts): Redis for clusters and an embedded SQLite
 * database for the single-node default.
 *
 * The model: collections of JSON documents, each with a version that starts at 1 and grows by
 * one on every write. Versions give compare-and-set; `transact` gives atomic multi-document
 * updates (what the scheduler needs to reserve resources on a node without over-committing).
 * Logs are append-only sequences (the audit log).
 */

export interface Versioned<T> {
	value: T;
	/** 1 after the first write, +1 on each write after it. */
	version: number;
}

export interface StoredDoc<T> extends Versioned<T> {
	id: string;
}

/** A condition of a transaction: the document's version must be `version` (0: must not exist). */
export interface VersionCheck {
	collection: string;
	id: string;
	version: number;
}

/** A write of a transaction: `value: null` deletes the document. */
export interface DocWrite {
	collection: string;
	id: string;
	value: unknown;
}

export interface LogEntry<T> {
	/** Position in the log: 1, 2, 3… per log. */
	seq: number;
	/** Milliseconds since the epoch when the entry was appended. */
	at: number;
	entry: T;
}

export interface LogQuery {
	/** Only entries with a seq greater than this. */
	afterSeq?: number;
	/** Only entries appended at or after this time (ms since the epoch). */
	since?: number;
	/** At most this many entries, the newest ones when `newestFirst`; default 100. */
	limit?: number;
	newestFirst?: boolean;
}

export interface Store {
	/** "redis" or "sqlite": for logs, /ready and tests. */
	readonly kind: string;

	get<T>(collection: string, id: string): Promise<Versioned<T> | null>;
	/** The current version of each document (0: missing): cheap, no value is read or parsed. */
	versions(collection: string, ids: string[]): Promise<number[]>;
	/**
	 * The version of every document of a collection, by id in id order: cheap, no value is read
	 * or parsed, so that a reader that keeps copies reads again only what moved.
	 */
	listVersions(collection: string): Promise<Map<string, number>>;
	/** Every document of a collection, in id order. */
	list<T>(collection: string): Promise<StoredDoc<T>[]>;
	/** Writes unconditionally; resolves to the new version. */
	put<T>(collection: string, id: string, value: T): Promise<number>;
	/**
	 * Writes only if the current version is `expected` (0: only if it does not exist yet).
	 * Resolves to the new version, or null when the version did not match (nothing written).
	 */
	cas<T>(collection: string, id: string, value: T, expected: number): Promise<number | null>;
	/** Deletes; with `expected`, only at that version. Resolves to whether it deleted. */
	delete(collection: string, id: string, expected?: number): Promise<boolean>;
	/**
	 * All checks hold and all writes happen, or nothing happens: resolves to false when a check
	 * failed. Each written document's version grows by one.
	 */
	transact(checks: VersionCheck[], writes: DocWrite[]): Promise<boolean>;

	/** Appends to an append-only log; resolves to the entry's seq. */
	append<T>(log: string, entry: T): Promise<number>;
	readLog<T>(log: string, query?: LogQuery): Promise<LogEntry<T>[]>;
	/**
	 * Appends `entries` as `seq`, `seq + 1`, … only if the log's newest entry is `seq - 1`
	 * (seq 1: the log is empty), all or none: a compare-and-set on the log's end, so that two
	 * writers of a hash chain cannot both link to the same entry, and one commit for a group.
	 * Resolves to whether it appended.
	 */
	appendAt<T>(log: string, seq: number, entries: T[]): Promise<boolean>;
	/**
	 * Drops the entries with a seq below `beforeSeq` (retention), always keeping the newest
	 * entry so that numbering goes on from it. Resolves to how many it dropped.
	 */
	trimLog(log: string, beforeSeq: number): Promise<number>;

	/** Rejects when the backend cannot be reached. */
	ping(): Promise<void>;
	close(): Promise<void>;
}
