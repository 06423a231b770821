/**
 * The audit log over the store: chained appends, pages, verification, retention and the
 * write-ahead entries of requests in flight.
 *
 * Appends are chained with `Store.appendAt`: a record is written at the seq after the head this
 * writer knows, linking to its hash; when another writer (a second audit instance) got there
 * first, the append is refused, the head is read again and the record linked anew. The head is
 * kept in memory, so one instance alone never reads before it writes.
 *
 * Group commit: records, write-ahead entries and their removals that arrive within one turn of
 * the event loop (and while the previous group is being written) are written together, one
 * store commit per group. A mutation costs three commits (entry, record, removal) where the
 * action costs one; grouped, the audit's share of the write load stays small under
 * concurrency (measured by the gateway benchmark's write row). Within an instance groups are
 * written one after another, so they never race each other.
 */
import type { KeyObject } from "crypto";
import { COLLECTIONS, LOGS } from "../shared/collections";
import type { Store } from "../shared/store";
import { StoreUnavailableError } from "../shared/errors";
import { ChainVerifier, GENESIS, hmacKey, link, type Anchor, type Break } from "./chain";
import { readPage, type AuditFilter, type AuditPage } from "./query";
import type { AuditFields, AuditRecord } from "./record";
import { keepFrom, type RetentionPolicy } from "./retention";

const ANCHOR_ID = "anchor";
/** Tries of one append against other writers before it gives up. */
const MAX_TRIES = 100;
/** Records a verification reads per page. */
const VERIFY_PAGE = 1000;
/** Records, entries or removals written in one commit at most. */
const MAX_GROUP = 500;

/** Items waiting for one group write, each with its caller's promise. */
class GroupWriter<In, Out> {
	private waiting: Array<{
		item: In;
		resolve: (out: Out) => void;
		reject: (err: unknown) => void;
	}> = [];
	private running = false;

	constructor(private readonly write: (items: In[]) => Promise<Out[]>) {}

	add(item: In): Promise<Out> {
		return new Promise((resolve, reject) => {
			this.waiting.push({ item, resolve, reject });
			if (!this.running) {
				this.running = true;
				setImmediate(() => void this.drain());
			}
		});
	}

	private async drain(): Promise<void> {
		while (this.waiting.length) {
			const group = this.waiting.splice(0, MAX_GROUP);
			try {
				const out = await this.write(group.map(g => g.item));
				group.forEach((g, i) => g.resolve(out[i]));
			} catch (err) {
				for (const g of group) g.reject(err);
			}
		}
		this.running = false;
	}
}

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
	private readonly key: KeyObject;
	private readonly records = new GroupWriter<AuditFields, AuditRecord>(f => this.appendGroup(f));
	private readonly pendings = new GroupWriter<Pending, void>(async p => {
		await this.store.transact(
			[],
			p.map(value => ({ collection: COLLECTIONS.auditPending, id: value.fields.id, value }))
		);
		return p.map(() => undefined);
	});
	private readonly removals = new GroupWriter<string, void>(async ids => {
		await this.store.transact(
			[],
			ids.map(id => ({ collection: COLLECTIONS.auditPending, id, value: null }))
		);
		return ids.map(() => undefined);
	});

	constructor(
		private readonly store: Store,
		key: string
	) {
		this.key = hmacKey(key);
	}

	/** Chains and appends one record; resolves to it as stored. */
	append(fields: AuditFields): Promise<AuditRecord> {
		return this.records.add(fields);
	}

	private async appendGroup(group: AuditFields[]): Promise<AuditRecord[]> {
		for (let attempt = 0; attempt < MAX_TRIES; attempt++) {
			const head = this.head ?? (await this.readHead());
			let prev = head.hash;
			const records = group.map((fields, i) => {
				const record = link(this.key, fields, head.seq + 1 + i, prev) as AuditRecord;
				prev = record.hash;
				return record;
			});
			let appended: boolean;
			try {
				appended = await this.store.appendAt(LOGS.audit, head.seq + 1, records);
			} catch (err) {
				// The write may have landed: know nothing of the head rather than guess.
				this.head = null;
				throw err;
			}
			if (appended) {
				this.head = { seq: head.seq + records.length, hash: prev };
				return records;
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

	/**
	 * Makes a request's write-ahead entry durable (before its action runs). Record ids are
	 * random UUIDs, so the entry is written without a version check.
	 */
	async begin(fields: AuditFields, now = Date.now()): Promise<void> {
		await this.pendings.add({ fields, begunAt: now, headSeq: this.head?.seq ?? 0 });
	}

	/**
	 * Appends a begun request's final record, then drops its write-ahead entry. The removal is
	 * not waited for: an entry left behind (a failed removal) is found by recovery, which sees
	 * its record in the log and only drops it.
	 */
	async commit(fields: AuditFields): Promise<AuditRecord> {
		const record = await this.append(fields);
		this.removals.add(fields.id).catch(() => undefined);
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
