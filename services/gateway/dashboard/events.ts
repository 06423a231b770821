/**
 * The live feed: GET /api/v1/events as an EventSource (services/gateway/events.ts).
 * EventSource cannot send headers, and a token in the URL would land in logs, so each
 * connection first gets a single-use ticket (POST /api/v1/events/ticket) and puts that in
 * `?ticket=`. The browser's own reconnect would send the used ticket again, so after a dropped
 * connection the feed closes the EventSource and connects again itself with a fresh ticket.
 * When the stream is refused, or no ticket can be had, the caller is told so that it can find
 * out why and retry.
 */
import type { StreamEvents, StreamHandlers } from "./types";

/** The first delay before connecting again after the browser gave up; it doubles up to MAX. */
const FIRST_RETRY_MS = 2000;
const MAX_RETRY_MS = 30_000;
/** After a dropped connection, the wait before the next ticket (the stream's `retry`). */
const RECONNECT_MS = 3000;

export interface FeedCallbacks {
	/** The stream is open. `missed`: it had been lost, so events may have been missed. */
	onOpen(missed: boolean): void;
	/** The connection dropped; the feed is reconnecting. */
	onLost(): void;
	/** The stream was refused, or no ticket could be had. */
	onClosed(): void;
}

export class EventFeed {
	private source: EventSource | null = null;
	private retryTimer: ReturnType<typeof setTimeout> | undefined;
	private retryMs = FIRST_RETRY_MS;
	private missed = false;
	/** Counts connects, so that a ticket that arrives after close() or a newer connect is dropped. */
	private attempt = 0;

	constructor(
		private readonly handlers: StreamHandlers,
		private readonly callbacks: FeedCallbacks,
		/** A fresh ticket for each connection. */
		private readonly ticket: () => Promise<string>
	) {}

	connect(): void {
		this.close();
		const attempt = this.attempt;
		this.ticket().then(
			ticket => {
				if (attempt === this.attempt) this.open(ticket);
			},
			() => {
				if (attempt === this.attempt) this.callbacks.onClosed();
			}
		);
	}

	private open(ticket: string): void {
		const source = new EventSource(`api/v1/events?ticket=${encodeURIComponent(ticket)}`);
		this.source = source;
		let opened = false;
		source.onopen = () => {
			opened = true;
			this.retryMs = FIRST_RETRY_MS;
			const missed = this.missed;
			this.missed = false;
			this.callbacks.onOpen(missed);
		};
		source.onerror = () => {
			if (this.source !== source) return;
			this.missed = true;
			this.close();
			if (!opened) return this.callbacks.onClosed();
			this.callbacks.onLost();
			this.retryTimer = setTimeout(() => this.connect(), RECONNECT_MS);
		};
		for (const name of Object.keys(this.handlers) as (keyof StreamEvents)[])
			source.addEventListener(name, e => this.dispatch(name, (e as MessageEvent).data));
	}

	/** Connects again after a delay that grows with each try; returns the delay (ms). */
	retry(connect: () => void): number {
		this.close();
		const delay = this.retryMs;
		this.retryMs = Math.min(this.retryMs * 2, MAX_RETRY_MS);
		this.retryTimer = setTimeout(connect, delay);
		return delay;
	}

	close(): void {
		this.attempt++;
		clearTimeout(this.retryTimer);
		this.source?.close();
		this.source = null;
	}

	private dispatch(name: keyof StreamEvents, text: unknown): void {
		let data: unknown;
		try {
			data = JSON.parse(String(text));
		} catch {
			return;
		}
		(this.handlers[name] as (data: unknown) => void)(data);
	}
}
