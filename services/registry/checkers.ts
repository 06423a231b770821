/**
 * Health checkers of the unified resource gateway, one per resource type, pluggable the way
 * Moleculer's strategies are (src/strategies/index.js): `register` adds or replaces the checker
 * of a type, `resolve` finds one case-insensitively, and `runCheck` runs the one a target names.
 *
 * A check really talks to the thing (a connection and `SELECT 1`, a `PING`, a GET of the health
 * endpoint) and never throws: whatever goes wrong becomes `{ ok: false, error }`, one line that
 * says what failed, with any credential of the target masked, since the registry stores and
 * shows it. Everything a check opens is closed when it ends, also when it ran out of time.
 */
import { AsyncLocalStorage } from "async_hooks";
import diagnostics from "diagnostics_channel";
import fs from "fs";
import net from "net";
import { DuckDBInstance } from "@duckdb/node-api";
import Redis from "ioredis";
import { Errors } from "moleculer";
import { connect as natsConnect, NatsError } from "nats";
import neo4j from "neo4j-driver";
import { Client as PgClient } from "pg";
import { Agent, request } from "undici";
import { formatSize, parseSize } from "../shared/units";
import { collectSecrets, redactText } from "./secrets";

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
function isError(value: unknown): value is Error {
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

const nonEmpty = (value: unknown): string | undefined =>
	typeof value === "string" && value !== "" ? value : undefined;

/** The endpoint as a URL; one without a scheme (`host:port`) gets `defaultScheme`. */
function parseEndpoint(endpoint: string, defaultScheme: string): URL {
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
function splitCredentials(
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
function localPath(endpoint: string, scheme: string): string {
	const prefix = `${scheme}://`;
	return endpoint.toLowerCase().startsWith(prefix)
		? decodeURIComponent(endpoint.slice(prefix.length))
		: endpoint;
}

/** A real connection and `SELECT 1`. */
export class PostgresChecker extends ProbeChecker {
	protected async probe(target: CheckTarget, scope: Scope): Promise<void> {
		const { url, user, password } = splitCredentials(target, "postgres");
		// pg lets the connection string override its user/password options: put them there.
		url.username = user ?? "";
		url.password = password ?? "";
		const client = new PgClient({
			connectionString: url.href,
			connectionTimeoutMillis: target.timeoutMs,
			query_timeout: target.timeoutMs
		});
		// A failure after connecting is also an 'error' event; unheard, it would crash the process.
		client.on("error", () => undefined);
		scope.onClose(() => client.end());
		scope.step = `connect to ${url.host}`;
		await client.connect();
		scope.step = "SELECT 1";
		await client.query("SELECT 1");
	}
}

/** `PING`, on a connection that neither retries nor queues. */
export class RedisChecker extends ProbeChecker {
	protected async probe(target: CheckTarget, scope: Scope): Promise<void> {
		const { url, user, password } = splitCredentials(target, "redis");
		const client = new Redis(url.href, {
			username: user,
			password,
			lazyConnect: true,
			connectTimeout: target.timeoutMs,
			commandTimeout: target.timeoutMs,
			maxRetriesPerRequest: 0,
			retryStrategy: () => null,
			enableOfflineQueue: false
		});
		// connect() only says "Connection is closed."; the 'error' event says why.
		let cause: Error | undefined;
		client.on("error", (err: Error) => {
			cause ??= err;
		});
		scope.onClose(() => client.disconnect());
		scope.step = `connect to ${url.host}`;
		try {
			await client.connect();
		} catch (err) {
			throw cause ?? err;
		}
		scope.step = "PING";
		const reply = await client.ping();
		if (reply !== "PONG") throw new Error(`PING answered '${reply}'`);
	}
}

/** Connect and flush (a round trip to the server), credentials from the URL or config. */
export class NatsChecker extends ProbeChecker {
	protected async probe(target: CheckTarget, scope: Scope): Promise<void> {
		const { url, user, password } = splitCredentials(target, "nats");
		scope.step = `connect to ${url.host}`;
		try {
			const nc = await natsConnect({
				servers: url.href,
				user,
				pass: password,
				token: nonEmpty(target.config.token),
				timeout: target.timeoutMs,
				reconnect: false,
				ignoreClusterUpdates: true
			});
			scope.onClose(() => nc.close());
			scope.step = "flush";
			await nc.flush();
		} catch (err) {
			// nats.js reports bare codes ("CONNECTION_REFUSED"); say where, in Node's words.
			if (!(err instanceof NatsError)) throw err;
			throw new Error(
				err.code === "CONNECTION_REFUSED"
					? `connect ECONNREFUSED ${url.host}`
					: `${err.message} from ${url.host}`,
				{ cause: err }
			);
		}
	}
}

/** Any status in `expectStatus`, or else in [200, upTo). */
function statusRule(
	expect: number | number[] | undefined,
	upTo: 300 | 400
): { accepts(status: number): boolean; text: string } {
	if (expect !== undefined) {
		const list = [expect].flat();
		return { accepts: status => list.includes(status), text: list.join(" or ") };
	}
	return {
		accepts: status => status >= 200 && status < upTo,
		text: upTo === 300 ? "2xx" : "2xx or 3xx"
	};
}

/**
 * A GET of endpoint + path, not following redirects: by default any 2xx or 3xx is healthy. It
 * uses its own connection pool, destroyed afterwards, so that no keep-alive socket outlives it.
 * Also the checker of registered external services (their health path as `path`).
 */
export class HttpChecker extends ProbeChecker {
	/** Statuses below this are healthy when the target gives no `expectStatus`. */
	protected readonly healthyBelow: 300 | 400 = 400;

	/** No path: the endpoint URL as written (an http resource may name its health URL whole). */
	protected path(target: CheckTarget): string {
		return target.path ?? "";
	}

	protected async probe(target: CheckTarget, scope: Scope): Promise<void> {
		const { url, user, password } = splitCredentials(target, "http");
		const given = this.path(target);
		const path = given && !given.startsWith("/") ? `/${given}` : given;
		const base = path ? url.href.replace(/\/+$/, "") : url.href;
		const rule = statusRule(target.expectStatus, this.healthyBelow);
		const agent = new Agent({
			connect: { timeout: target.timeoutMs },
			headersTimeout: target.timeoutMs,
			bodyTimeout: target.timeoutMs
		});
		scope.onClose(() => agent.destroy());
		const headers: Record<string, string> = {};
		if (user !== undefined || password !== undefined) {
			const basic = Buffer.from(`${user ?? ""}:${password ?? ""}`).toString("base64");
			headers.authorization = `Basic ${basic}`;
		}
		const shown = path || url.pathname;
		scope.step = `GET ${shown}`;
		const res = await request(base + path, {
			dispatcher: agent,
			headers
		});
		// Read (at most undici's dump limit of) the body, so that closing aborts no live stream.
		await res.body.dump();
		if (!rule.accepts(res.statusCode)) {
			throw new Error(`HTTP ${res.statusCode} from ${shown} (expected ${rule.text})`);
		}
	}
}

/** Qdrant: its readiness endpoint answers 2xx once collections are loaded. */
export class VectorDbChecker extends HttpChecker {
	protected readonly healthyBelow = 300;

	protected path(): string {
		return "/readyz";
	}
}

/** S3/MinIO: MinIO's liveness endpoint, or config.healthPath for other S3 servers. */
export class ObjectStoreChecker extends HttpChecker {
	protected readonly healthyBelow = 300;

	protected path(target: CheckTarget): string {
		return nonEmpty(target.config.healthPath) ?? "/minio/health/live";
	}
}

/** A TCP connect to `tcp://host:port` or `host:port`, closed at once. */
export class TcpChecker extends ProbeChecker {
	protected async probe(target: CheckTarget, scope: Scope): Promise<void> {
		const url = parseEndpoint(target.endpoint, "tcp");
		if (!url.port) throw new Error(`endpoint '${target.endpoint}' has no port`);
		scope.step = `connect to ${url.host}`;
		await new Promise<void>((resolve, reject) => {
			const socket = net.connect({
				host: url.hostname.replace(/^\[(.*)\]$/, "$1"),
				port: Number(url.port)
			});
			scope.onClose(() => socket.destroy());
			socket.once("connect", resolve);
			socket.once("error", reject);
		});
	}
}

/**
 * `driver.verifyConnectivity()` over bolt:// or neo4j://, credentials from the URL or
 * config.username/password (none: the server must allow unauthenticated access).
 */
export class Neo4jChecker extends ProbeChecker {
	protected async probe(target: CheckTarget, scope: Scope): Promise<void> {
		const { url, user, password } = splitCredentials(target, "bolt");
		const driver = neo4j.driver(
			url.href,
			user === undefined ? undefined : neo4j.auth.basic(user, password ?? ""),
			{ connectionTimeout: target.timeoutMs, connectionAcquisitionTimeout: target.timeoutMs }
		);
		scope.onClose(() => driver.close());
		scope.step = `verifyConnectivity on ${url.host}`;
		try {
			await driver.verifyConnectivity();
		} catch (err) {
			throw neo4jReason(err);
		}
	}
}

/**
 * The driver wraps the socket error twice: in a routing error (neo4j://) whose cause holds it,
 * and in a paragraph of advice that ends "Caused by: connect ECONNREFUSED ...". Keep that end.
 */
function neo4jReason(err: unknown): unknown {
	const inner = isError(err) && isError(err.cause) ? err.cause : err;
	if (!isError(inner)) return inner;
	const marker = "Caused by: ";
	const at = inner.message.lastIndexOf(marker);
	return at < 0 ? inner : new Error(inner.message.slice(at + marker.length));
}

/**
 * The database file opened read-only and `SELECT 1`. DuckDB lets one process write a file at a
 * time, so a file held open for writing by another process is reported as unhealthy (locked).
 */
export class DuckDbChecker extends ProbeChecker {
	protected async probe(target: CheckTarget, scope: Scope): Promise<void> {
		const file = localPath(target.endpoint, "duckdb");
		scope.step = `open ${file}`;
		const instance = await DuckDBInstance.create(file, { access_mode: "READ_ONLY" });
		scope.onClose(() => instance.closeSync());
		const connection = await instance.connect();
		scope.onClose(() => connection.closeSync());
		scope.step = "SELECT 1";
		await connection.run("SELECT 1");
	}
}

/**
 * A directory (a path or `file:///path`) that exists, is writable and has at least
 * config.minFreeBytes (bytes or "10Gi") free for unprivileged users.
 */
export class FilesystemChecker extends ProbeChecker {
	protected async probe(target: CheckTarget, scope: Scope): Promise<void> {
		const dir = localPath(target.endpoint, "file");
		const minFree = parseSize(
			(target.config.minFreeBytes as number | string | undefined) ?? 0,
			"minFreeBytes"
		);
		scope.step = `stat ${dir}`;
		const stat = await fs.promises.stat(dir).catch((err: NodeJS.ErrnoException) => {
			throw err.code === "ENOENT" ? new Error(`${dir} does not exist`) : err;
		});
		if (!stat.isDirectory()) throw new Error(`${dir} is not a directory`);
		scope.step = `access ${dir}`;
		await fs.promises.access(dir, fs.constants.W_OK).catch((err: NodeJS.ErrnoException) => {
			throw new Error(`${dir} is not writable (${err.code ?? err.message})`);
		});
		scope.step = `statfs ${dir}`;
		const space = await fs.promises.statfs(dir);
		const free = space.bavail * space.bsize;
		if (free < minFree) {
			throw new Error(
				`${dir} has ${formatSize(free)} free, less than minFreeBytes ${formatSize(minFree)}`
			);
		}
	}
}

/** A checker: constructed once per check, so it may keep per-check state in fields. */
export type CheckerClass = new () => HealthChecker;

const checkers = new Map<string, CheckerClass>([
	["postgres", PostgresChecker],
	["redis", RedisChecker],
	["nats", NatsChecker],
	["http", HttpChecker],
	["tcp", TcpChecker],
	["neo4j", Neo4jChecker],
	["vector_db", VectorDbChecker],
	["object_store", ObjectStoreChecker],
	["duckdb", DuckDbChecker],
	["filesystem", FilesystemChecker]
]);

/** Adds the checker of a type, or replaces the one of that name (case-insensitive). */
export function register(type: string, cls: CheckerClass): void {
	checkers.set(type.toLowerCase(), cls);
}

/** The checker registered for `type` (case-insensitive); throws for an unknown type. */
export function resolve(type: string): CheckerClass {
	const cls = checkers.get(type.toLowerCase());
	if (!cls) {
		throw new Errors.BrokerOptionsError(`Invalid health checker type '${type}'.`, { type });
	}
	return cls;
}

/** Checks a target with the checker of its type; an unknown type is a failed check too. */
export async function runCheck(target: CheckTarget): Promise<CheckResult> {
	const Checker = checkers.get(target.type.toLowerCase());
	if (!Checker) {
		return { ok: false, latencyMs: 0, error: `no health checker for type '${target.type}'` };
	}
	return new Checker().check(target);
}
