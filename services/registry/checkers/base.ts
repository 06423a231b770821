/**
 * What every health checker shares. A check really talks to the thing (a connection and
 * `SELECT 1`, a `PING`, a GET of the health endpoint) and never throws: whatever goes wrong
 * becomes `{ ok: false, error }`, one line that says what failed, with any credential of the
 * target masked, since the registry stores and shows it. Everything a check opens is closed when
 * it ends, also when it ran out of time.
 *
 * `ProbeChecker` is the base of the built-in checkers (one module per kind beside this one):
 * it bounds a probe by its timeout, closes what the probe opened and turns errors into results.
 * The helpers below read endpoints and credentials the same way for every kind.
 */
import { AsyncLocalStorage } from "async_hooks";
import diagnostics from "diagnostics_channel";
import net from "net";
import { collectSecrets, redactText } from "../secrets";

export interface CheckTarget {
	/** The resource type ("postgres", "http", ...), which picks the checker. */
	type: string;
	endpoint: string;
	config: Record<string, unknown>;
	/** The result comes within this many milliseconds; closing adds at most CLOSE_GRACE_MS. */
	timeoutMs: number;
	/** HTTP only: the path to GET, "/" when absent. */
	path?: string;
	/** HTTP only: the accepted status codes; any 2xx or 3xx when absent. */
	expectStatus?: number | number[];
}

export interface CheckResult {
	ok: boolean;
	latencyMs: number;
	error?: string;
}

export abstract class HealthChecker {
	/** Never rejects: a failure is a result with `ok: false` and a one-line `error`. */
	abstract check(target: CheckTarget): Promise<CheckResult>;
}

/**
 * How long closing may take after the result is known. A server that stopped answering can make
 * a driver's graceful close wait forever; the check then returns and the close goes on alone.
 */
const CLOSE_GRACE_MS = 500;
/** Error lines beyond this are cut: some drivers append whole routing tables. */
const MAX_ERROR_LENGTH = 300;

/** What a probe opened, closed in reverse order when the check ends, however it ends. */
export class Scope {
	/** What the probe is doing now, named in the error when time runs out. */
	step = "";
	private readonly closers: (() => unknown)[] = [];
	private readonly sockets = new Set<net.Socket>();
	private closed = false;

	/** Closes something when the check ends; at once if it has ended (a late connect). */
	onClose(close: () => unknown): void {
		if (this.closed) void settle(close);
		else this.closers.push(close);
	}

	/** A socket the probe's driver opened, destroyed if the driver's own close left it open. */
	adopt(socket: net.Socket): void {
		if (this.closed) socket.destroy();
		else this.sockets.add(socket);
	}

	async close(): Promise<void> {
		this.closed = true;
		const closers = this.closers.splice(0).reverse();
		const all = (async () => {
			for (const close of closers) await settle(close);
		})();
		let timer: NodeJS.Timeout | undefined;
		const grace = new Promise<void>(resolve => {
			timer = setTimeout(resolve, CLOSE_GRACE_MS);
		});
		await Promise.race([all, grace]);
		clearTimeout(timer);
		for (const socket of this.sockets) socket.destroy();
		this.sockets.clear();
	}
}

/** The scope of the probe whose async context is running. */
const probing = new AsyncLocalStorage<Scope>();

/**
 * Every TCP client socket opened while a probe runs belongs to its scope. nats.js and
 * neo4j-driver leave a socket open for good when the server accepts but never speaks (no INFO,
 * no bolt handshake reply) and their close() does not reach it; checking such a server every
 * few seconds would otherwise leak a descriptor per check. Node publishes each `net.connect`
 * socket on this channel synchronously, in the async context of whoever opened it.
 */
diagnostics.subscribe("net.client.socket", message => {
	probing.getStore()?.adopt((message as { socket: net.Socket }).socket);
});

/** Runs a close; its failure is not reported, since the check's result is already decided. */
async function settle(close: () => unknown): Promise<void> {
	try {
		await close();
	} catch {
		// Closing something that failed often fails too; there is nothing left to release.
	}
}

/**
 * The base of the built-in checkers: `probe` does the talking and throws on failure; this class
 * measures it, bounds it by `timeoutMs`, closes what it opened and turns errors into results.
 */
export abstract class ProbeChecker extends HealthChecker {
	protected abstract probe(target: CheckTarget, scope: Scope): Promise<void>;

	async check(target: CheckTarget): Promise<CheckResult> {
		const scope = new Scope();
		const started = performance.now();
		let timer: NodeJS.Timeout | undefined;
		const timeout = new Promise<never>((_resolve, reject) => {
			timer = setTimeout(() => {
				const during = scope.step ? ` (${scope.step})` : "";
				reject(new Error(`timed out after ${target.timeoutMs} ms${during}`));
			}, target.timeoutMs);
		});
		let error: string | undefined;
		try {
			await Promise.race([probing.run(scope, () => this.probe(target, scope)), timeout]);
		} catch (err) {
			error = redactText(describe(err), collectSecrets(target.endpoint, target.config));
		} finally {
			clearTimeout(timer);
		}
		const latencyMs = Math.round((performance.now() - started) * 10) / 10;
		await scope.close();
		return error === undefined ? { ok: true, latencyMs } : { ok: false, latencyMs, error };
	}
}

/**
 * Error-like, by shape: errors of Node's own modules fail `instanceof Error` where the caller runs
 * in another realm (a vm context, as under jest).
 */
export function isError(value: unknown): value is Error {
	return (
		typeof value === "object" && value !== null && typeof (value as Error).message === "string"
	);
}

/** One line for any thrown value; Node's happy-eyeballs connect throws an AggregateError. */
function describe(err: unknown): string {
	const inner = (err as Partial<AggregateError> | null)?.errors;
	if (Array.isArray(inner) && inner.length > 0) {
		return [...new Set(inner.map(describe))].join("; ");
	}
	const text = isError(err)
		? err.message || (err as NodeJS.ErrnoException).code || err.name
		: String(err);
	const line = text.replace(/\s+/g, " ").trim();
	return line.length > MAX_ERROR_LENGTH ? `${line.slice(0, MAX_ERROR_LENGTH - 1)}…` : line;
}

export const nonEmpty = (value: unknown): string | undefined =>
	typeof value === "string" && value !== "" ? value : undefined;

/** The endpoint as a URL; one without a scheme (`host:port`) gets `defaultScheme`. */
export function parseEndpoint(endpoint: string, defaultScheme: string): URL {
	const withScheme = /^[a-z][a-z\d+.-]*:\/\//i.test(endpoint)
		? endpoint
		: `${defaultScheme}://${endpoint}`;
	try {
		return new URL(withScheme);
	} catch {
		throw new Error(`invalid endpoint '${endpoint}'`);
	}
}

/**
 * The endpoint without its `user:password@`, and the credentials: those of the URL, else
 * config.username (or config.user) and config.password. Drivers disagree on credentials in URLs,
 * so each checker hands them over the way its driver reads them.
 */
export function splitCredentials(
	target: CheckTarget,
	defaultScheme: string
): { url: URL; user?: string; password?: string } {
	const url = parseEndpoint(target.endpoint, defaultScheme);
	const user =
		decodeURIComponent(url.username) ||
		nonEmpty(target.config.username) ||
		nonEmpty(target.config.user);
	const password = decodeURIComponent(url.password) || nonEmpty(target.config.password);
	url.username = "";
	url.password = "";
	return { url, user: user || undefined, password: password || undefined };
}

/** A local path from `scheme:///abs/path` (or `scheme://rel/path`) or from a bare path. */
export function localPath(endpoint: string, scheme: string): string {
	const prefix = `${scheme}://`;
	return endpoint.toLowerCase().startsWith(prefix)
		? decodeURIComponent(endpoint.slice(prefix.length))
		: endpoint;
}
