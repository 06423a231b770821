/**
 * The live feed: GET /api/v1/events as an EventSource (services/gateway/events.ts). The token
 * goes in `?token=` because EventSource cannot send headers. The browser reconnects by itself
 * after a dropped connection; when it gives up (the gateway refused the stream, or answered
 * something that is no stream), the caller is told so that it can find out why and retry.
 */
import type { StreamEvents, StreamHandlers } from "./types";

/** The first delay before connecting again after the browser gave up; it doubles up to MAX. */
const FIRST_RETRY_MS = 2000;
const MAX_RETRY_MS = 30_000;

export interface FeedCallbacks {
	/** The stream is open. `missed`: it had been lost, so events may have been missed. */
	onOpen(missed: boolean): void;
	/** The connection dropped; the browser is reconnecting. */
	onLost(): void;
	/** The browser gave up on the stream. */
	onClosed(): void;
}

export class EventFeed {
	private source: EventSource | null = null;
	private retryTimer: ReturnType<typeof setTimeout> | undefined;
	private retryMs = FIRST_RETRY_MS;
	private missed = false;

	constructor(
		private readonly handlers: StreamHandlers,
		private readonly callbacks: FeedCallbacks
	) {}

	connect(token: string): void {
		this.close();
		const source = new EventSource(`api/v1/events?token=${encodeURIComponent(token)}`);
		this.source = source;
		source.onopen = () => {
			this.retryMs = FIRST_RETRY_MS;
			const missed = this.missed;
			this.missed = false;
			this.callbacks.onOpen(missed);
		};
		source.onerror = () => {
			if (this.source !== source) return;
			this.missed = true;
			if (source.readyState === EventSource.CLOSED) {
				this.close();
				this.callbacks.onClosed();
			} else this.callbacks.onLost();
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
