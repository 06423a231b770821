/**
 * The single-node backend: an embedded SQLite file, so a one-machine install needs no server.
 *
 * WAL lets readers run beside the one writer, and `busy_timeout` makes a second process (the CLI,
 * another service) wait for the write lock instead of failing at once. `synchronous = NORMAL`
 * skips the fsync on every commit (WAL still keeps the file consistent; a power cut may lose the
 * last few commits, a crashed process loses nothing): without it the scheduler's thousands of
 * small reservations per second would each wait for the disk.
 *
 * Every statement is prepared once; the single-document writes are single statements, so they
 * are atomic without an explicit transaction, and only `transact` needs BEGIN IMMEDIATE (taking
 * the write lock up front, so its version checks cannot go stale before it writes).
 */
import fs from "fs";
import path from "path";
import Database from "better-sqlite3";
import { StoreUnavailableError } from "../errors";
import { ensurePrivateFile, PRIVATE_DIR_MODE, SECRET_FILE_MODE, Warn } from "../private-files";
import type {
	DocWrite,
	LogEntry,
	LogQuery,
	Store,
	StoredDoc,
	VersionCheck,
	Versioned
} from "./store";
import { decodeDoc, decodeDocs, type UnreadableHandler, warnUnreadable } from "./unreadable";

/** How long a writer waits for another process's write lock before giving up. */
const BUSY_TIMEOUT_MS = 5000;

/**
 * WAL pages written before SQLite copies them back into the database file: SQLite's own
 * default. A larger WAL (10,000 pages, about 40 MB, tried for the scheduler benchmark, where it
 * saved a tenth of the CPU) makes the writes themselves stall: on a busy disk each commit then
 * blocked the event loop for 30-60 ms a few times a second, and every request waited with it
 * (the noisy-neighbour benchmark's quiet tenant saw its P99 go from 8 to 60 ms). Every SQLite
 * call runs on the event loop, so its worst case is everyone's.
 */
const CHECKPOINT_PAGES = 1000;

/** Versions listed between two turns of the event loop (listVersions). */
const VERSION_PAGE = 2000;

/** SQLite failures that say the database cannot be used right now, not that the call was wrong. */
const UNAVAILABLE_CODES = /^SQLITE_(BUSY|LOCKED|IOERR|CANTOPEN|FULL)/;

const SCHEMA = `
	CREATE TABLE IF NOT EXISTS docs (
		collection TEXT NOT NULL,
		id TEXT NOT NULL,
		version INTEGER NOT NULL,
		value TEXT NOT NULL,
		PRIMARY KEY (collection, id)
	) WITHOUT ROWID;
	CREATE TABLE IF NOT EXISTS logs (
		log TEXT NOT NULL,
		seq INTEGER NOT NULL,
		at INTEGER NOT NULL,
		entry TEXT NOT NULL,
		PRIMARY KEY (log, seq)
	) WITHOUT ROWID;
	CREATE INDEX IF NOT EXISTS logs_at ON logs (log, at);
`;

interface DocRow {
	id: string;
	value: string;
	version: number;
}

interface LogRow {
	seq: number;
	at: number;
	entry: string;
}

/** Thrown inside a transaction to roll it back when a write finds another version. */
const CONFLICT = Symbol("version conflict");

function docKey(doc: { collection: string; id: string }): string {
	return `${doc.collection}\u0000${doc.id}`;
}

function encode(value: unknown): string {
	const json = JSON.stringify(value);
	if (json === undefined) throw new TypeError("The store keeps JSON values; got undefined.");
	return json;
}

/**
 * SQLite answers SQLITE_BUSY without calling the busy handler in a few cases (another process
 * switching the file to WAL or recovering its shared memory at the same moment): such a start
 * is retried for up to BUSY_TIMEOUT_MS instead of failing.
 */
function retryWhileBusy(fn: () => void): void {
	const deadline = Date.now() + BUSY_TIMEOUT_MS;
	for (;;) {
		try {
			return fn();
		} catch (err) {
			const code = (err as { code?: string }).code ?? "";
			if (!code.startsWith("SQLITE_BUSY") || Date.now() > deadline) throw err;
			Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
		}
	}
}

export class SqliteStore implements Store {
	readonly kind = "sqlite";
	/** The database file, or ":memory:". */
	readonly file: string;
	private readonly db: Database.Database;
	private readonly stmt;
	private readonly transaction;
	private readonly onUnreadable: UnreadableHandler;
	private readonly appendGroup;

	/**
	 * `url`: a path (its directory is created 0700 when missing), `sqlite://<path>` or
	 * ":memory:". The file is owner-only (0600): it holds every tenant's documents, and SQLite
	 * gives its -wal and -shm files the same mode. A looser existing file is tightened, and
	 * `opts.warn` says so. `onUnreadable`: told of each document `get` and `list` skip because
	 * it does not parse.
	 */
	constructor(url: string, opts: { warn?: Warn; onUnreadable?: UnreadableHandler } = {}) {
		const file = url.replace(/^sqlite:\/\//i, "");
		this.file = file;
		this.onUnreadable = opts.onUnreadable ?? warnUnreadable;
		try {
			if (file !== ":memory:" && file !== "") {
				fs.mkdirSync(path.dirname(path.resolve(file)), {
					recursive: true,
					mode: PRIVATE_DIR_MODE
				});
				// Made 0600 before SQLite opens it, which would make it with the umask's mode.
				fs.closeSync(fs.openSync(file, "a", SECRET_FILE_MODE));
				for (const suffix of ["", "-wal", "-shm"])
					ensurePrivateFile(file + suffix, opts.warn);
			}
			this.db = new Database(file);
			// busy_timeout first: switching to WAL itself needs the lock another process may hold.
			this.db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
			const db = this.db;
			retryWhileBusy(() => {
				db.pragma("journal_mode = WAL");
				db.pragma("synchronous = NORMAL");
				db.pragma(`wal_autocheckpoint = ${CHECKPOINT_PAGES}`);
				db.exec(SCHEMA);
			});
		} catch (err) {
			throw this.unavailable(err);
		}
		const db = this.db;
		this.stmt = {
			get: db.prepare<[string, string], DocRow>(
				"SELECT id, value, version FROM docs WHERE collection = ? AND id = ?"
			),
			version: db
				.prepare<[string, string], number>(
					"SELECT version FROM docs WHERE collection = ? AND id = ?"
				)
				.pluck(),
			listVersions: db
				.prepare<[string, string, number], [string, number]>(
					"SELECT id, version FROM docs WHERE collection = ? AND id > ? ORDER BY id LIMIT ?"
				)
				.raw(),
			list: db.prepare<[string], DocRow>(
				"SELECT id, value, version FROM docs WHERE collection = ? ORDER BY id"
			),
			put: db
				.prepare<[string, string, string], number>(
					`INSERT INTO docs (collection, id, version, value) VALUES (?, ?, 1, ?)
					ON CONFLICT (collection, id) DO UPDATE SET version = version + 1, value = excluded.value
					RETURNING version`
				)
				.pluck(),
			// `put` without RETURNING, which makes SQLite buffer the rows it returns.
			write: db.prepare<[string, string, string]>(
				`INSERT INTO docs (collection, id, version, value) VALUES (?, ?, 1, ?)
				ON CONFLICT (collection, id) DO UPDATE SET version = version + 1, value = excluded.value`
			),
			create: db.prepare<[string, string, string]>(
				`INSERT INTO docs (collection, id, version, value) VALUES (?, ?, 1, ?)
				ON CONFLICT (collection, id) DO NOTHING`
			),
			update: db.prepare<[string, string, string, number]>(
				`UPDATE docs SET version = version + 1, value = ?
				WHERE collection = ? AND id = ? AND version = ?`
			),
			delete: db.prepare<[string, string]>(
				"DELETE FROM docs WHERE collection = ? AND id = ?"
			),
			deleteAt: db.prepare<[string, string, number]>(
				"DELETE FROM docs WHERE collection = ? AND id = ? AND version = ?"
			),
			// One statement, so the MAX and the INSERT run under the same write lock.
			append: db
				.prepare<{ log: string; at: number; entry: string }, number>(
					`INSERT INTO logs (log, seq, at, entry)
					SELECT @log, COALESCE(MAX(seq), 0) + 1, @at, @entry FROM logs WHERE log = @log
					RETURNING seq`
				)
				.pluck(),
			lastSeq: db
				.prepare<[string], number>("SELECT COALESCE(MAX(seq), 0) FROM logs WHERE log = ?")
				.pluck(),
			insertLog: db.prepare<[string, number, number, string]>(
				"INSERT INTO logs (log, seq, at, entry) VALUES (?, ?, ?, ?)"
			),
			trimLog: db.prepare<{ log: string; before: number }>(
				`DELETE FROM logs WHERE log = @log
				AND seq < MIN(@before, (SELECT MAX(seq) FROM logs WHERE log = @log))`
			),
			readOldest: db.prepare<[string, number, number, number], LogRow>(
				`SELECT seq, at, entry FROM logs WHERE log = ? AND seq > ? AND at >= ?
				ORDER BY seq LIMIT ?`
			),
			ping: db.prepare("SELECT 1"),
			readNewest: db.prepare<[string, number, number, number], LogRow>(
				`SELECT seq, at, entry FROM logs WHERE log = ? AND seq > ? AND at >= ?
				ORDER BY seq DESC LIMIT ?`
			)
		};
		this.appendGroup = db.transaction((log: string, seq: number, entries: string[]) => {
			if (this.stmt.lastSeq.get(log) !== seq - 1) return false;
			const at = Date.now();
			for (let i = 0; i < entries.length; i++)
				this.stmt.insertLog.run(log, seq + i, at, entries[i]);
			return true;
		});
		this.transaction = db.transaction((checks: VersionCheck[], writes: DocWrite[]) => {
			const expected = this.fuse(checks, writes);
			if (!expected) return false;
			for (let i = 0; i < writes.length; i++) {
				const w = writes[i];
				const version = expected[i];
				if (version === undefined) {
					if (w.value === null) this.stmt.delete.run(w.collection, w.id);
					else this.stmt.write.run(w.collection, w.id, encode(w.value));
				} else if (!this.writeAt(w, version)) {
					// Thrown, not returned: the writes made before it must roll back.
					throw CONFLICT;
				}
			}
			return true;
		});
	}

	async get<T>(collection: string, id: string): Promise<Versioned<T> | null> {
		const row = this.call(() => this.stmt.get.get(collection, id));
		if (!row) return null;
		const value = decodeDoc<T>(collection, id, row.value, this.onUnreadable);
		return value === undefined ? null : { value, version: row.version };
	}

	async versions(collection: string, ids: string[]): Promise<number[]> {
		return this.call(() => ids.map(id => this.stmt.version.get(collection, id) ?? 0));
	}

	/**
	 * A page at a time, with a turn of the event loop between pages: tens of thousands of
	 * versions in one query held the loop for tens of ms every reconcile. The pages are not
	 * one snapshot; each id is listed with a version it had during the call.
	 */
	async listVersions(collection: string): Promise<Map<string, number>> {
		const versions = new Map<string, number>();
		for (let after = ""; ;) {
			const page = this.call(() =>
				this.stmt.listVersions.all(collection, after, VERSION_PAGE)
			);
			for (const [id, version] of page) versions.set(id, version);
			if (page.length < VERSION_PAGE) return versions;
			after = page[page.length - 1][0];
			await new Promise(resolve => setImmediate(resolve));
		}
	}

	async list<T>(collection: string): Promise<StoredDoc<T>[]> {
		const rows = this.call(() => this.stmt.list.all(collection));
		return decodeDocs<T>(collection, rows, this.onUnreadable);
	}

	async put<T>(collection: string, id: string, value: T): Promise<number> {
		const json = encode(value);
		return this.call(() => this.stmt.put.get(collection, id, json) as number);
	}

	async cas<T>(
		collection: string,
		id: string,
		value: T,
		expected: number
	): Promise<number | null> {
		const json = encode(value);
		const { changes } = this.call(() =>
			expected === 0
				? this.stmt.create.run(collection, id, json)
				: this.stmt.update.run(json, collection, id, expected)
		);
		return changes === 1 ? expected + 1 : null;
	}

	async delete(collection: string, id: string, expected?: number): Promise<boolean> {
		const { changes } = this.call(() =>
			expected === undefined
				? this.stmt.delete.run(collection, id)
				: this.stmt.deleteAt.run(collection, id, expected)
		);
		return changes === 1;
	}

	async transact(checks: VersionCheck[], writes: DocWrite[]): Promise<boolean> {
		try {
			return this.call(() => this.transaction.immediate(checks, writes));
		} catch (err) {
			if (err === CONFLICT) return false;
			throw err;
		}
	}

	async append<T>(log: string, entry: T): Promise<number> {
		const json = encode(entry);
		return this.call(
			() => this.stmt.append.get({ log, at: Date.now(), entry: json }) as number
		);
	}

	async appendAt<T>(log: string, seq: number, entries: T[]): Promise<boolean> {
		const json = entries.map(encode);
		return this.call(() => this.appendGroup.immediate(log, seq, json) as boolean);
	}

	async trimLog(log: string, beforeSeq: number): Promise<number> {
		return this.call(() => this.stmt.trimLog.run({ log, before: beforeSeq }).changes);
	}

	async readLog<T>(log: string, query: LogQuery = {}): Promise<LogEntry<T>[]> {
		const stmt = query.newestFirst ? this.stmt.readNewest : this.stmt.readOldest;
		const rows = this.call(() =>
			stmt.all(
				log,
				query.afterSeq ?? 0,
				query.since ?? Number.MIN_SAFE_INTEGER,
				Math.max(query.limit ?? 100, 0)
			)
		);
		return rows.map(row => ({ seq: row.seq, at: row.at, entry: JSON.parse(row.entry) as T }));
	}

	async ping(): Promise<void> {
		this.call(() => this.stmt.ping.get());
	}

	async close(): Promise<void> {
		if (this.db.open) this.db.close();
	}

	/**
	 * Runs the checks of documents that are not written, and answers the version each write
	 * must find (undefined: none), or null when a check failed. A check of a document written
	 * once is made by its write (`writeAt`): one search of the table instead of two, which is
	 * most of a group commit of reservations (each new placement record, each node's
	 * allocation).
	 */
	private fuse(checks: VersionCheck[], writes: DocWrite[]): Array<number | undefined> | null {
		/** Position of each document's write; -1 when it is written more than once. */
		const at = new Map<string, number>();
		for (let i = 0; i < writes.length; i++) {
			const key = docKey(writes[i]);
			at.set(key, at.has(key) ? -1 : i);
		}
		const expected = new Array<number | undefined>(writes.length);
		for (const c of checks) {
			const i = at.get(docKey(c)) ?? -1;
			if (i >= 0 && expected[i] === undefined) expected[i] = c.version;
			else if ((this.stmt.version.get(c.collection, c.id) ?? 0) !== c.version) return null;
		}
		return expected;
	}

	/** Writes (or deletes) a document only at this version (0: absent); false when not. */
	private writeAt(w: DocWrite, version: number): boolean {
		if (w.value === null) {
			if (version === 0) return this.stmt.version.get(w.collection, w.id) === undefined;
			return this.stmt.deleteAt.run(w.collection, w.id, version).changes === 1;
		}
		const json = encode(w.value);
		return version === 0
			? this.stmt.create.run(w.collection, w.id, json).changes === 1
			: this.stmt.update.run(json, w.collection, w.id, version).changes === 1;
	}

	/** Runs a statement, turning "cannot use the database now" into StoreUnavailableError. */
	private call<R>(fn: () => R): R {
		try {
			return fn();
		} catch (err) {
			throw this.unavailable(err);
		}
	}

	private unavailable(err: unknown): unknown {
		if (this.db && !this.db.open) return new StoreUnavailableError("the database is closed");
		if (err instanceof Database.SqliteError && UNAVAILABLE_CODES.test(err.code)) {
			return new StoreUnavailableError(`${this.file}: ${err.message}`);
		}
		return err;
	}
}
