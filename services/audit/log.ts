/**
 * The audit log over the store: chained appends, pages, verification, retention and the
 * write-ahead entries of requests in flight.
 *
 * Appends are chained with `Store.appendAt`: a record is written at the seq after the head this
 * writer knows, linking to its hash; when another writer (a second audit instance) got there
 * first, the append is refused, the head is read again and the record linked anew. The head is
 * kept in memory, so one instance alone costs one store write per record. Within an instance
 * appends run one after another, so they never race each other.
 */
import { COLLECTIONS, LOGS } from "../shared/collections";
import type { Store } from "../shared/store";
import { StoreUnavailableError } from "../shared/errors";
import { ChainVerifier, GENESIS, link, type Anchor, type Break } from "./chain";
import { readPage, type AuditFilter, type AuditPage } from "./query";
import type { AuditFields, AuditRecord } from "./record";
import { keepFrom, type RetentionPolicy } from "./retention";

const ANCHOR_ID = "anchor";
/** Tries of one append against other writers before it gives up. */
const MAX_TRIES = 100;
/** Records a verification reads per page. */
const VERIFY_PAGE = 1000;

/** A request that began and has not ended: what its final record will say, so far. */
export interface Pending {
	fields: AuditFields;
	/** When it began (ms since the epoch). */
	begunAt: number;
	/** The log's newest seq when it began: its final record, if any, comes after. */
	headSeq: number;
}

export interface VerifyResult {
	ok: boolean;
	count: number;
	first: number | null;
	last: number | null;
	anchor: Anchor | null;
	broken: Break | null;
}

export class AuditLog {
	private head: { seq: number; hash: string } | null = null;
	private queue: Promise<unknown> = Promise.resolve();

	constructor(
		private readonly store: Store,
		private readonly key: string
	) {}

	/** Chains and appends one record; resolves to it as stored. */
	append(fields: AuditFields): Promise<AuditRecord> {
		const run = this.queue.then(() => this.appendNow(fields));
		this.queue = run.catch(() => undefined);
		return run;
	}

	private async appendNow(fields: AuditFields): Promise<AuditRecord> {
		for (let attempt = 0; attempt < MAX_TRIES; attempt++) {
			const head = this.head ?? (await this.readHead());
			const record = link(this.key, fields, head.seq + 1, head.hash) as AuditRecord;
			let appended: boolean;
			try {
				appended = await this.store.appendAt(LOGS.audit, record.seq, record);
			} catch (err) {
				// The write may have landed: know nothing of the head rather than guess.
				this.head = null;
				throw err;
			}
			if (appended) {
				this.head = { seq: record.seq, hash: record.hash };
				return record;
			}
			this.head = null;
		}
		throw new StoreUnavailableError("the audit log stayed contended");
	}

	/** The newest record's seq and hash; seq 0 and GENESIS for an empty log. */
	async readHead(): Promise<{ seq: number; hash: string }> {
		const [last] = await this.store.readLog<AuditRecord>(LOGS.audit, {
			newestFirst: true,
			limit: 1
		});
		this.head = last ? { seq: last.seq, hash: last.entry.hash } : { seq: 0, hash: GENESIS };
		return this.head;
	}

	async anchor(): Promise<Anchor | null> {
		return (await this.store.get<Anchor>(COLLECTIONS.auditState, ANCHOR_ID))?.value ?? null;
	}

	/** The oldest and newest seq kept (0, 0 for an empty log). */
	async bounds(): Promise<{ oldest: number; newest: number }> {
		const [[first], [last]] = await Promise.all([
			this.store.readLog<AuditRecord>(LOGS.audit, { limit: 1 }),
			this.store.readLog<AuditRecord>(LOGS.audit, { newestFirst: true, limit: 1 })
		]);
		return { oldest: first?.seq ?? 0, newest: last?.seq ?? 0 };
	}

	async page(
		filter: AuditFilter,
		opts: { limit: number; cursor?: number; order: "asc" | "desc" }
	): Promise<AuditPage> {
		const { oldest, newest } = await this.bounds();
		if (newest === 0) return { items: [], nextCursor: null };
		return readPage(
			(afterSeq, limit) => this.store.readLog<AuditRecord>(LOGS.audit, { afterSeq, limit }),
			filter,
			{ ...opts, oldest, newest }
		);
	}

	/** Walks the kept log from the anchor (or seq 1) and reports the first broken link. */
	async verify(): Promise<VerifyResult> {
		const anchor = await this.anchor();
		const verifier = new ChainVerifier(this.key, anchor);
		let after = 0;
		for (;;) {
			const entries = await this.store.readLog(LOGS.audit, {
				afterSeq: after,
				limit: VERIFY_PAGE
			});
			for (const e of entries) {
				const broken = verifier.feed(e);
				if (broken)
					return {
						ok: false,
						count: verifier.count,
						first: verifier.first,
						last: verifier.last,
						anchor,
						broken
					};
			}
			if (entries.length < VERIFY_PAGE) break;
			after = entries[entries.length - 1].seq;
		}
		return {
			ok: true,
			count: verifier.count,
			first: verifier.first,
			last: verifier.last,
			anchor,
			broken: null
		};
	}

	/**
	 * Applies the retention policy: stores the anchor, then drops what is below it. Resolves to
	 * how many records were dropped.
	 */
	async trim(policy: RetentionPolicy, now = Date.now()): Promise<number> {
		const { oldest, newest } = await this.bounds();
		if (newest === 0) return 0;
		let firstRecent: number | null = null;
		if (policy.maxAgeMs !== null) {
			const [recent] = await this.store.readLog(LOGS.audit, {
				since: now - policy.maxAgeMs,
				limit: 1
			});
			firstRecent = recent?.seq ?? null;
		}
		const keep = keepFrom({ oldest, newest, firstRecent }, policy);
		if (keep === null) return 0;
		const [before] = await this.store.readLog<AuditRecord>(LOGS.audit, {
			afterSeq: keep - 2,
			limit: 1
		});
		const current = await this.store.get<Anchor>(COLLECTIONS.auditState, ANCHOR_ID);
		if (before?.seq === keep - 1 && (current?.value.seq ?? 0) < keep) {
			const anchor: Anchor = { seq: keep, prev: before.entry.hash, at: now };
			// CAS: of two instances trimming at once, one anchor wins and the other trims after it.
			const written = await this.store.cas(
				COLLECTIONS.auditState,
				ANCHOR_ID,
				anchor,
				current?.version ?? 0
			);
			if (written === null) return 0;
		}
		const anchor = await this.anchor();
		return anchor ? this.store.trimLog(LOGS.audit, anchor.seq) : 0;
	}

	/** Makes a request's write-ahead entry durable (before its action runs). */
	async begin(fields: AuditFields, now = Date.now()): Promise<void> {
		const pending: Pending = { fields, begunAt: now, headSeq: this.head?.seq ?? 0 };
		const version = await this.store.cas(COLLECTIONS.auditPending, fields.id, pending, 0);
		if (version === null)
			throw new StoreUnavailableError(`audit record ${fields.id} was begun twice`);
	}

	/** Appends a begun request's final record, then drops its write-ahead entry. */
	async commit(fields: AuditFields): Promise<AuditRecord> {
		const record = await this.append(fields);
		// Left behind only if this fails: recovery then finds the record and drops it.
		await this.store.delete(COLLECTIONS.auditPending, fields.id).catch(() => false);
		return record;
	}

	/**
	 * Completes write-ahead entries older than `graceMs` whose request never ended (its gateway
	 * died, or the final append failed): a final record with an unknown outcome, unless the
	 * record is already in the log. Each entry is claimed by CAS first, so that of two audit
	 * instances only one completes it. Resolves to how many records it appended.
	 */
	async recover(graceMs: number, now = Date.now()): Promise<number> {
		const pendings = await this.store.list<Pending & { claimedAt?: number }>(
			COLLECTIONS.auditPending
		);
		let completed = 0;
		for (const doc of pendings) {
			const p = doc.value;
			if (now - p.begunAt < graceMs) continue;
			if (p.claimedAt !== undefined && now - p.claimedAt < graceMs) continue;
			const claimed = await this.store.cas(
				COLLECTIONS.auditPending,
				doc.id,
				{ ...p, claimedAt: now },
				doc.version
			);
			if (claimed === null) continue;
			if (!(await this.contains(p.fields.id, p.headSeq))) {
				await this.append({
					...p.fields,
					outcome: { status: null, errorType: "UNKNOWN", succeeded: null },
					durationMs: null
				});
				completed++;
			}
			await this.store.delete(COLLECTIONS.auditPending, doc.id, claimed);
		}
		return completed;
	}

	/** Whether a record with this id was appended after `afterSeq`. */
	private async contains(id: string, afterSeq: number): Promise<boolean> {
		let after = afterSeq;
		for (;;) {
			const entries = await this.store.readLog<AuditRecord>(LOGS.audit, {
				afterSeq: after,
				limit: VERIFY_PAGE
			});
			if (entries.some(e => e.entry.id === id)) return true;
			if (entries.length < VERIFY_PAGE) return false;
			after = entries[entries.length - 1].seq;
		}
	}
}
