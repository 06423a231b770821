/**
 * The audit log's hash chain. Every record carries `prev`, the `hash` of the record before it,
 * and its own `hash` = HMAC-SHA256(audit key, canonical JSON of the record without `hash`).
 * Changing, removing or reordering a stored record breaks a link that anyone holding the key
 * can find; without the key a forger cannot recompute the hashes after the change.
 *
 * The record's `seq` is its position in the store's log (the chain is written with
 * `Store.appendAt`, so the two always agree). Retention drops the oldest records: the anchor
 * then says where the kept chain starts and which hash the first kept record must name.
 */
import crypto from "crypto";

/** `prev` of the very first record. */
export const GENESIS = "0".repeat(64);

export interface Chained {
	seq: number;
	prev: string;
	hash: string;
}

/** Where the kept chain starts after a trim: the first kept seq and the hash it links to. */
export interface Anchor {
	seq: number;
	prev: string;
	/** When the trim was made (ms since the epoch). */
	at: number;
}

/**
 * JSON with object keys sorted at every level (by UTF-16 code units, as `sort()` does), so
 * that a record hashes the same everywhere. Fields whose value is undefined are left out, as
 * JSON.stringify does; `skip` leaves out one more key of the top level (the hash itself).
 */
export function canonicalJson(value: unknown, skip?: string): string {
	if (value === null || typeof value !== "object") return JSON.stringify(value) ?? "null";
	if (Array.isArray(value)) {
		let out = "[";
		for (let i = 0; i < value.length; i++) out += (i ? "," : "") + canonicalJson(value[i]);
		return out + "]";
	}
	const object = value as Record<string, unknown>;
	const keys = Object.keys(object).sort();
	let out = "{";
	for (const key of keys) {
		if (key === skip || object[key] === undefined) continue;
		out += (out.length > 1 ? "," : "") + JSON.stringify(key) + ":" + canonicalJson(object[key]);
	}
	return out + "}";
}

/** The audit key as a KeyObject, made once: HMACs with it skip preparing the key each time. */
export function hmacKey(key: string | Buffer | crypto.KeyObject): crypto.KeyObject {
	return typeof key === "object" && !Buffer.isBuffer(key)
		? key
		: crypto.createSecretKey(Buffer.from(key));
}

/** The HMAC of a record without its `hash` field. */
export function hashOf(key: string | Buffer | crypto.KeyObject, record: object): string {
	return crypto
		.createHmac("sha256", hmacKey(key))
		.update(canonicalJson(record, "hash"))
		.digest("hex");
}

/** The record at `seq` after the record whose hash is `prev`, with its own hash. */
export function link<T extends object>(
	key: string | Buffer | crypto.KeyObject,
	fields: T,
	seq: number,
	prev: string
): T & Chained {
	const unhashed = { ...fields, seq, prev };
	return { ...unhashed, hash: hashOf(key, unhashed) };
}

/** The first broken link: where, and why. */
export interface Break {
	seq: number;
	id: string | null;
	reason: string;
}

/** A log entry as the verifier sees it: its position in the store and what it holds. */
export interface ChainEntry {
	seq: number;
	entry: unknown;
}

/**
 * Walks a chain in order, one entry at a time (the log is read in pages): `feed` answers the
 * first break it finds, null while the chain holds. The first entry must be seq 1 linking to
 * GENESIS, or, after a trim, the anchor's seq linking to the anchor's hash.
 */
export class ChainVerifier {
	private expectedSeq: number;
	private expectedPrev: string;
	count = 0;
	first: number | null = null;
	last: number | null = null;

	constructor(
		private readonly key: string | Buffer | crypto.KeyObject,
		anchor: Pick<Anchor, "seq" | "prev"> | null = null
	) {
		this.expectedSeq = anchor?.seq ?? 1;
		this.expectedPrev = anchor?.prev ?? GENESIS;
	}

	feed(item: ChainEntry): Break | null {
		if (this.count === 0 && item.seq < this.expectedSeq) return null;
		const record = item.entry as Partial<Chained> & { id?: unknown };
		const id = typeof record?.id === "string" ? record.id : null;
		const broken = (reason: string): Break => ({ seq: item.seq, id, reason });
		if (item.seq !== this.expectedSeq)
			return broken(
				this.count === 0
					? `the chain should start at seq ${this.expectedSeq}, the log starts at ${item.seq}`
					: `seq ${this.expectedSeq} is missing (the next stored record is seq ${item.seq})`
			);
		if (record === null || typeof record !== "object") return broken("not a record");
		if (record.seq !== item.seq)
			return broken(`the record says seq ${String(record.seq)}, it is stored at ${item.seq}`);
		if (record.prev !== this.expectedPrev)
			return broken(
				this.count === 0 && this.expectedSeq > 1
					? "prev does not match the anchor left by the last trim"
					: "prev is not the hash of the record before it"
			);
		if (typeof record.hash !== "string" || record.hash !== hashOf(this.key, record))
			return broken("hash does not match the record's content (edited, or another key)");
		this.count++;
		this.first ??= item.seq;
		this.last = item.seq;
		this.expectedSeq = item.seq + 1;
		this.expectedPrev = record.hash;
		return null;
	}
}
