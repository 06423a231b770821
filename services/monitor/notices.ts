/**
 * What the monitor announced, kept in the store so that a new leader goes on where the last one
 * stopped: no alert announced twice, none lost in the handover.
 *
 * One document holds the alerts announced as firing and the outbox: the notices whose webhook
 * was not yet delivered. Each evaluation, the leader compares the alerts firing now with those
 * announced (`noticesFor`, pure) and writes the difference as new notices in one transaction
 * fenced by its term (services/shared/leadership.ts); only what was written is announced. A
 * webhook delivered (or given up) is taken off the outbox. A new leader loads the document,
 * delivers the outbox again and compares its own firing alerts with what was announced, so a
 * change that happened while no copy led is announced once, by it.
 *
 * Delivery is at least once: a leader that dies after a receiver took a notice but before the
 * outbox write leaves it for the next leader, which sends it again with the same `id` (the
 * webhook's `Idempotency-Key`), so a receiver can drop the copy.
 */
import { COLLECTIONS } from "../shared/collections";
import type { Store, VersionCheck } from "../shared/store";
import type { Alert, AlertRule } from "./alerts";

/** The document's id in its collection. */
export const LEDGER_ID = "ledger";

/** What a notice keeps of its rule (the rule may be deleted before its alerts resolve). */
export interface NoticeRule {
	id: string;
	name: string;
	webhook?: string;
}

/** One announcement: an event for the cluster, and a webhook POST when its rule has one. */
export interface Notice {
	/** `<alert id>.<status>`: the same on every attempt and from every leader. */
	id: string;
	/** Order of announcement over all notices; a receiver gets them in this order. */
	seq: number;
	status: "firing" | "resolved";
	alert: Alert;
	rule: NoticeRule;
}

/** An alert as announced firing. */
export interface Announced {
	alert: Alert;
	rule: NoticeRule;
}

/** The store document. */
export interface LedgerDoc {
	/** The last notice's seq. */
	seq: number;
	/** By alert key (rule id and series, as the evaluator keys its alerts). */
	firing: Record<string, Announced>;
	/** Notices with a webhook not yet delivered, oldest first. */
	outbox: Notice[];
}

const EMPTY: LedgerDoc = { seq: 0, firing: {}, outbox: [] };

export function noticeRule(rule: AlertRule): NoticeRule {
	return rule.notify?.webhook
		? { id: rule.id, name: rule.name, webhook: rule.notify.webhook }
		: { id: rule.id, name: rule.name };
}

/**
 * The notices that take `doc` to the alerts firing now, and the document after them. An alert
 * announced but no longer firing is resolved with the alert as it was announced (its id, so a
 * receiver pairs the two), ended `now`.
 */
export function noticesFor(
	doc: LedgerDoc,
	firing: Map<string, { alert: Alert; rule: AlertRule }>,
	now: number
): { notices: Notice[]; next: LedgerDoc } {
	const notices: Notice[] = [];
	const announced: Record<string, Announced> = {};
	let seq = doc.seq;
	for (const [key, was] of Object.entries(doc.firing)) {
		if (firing.has(key)) {
			announced[key] = was;
			continue;
		}
		const alert: Alert = { ...was.alert, state: "resolved", since: now, resolvedAt: now };
		notices.push({
			id: `${alert.id}.resolved`,
			seq: ++seq,
			status: "resolved",
			alert,
			rule: was.rule
		});
	}
	for (const [key, { alert, rule }] of firing) {
		if (key in doc.firing) continue;
		const announcedRule = noticeRule(rule);
		announced[key] = { alert: { ...alert }, rule: announcedRule };
		notices.push({
			id: `${alert.id}.firing`,
			seq: ++seq,
			status: "firing",
			alert: { ...alert },
			rule: announcedRule
		});
	}
	const outbox = [...doc.outbox, ...notices.filter(n => n.rule.webhook)];
	return { notices, next: { seq, firing: announced, outbox } };
}

export interface LedgerOptions {
	store: Store;
	/** The leader's fence: every write checks it. */
	fence(): VersionCheck;
	/** Most notices the outbox keeps; past it the oldest is dropped (and reported). */
	maxOutbox: number;
	onDropped(notice: Notice): void;
}

/** The leader's copy of the document and its fenced writes, one at a time. */
export class NoticeLedger {
	private doc: LedgerDoc | null = null;
	private version = 0;
	private settled = new Set<string>();
	private chain: Promise<unknown> = Promise.resolve();

	constructor(private readonly opts: LedgerOptions) {}

	/** Whether this copy holds the document (it leads and loaded it). */
	get loaded(): boolean {
		return this.doc !== null;
	}

	/** Reads the document (a new leader): resolves to the outbox, to deliver again. */
	load(): Promise<Notice[]> {
		return this.serial(async () => {
			const stored = await this.opts.store.get<LedgerDoc>(
				COLLECTIONS.alertNotices,
				LEDGER_ID
			);
			this.doc = stored?.value ?? EMPTY;
			this.version = stored?.version ?? 0;
			this.settled.clear();
			return this.doc.outbox;
		});
	}

	/** Forgets the document (no longer the leader). */
	forget(): void {
		this.doc = null;
		this.version = 0;
		this.settled.clear();
	}

	/**
	 * Writes what changed since the last announcement; resolves to the notices to announce, or
	 * to [] when nothing changed or the write was fenced out (a new leader took over).
	 */
	sync(firing: Map<string, { alert: Alert; rule: AlertRule }>, now: number): Promise<Notice[]> {
		return this.serial(async () => {
			if (!this.doc) return [];
			const { notices, next } = noticesFor(this.doc, firing, now);
			if (notices.length === 0 && this.settled.size === 0) return [];
			const outbox = this.trim(next.outbox.filter(n => !this.settled.has(n.id)));
			return (await this.write({ ...next, outbox })) ? notices : [];
		});
	}

	/**
	 * A notice's webhook was delivered or given up: off the outbox with the next write. A leader
	 * that dies first leaves it there, and the next one sends it again.
	 */
	settle(id: string): void {
		if (!this.doc) return;
		this.settled.add(id);
	}

	private trim(outbox: Notice[]): Notice[] {
		const over = outbox.length - this.opts.maxOutbox;
		if (over <= 0) return outbox;
		for (const dropped of outbox.slice(0, over)) this.opts.onDropped(dropped);
		return outbox.slice(over);
	}

	private async write(next: LedgerDoc): Promise<boolean> {
		const written = await this.opts.store.transact(
			[
				this.opts.fence(),
				{ collection: COLLECTIONS.alertNotices, id: LEDGER_ID, version: this.version }
			],
			[{ collection: COLLECTIONS.alertNotices, id: LEDGER_ID, value: next }]
		);
		if (!written) return false;
		const waiting = new Set(next.outbox.map(n => n.id));
		for (const id of this.settled) if (!waiting.has(id)) this.settled.delete(id);
		this.doc = next;
		this.version++;
		return true;
	}

	private serial<T>(fn: () => Promise<T>): Promise<T> {
		const run = this.chain.then(fn, fn);
		this.chain = run.catch(() => undefined);
		return run;
	}
}
