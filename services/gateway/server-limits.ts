/**
 * Deadlines and sizes of the gateway's HTTP server, so that a slow or hostile client cannot hold
 * a socket: one that sends its headers a byte at a time is cut off after `headersTimeout`, one
 * that trickles its body after `requestTimeout`, an idle kept-alive connection after
 * `keepAliveTimeout`. Node answers 408 (or closes the socket) when a deadline passes, and 431
 * for headers over `maxHeaderSize`.
 */
import type { Server } from "http";

export interface ServerLimits {
	/** ms to receive the request line and every header (ISA_HTTP_HEADERS_TIMEOUT). */
	headersTimeout: number;
	/** ms to receive the whole request, body included (ISA_HTTP_REQUEST_TIMEOUT). */
	requestTimeout: number;
	/** ms an idle kept-alive connection stays open. */
	keepAliveTimeout: number;
	/** Bytes of request line and headers together. */
	maxHeaderSize: number;
}

/** Node's own default header limit; a bearer token of a few KiB fits many times over. */
export const MAX_HEADER_SIZE = 16 * 1024;
/** Node's default: long enough for a client to reuse a connection, short enough to free it. */
export const KEEP_ALIVE_TIMEOUT = 5000;

/**
 * Sets the limits on a server moleculer-web created (it passes no options to createServer).
 * Call before `listen`: Node starts its deadline checks then, at `connectionsCheckingInterval`.
 */
export function applyServerLimits(server: Server, limits: ServerLimits): void {
	server.headersTimeout = limits.headersTimeout;
	server.requestTimeout = limits.requestTimeout;
	server.keepAliveTimeout = limits.keepAliveTimeout;
	// Both are createServer options otherwise: Node reads the first for each new connection's
	// parser and the second when the server starts listening.
	const options = server as Server & {
		maxHeaderSize?: number;
		connectionsCheckingInterval?: number;
	};
	options.maxHeaderSize = limits.maxHeaderSize;
	options.connectionsCheckingInterval = checkingInterval(limits.headersTimeout);
}

/**
 * How often Node looks for connections past their deadline (its default, 30 s, would let a
 * 10 s header deadline stretch to 40 s): a quarter of the header deadline, 50 ms to 1 s.
 */
export function checkingInterval(headersTimeout: number): number {
	return Math.max(50, Math.min(1000, Math.floor(headersTimeout / 4)));
}
