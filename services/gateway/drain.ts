/**
 * The gateway's HTTP server on the way out (SIGTERM, bin/isa.ts): finish what was asked, refuse
 * what is new, and close each kept-alive connection at a moment its client does not use it.
 *
 * 1. `drain()` stops listening: a new connection is refused (ECONNREFUSED, which a client or a
 *    load balancer safely retries on another gateway), and `/ready` says 503 on the ones open.
 * 2. Every response from then on carries `Connection: close` (those in flight too, unless their
 *    head is already out), so the client does not reuse the connection and Node closes it right
 *    after the response: a busy connection ends politely.
 * 3. An idle connection is closed once it has been idle for `quiet` (1 s): its client sends
 *    seldom, so it is unlikely to send at that very moment. Closing a connection that a client
 *    uses often is a race: a request it sent just then (still in the kernel's buffer, unread)
 *    gets a reset, which the client cannot tell from a failure. Node's `server.close()` closes
 *    every idle connection at once, and a keep-alive client under load loses requests to it.
 *    A busy client instead gets (2) on its next request.
 * 4. Whatever is still open when the grace is up is closed (its requests fail); the outcome
 *    says how many.
 *
 * Under HTTPS (gateway/tls.ts) the same holds for HTTP/1.1 over TLS, tracked by its TLS socket
 * (the one its requests see). An HTTP/2 session needs neither (2) nor (3): it is sent a GOAWAY
 * (`SessionTracker.goAway`) as the drain begins, which tells its client the last stream the
 * gateway took, so the client knows which requests to send elsewhere; the streams in flight
 * finish, and the session then closes its connection.
 */
import type { IncomingMessage, ServerResponse } from "http";
import net from "net";
import type { Socket } from "net";
import tls from "tls";
import type { GatewayServer, SessionTracker } from "./tls";

/** ms a connection must have been idle before a drain closes it (3 above). */
export const QUIET_MS = 1000;

export interface DrainOutcome {
	/** Connections open when the drain began. */
	open: number;
	/** Connections still open at the end of the grace, closed then. */
	forced: number;
	/** ms the drain took. */
	took: number;
}

/** What the drain knows of one connection. */
export interface ConnectionState {
	/** Requests on it not yet answered. */
	busy: number;
	/** When its last response was done (or it was opened), ms. */
	idleSince: number;
}

/** An idle connection may be closed once its client has been quiet for `quiet` ms. */
export function closableNow(conn: ConnectionState, now: number, quiet: number): boolean {
	return conn.busy === 0 && now - conn.idleSince >= quiet;
}

/**
 * This response is the connection's last one. Once its head is out (a stream) that is too late:
 * the connection is then closed as an idle one after it.
 */
function closeAfter(res: ServerResponse): void {
	if (!res.headersSent) res.setHeader("Connection", "close");
}

export class HttpDrain {
	/** HTTP/1.1 connections, by the socket their requests see (a TLS socket under HTTPS). */
	private readonly connections = new Map<Socket, ConnectionState>();
	/** Every TCP connection accepted, whatever it came to speak: what the grace's end cuts. */
	private readonly sockets = new Set<Socket>();
	/** Responses begun and not yet done. */
	private readonly inFlight = new Set<ServerResponse>();
	private draining: Promise<DrainOutcome> | null = null;

	/** `sessions`: the HTTP/2 sessions of an HTTPS server, sent a GOAWAY when the drain begins. */
	constructor(
		private readonly server: GatewayServer,
		private readonly sessions: SessionTracker | null = null,
		private readonly now: () => number = Date.now
	) {
		const secure = server instanceof tls.Server;
		server.on("connection", (socket: Socket) => {
			this.sockets.add(socket);
			socket.once("close", () => this.sockets.delete(socket));
			if (!secure) this.track(socket);
		});
		// ALPN chose: "h2" is a session's (no ALPN at all is HTTP/1.1).
		if (secure)
			server.on("secureConnection", (socket: tls.TLSSocket) => {
				if (socket.alpnProtocol !== "h2") this.track(socket);
			});
		// Before the gateway's own handler, so that its response carries the header.
		server.prependListener("request", (req: IncomingMessage, res: ServerResponse) => {
			// HTTP/2 has no Connection header: its session's GOAWAY ends it.
			if (req.httpVersionMajor >= 2) return;
			const conn = this.connections.get(req.socket);
			if (conn) conn.busy++;
			if (this.draining) closeAfter(res);
			this.inFlight.add(res);
			res.once("close", () => {
				this.inFlight.delete(res);
				if (conn) {
					conn.busy--;
					conn.idleSince = this.now();
				}
			});
		});
	}

	private track(socket: Socket): void {
		this.connections.set(socket, { busy: 0, idleSince: this.now() });
		socket.once("close", () => this.connections.delete(socket));
	}

	/** The drain has begun: the gateway is going away. */
	get isDraining(): boolean {
		return this.draining !== null;
	}

	/** Connections open now. */
	get open(): number {
		return this.connections.size;
	}

	/**
	 * Stops listening and waits for the open connections to end, at most `grace` ms; then
	 * closes the rest. Idle connections are closed after `quiet` ms of silence (0: at once).
	 * A second call returns the first call's outcome.
	 */
	drain(grace: number, quiet = QUIET_MS): Promise<DrainOutcome> {
		this.draining ??= this.run(grace, quiet);
		return this.draining;
	}

	private async run(grace: number, quiet: number): Promise<DrainOutcome> {
		const started = this.now();
		const open = this.sockets.size;
		for (const res of this.inFlight) closeAfter(res);
		this.sessions?.goAway();
		if (!this.server.listening) return { open, forced: 0, took: 0 };
		// net.Server's close, not http.Server's: the latter closes idle connections at once
		// (3 above says why not). Its callback comes once every connection has ended.
		const closed = new Promise<void>(resolve =>
			net.Server.prototype.close.call(this.server, () => resolve())
		);
		const sweep = () => {
			const now = this.now();
			for (const [socket, conn] of this.connections)
				if (closableNow(conn, now, quiet)) socket.destroy();
		};
		sweep();
		const sweeper = setInterval(sweep, Math.max(20, Math.min(quiet, 1000) / 4));
		let timer: NodeJS.Timeout | undefined;
		const graceOver = new Promise<"grace">(resolve => {
			timer = setTimeout(() => resolve("grace"), grace);
		});
		const first = await Promise.race([closed, graceOver]);
		clearInterval(sweeper);
		clearTimeout(timer);
		const forced = first === "grace" ? this.sockets.size : 0;
		if (forced > 0) {
			// Each layer: a TLS socket and an HTTP/2 session are objects of their own over it.
			for (const socket of this.connections.keys()) socket.destroy();
			this.sessions?.destroyAll();
			for (const socket of this.sockets) socket.destroy();
		}
		await closed;
		// The server's own close as well, for its timer of connection deadlines; nothing is open.
		this.server.close();
		return { open, forced, took: this.now() - started };
	}
}
