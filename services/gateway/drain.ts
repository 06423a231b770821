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
 */
import type { Server, ServerResponse } from "http";
import net from "net";
import type { Socket } from "net";

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
	private readonly connections = new Map<Socket, ConnectionState>();
	/** Responses begun and not yet done. */
	private readonly inFlight = new Set<ServerResponse>();
	private draining: Promise<DrainOutcome> | null = null;

	constructor(
		private readonly server: Server,
		private readonly now: () => number = Date.now
	) {
		server.on("connection", (socket: Socket) => {
			this.connections.set(socket, { busy: 0, idleSince: this.now() });
			socket.once("close", () => this.connections.delete(socket));
		});
		// Before the gateway's own handler, so that its response carries the header.
		server.prependListener("request", (req, res: ServerResponse) => {
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
		const open = this.connections.size;
		for (const res of this.inFlight) closeAfter(res);
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
		const forced = first === "grace" ? this.connections.size : 0;
		if (forced > 0) this.server.closeAllConnections();
		await closed;
		// http.Server's close as well, for its timer of connection deadlines; nothing is open.
		this.server.close();
		return { open, forced, took: this.now() - started };
	}
}
