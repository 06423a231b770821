/**
 * Announces alert transitions: at once as an event (the caller's `broadcast`), and to the rule's
 * webhook as a JSON POST delivered in the background, so a slow or dead receiver never holds up
 * evaluation.
 *
 * Delivery: one queue per webhook URL, sent in order and one at a time (a receiver sees a
 * `resolved` after its `firing`); a failed POST (no answer within the timeout, or a status
 * other than 2xx) is retried after an exponential backoff, up to `maxAttempts` sends. Memory is
 * bounded: past `maxQueue` waiting notifications over all URLs, the oldest one not in flight is
 * dropped with a warning. `close()` drops whatever still waits (the next start evaluates anew).
 */
import { request } from "undici";
import type { Alert, Transition } from "./alerts";

/** The JSON body a webhook receives. `alert.id` and `status` identify a delivery. */
export interface WebhookBody {
	version: 1;
	status: "firing" | "resolved";
	alert: Alert;
	rule: { id: string; name: string };
}

export interface NotifierOptions {
	broadcast(status: "firing" | "resolved", alert: Alert): void;
	logger: { warn(...args: unknown[]): void; debug(...args: unknown[]): void };
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

	/** Broadcasts now and queues the webhook POST, if the rule has one; never waits. */
	notify(t: Transition): void {
		if (this.closed) return;
		this.opts.broadcast(t.status, t.alert);
		const url = t.rule.notify?.webhook;
		if (!url) return;
		const body: WebhookBody = {
			version: 1,
			status: t.status,
			alert: t.alert,
			rule: { id: t.rule.id, name: t.rule.name }
		};
		let q = this.queues.get(url);
		if (!q) this.queues.set(url, (q = { items: [], busy: false, retry: null }));
		q.items.push({
			seq: ++this.seq,
			url,
			body: JSON.stringify(body),
			what: `${t.status} '${t.rule.name}' (${t.alert.series})`,
			attempts: 0
		});
		this.size++;
		this.trim();
		this.pump(url);
	}

	close(): void {
		this.closed = true;
		for (const q of this.queues.values()) if (q.retry) clearTimeout(q.retry);
		this.queues.clear();
		this.size = 0;
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
		q.busy = true;
		d.attempts++;
		void this.send(d).then(error => {
			if (this.closed) return;
			q.busy = false;
			if (error === null || d.attempts >= this.opts.maxAttempts) {
				q.items.shift();
				this.size--;
				if (error !== null)
					this.opts.logger.warn(
						`Webhook ${origin(url)} failed ${d.attempts} times; gave up on ${d.what}: ${error}`
					);
				this.pump(url);
				return;
			}
			const delay = Math.min(this.opts.maxBackoff, this.opts.backoff * 2 ** (d.attempts - 1));
			this.opts.logger.debug(
				`Webhook ${origin(url)} failed (${error}); retry ${d.attempts} of ${d.what} in ${delay} ms.`
			);
			q.retry = setTimeout(() => {
				q.retry = null;
				this.pump(url);
			}, delay);
			q.retry.unref();
		});
	}

	/** Resolves to null on a 2xx answer, else to why not. */
	private async send(d: Delivery): Promise<string | null> {
		try {
			const res = await request(d.url, {
				method: "POST",
				headers: { "content-type": "application/json" },
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
