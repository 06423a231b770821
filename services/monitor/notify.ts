/**
 * Delivers alert notices (monitor/notices.ts) to their rules' webhooks as JSON POSTs in the
 * background, so a slow or dead receiver never holds up evaluation.
 *
 * Delivery: one queue per webhook URL, sent in order and one at a time (a receiver sees a
 * `resolved` after its `firing`); a failed POST (no answer within the timeout, or a status
 * other than 2xx) is retried after an exponential backoff, up to `maxAttempts` sends. Each POST
 * carries the notice's id as `Idempotency-Key`: the same on a retry and from another leader. A
 * notice delivered or given up is reported to `onSettled`. Memory is bounded: past `maxQueue`
 * waiting notices over all URLs, the oldest one not in flight is dropped with a warning.
 * While `maySend()` is false (a leader whose lease ran short), nothing is sent and nothing is
 * given up; `clear()` drops everything without settling it (another copy leads now).
 */
import { request } from "undici";
import type { Alert } from "./alerts";
import type { Notice } from "./notices";

/** The JSON body a webhook receiver gets. `id` identifies the notice across retries. */
export interface WebhookBody {
	version: 1;
	id: string;
	status: "firing" | "resolved";
	alert: Alert;
	rule: { id: string; name: string };
}

export interface NotifierOptions {
	logger: { warn(...args: unknown[]): void; debug(...args: unknown[]): void };
	/** Told once per notice: delivered, or given up or dropped. */
	onSettled?(notice: Notice, delivered: boolean): void;
	/** Whether sending is allowed now (default: always). */
	maySend?(): boolean;
	/** ms one POST may take, connection included. */
	timeout?: number;
	/** Sends per notification, the first included. */
	maxAttempts?: number;
	/** ms before the first retry; doubled for each further one, up to `maxBackoff`. */
	backoff?: number;
	maxBackoff?: number;
	maxQueue?: number;
}

interface Delivery {
	notice: Notice;
	/** Order of arrival over all URLs: the smallest is the oldest. */
	seq: number;
	url: string;
	body: string;
	what: string;
	attempts: number;
}

interface UrlQueue {
	items: Delivery[];
	/** The first item is being sent now. */
	busy: boolean;
	retry: NodeJS.Timeout | null;
}

/** The origin only: webhook URLs often carry a secret in their path or query. */
function origin(url: string): string {
	try {
		return new URL(url).origin;
	} catch {
		return "(invalid URL)";
	}
}

export class Notifier {
	private readonly opts: Required<NotifierOptions>;
	private readonly queues = new Map<string, UrlQueue>();
	private seq = 0;
	private size = 0;
	private closed = false;

	constructor(opts: NotifierOptions) {
		this.opts = {
			onSettled: () => {},
			maySend: () => true,
			timeout: 5000,
			maxAttempts: 6,
			backoff: 1000,
			maxBackoff: 60_000,
			maxQueue: 1000,
			...opts
		};
	}

	/** Notifications waiting or in flight. */
	get pending(): number {
		return this.size;
	}

	/** Queues the notice's POST, if its rule has a webhook and it is not queued yet; never waits. */
	deliver(notice: Notice): void {
		const url = notice.rule.webhook;
		if (this.closed || !url) return;
		let q = this.queues.get(url);
		if (!q) this.queues.set(url, (q = { items: [], busy: false, retry: null }));
		if (q.items.some(d => d.notice.id === notice.id)) return;
		const body: WebhookBody = {
			version: 1,
			id: notice.id,
			status: notice.status,
			alert: notice.alert,
			rule: { id: notice.rule.id, name: notice.rule.name }
		};
		q.items.push({
			notice,
			seq: ++this.seq,
			url,
			body: JSON.stringify(body),
			what: `${notice.status} '${notice.rule.name}' (${notice.alert.series})`,
			attempts: 0
		});
		this.size++;
		this.trim();
		this.pump(url);
	}

	/** Drops every queued notice without settling it (another copy delivers them now). */
	clear(): void {
		for (const q of this.queues.values()) if (q.retry) clearTimeout(q.retry);
		this.queues.clear();
		this.size = 0;
	}

	close(): void {
		this.closed = true;
		this.clear();
	}

	private trim(): void {
		while (this.size > this.opts.maxQueue) {
			let oldest: { q: UrlQueue; index: number } | null = null;
			for (const q of this.queues.values()) {
				const index = q.busy ? 1 : 0;
				const d = q.items[index];
				if (d && (!oldest || d.seq < oldest.q.items[oldest.index].seq))
					oldest = { q, index };
			}
			if (!oldest) return;
			const [dropped] = oldest.q.items.splice(oldest.index, 1);
			this.size--;
			if (oldest.q.items.length === 0) {
				if (oldest.q.retry) clearTimeout(oldest.q.retry);
				this.queues.delete(dropped.url);
			}
			this.opts.logger.warn(
				`Webhook queue full (${this.opts.maxQueue}): dropped the oldest notification, ` +
					`${dropped.what} to ${origin(dropped.url)}.`
			);
			this.opts.onSettled(dropped.notice, false);
		}
	}

	private pump(url: string): void {
		const q = this.queues.get(url);
		if (!q || q.busy || q.retry) return;
		const d = q.items[0];
		if (!d) {
			this.queues.delete(url);
			return;
		}
		if (!this.opts.maySend()) return this.later(url, q, this.opts.backoff);
		q.busy = true;
		d.attempts++;
		void this.send(d).then(error => {
			// Closed or cleared while the POST was out: the queue is not ours to settle.
			if (this.closed || this.queues.get(url) !== q) return;
			q.busy = false;
			if (error === null || d.attempts >= this.opts.maxAttempts) {
				q.items.shift();
				this.size--;
				if (error !== null)
					this.opts.logger.warn(
						`Webhook ${origin(url)} failed ${d.attempts} times; gave up on ${d.what}: ${error}`
					);
				this.opts.onSettled(d.notice, error === null);
				this.pump(url);
				return;
			}
			const delay = Math.min(this.opts.maxBackoff, this.opts.backoff * 2 ** (d.attempts - 1));
			this.opts.logger.debug(
				`Webhook ${origin(url)} failed (${error}); retry ${d.attempts} of ${d.what} in ${delay} ms.`
			);
			this.later(url, q, delay);
		});
	}

	private later(url: string, q: UrlQueue, delay: number): void {
		q.retry = setTimeout(() => {
			q.retry = null;
			this.pump(url);
		}, delay);
		q.retry.unref();
	}

	/** Resolves to null on a 2xx answer, else to why not. */
	private async send(d: Delivery): Promise<string | null> {
		try {
			const res = await request(d.url, {
				method: "POST",
				headers: { "content-type": "application/json", "idempotency-key": d.notice.id },
				body: d.body,
				headersTimeout: this.opts.timeout,
				bodyTimeout: this.opts.timeout,
				signal: AbortSignal.timeout(this.opts.timeout)
			});
			// Consume the response body, so that undici can reuse the connection.
			await res.body.dump();
			return res.statusCode >= 200 && res.statusCode < 300 ? null : `HTTP ${res.statusCode}`;
		} catch (err) {
			return (err as Error).message;
		}
	}
}
