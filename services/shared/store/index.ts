/**
 * Store backends by name, pluggable the way Moleculer's strategies are (src/strategies/index.js):
 * `register` adds or replaces a backend, `resolve` finds one case-insensitively, and `openStore`
 * picks one from the store URL that configuration carries.
 *
 * A URL with a scheme (`name://…`) names its backend, so a registered backend is reachable from
 * configuration and a mistyped scheme fails loudly instead of becoming a strange file name.
 * Anything without a scheme is a path (or ":memory:") for the embedded SQLite database.
 */
import type { RedisOptions } from "ioredis";
import { Errors } from "moleculer";
import { RedisStore } from "./redis";
import { isRedisUrl } from "./redis-target";
import { SqliteStore } from "./sqlite";
import type { Store } from "./store";
import type { UnreadableHandler } from "./unreadable";
import type { RedisWait } from "../env";

export * from "./store";
export { RedisStore, persistenceWarning } from "./redis";
export type { RedisStoreOptions } from "./redis";
export { SqliteStore } from "./sqlite";
export type { UnreadableHandler } from "./unreadable";

export interface StoreOptions {
	/** Key prefix, for backends that share a server between clusters. */
	prefix?: string;
	/** Where the embedded backend reports a database file whose mode it tightened. */
	warn?: (message: string) => void;
	/** Told of each document a list skips because it does not parse (default: a warning). */
	onUnreadable?: UnreadableHandler;
	/** Credentials and TLS of a Redis connection (services/shared/connections.ts). */
	connection?: RedisOptions;
	/** The replicas a Redis write must reach before it is answered (RedisStore). */
	wait?: RedisWait;
}

/** A backend: constructed with the store URL (or path) and the options of `openStore`. */
export type StoreClass = new (url: string, opts?: StoreOptions) => Store;

const backends = new Map<string, StoreClass>([
	["redis", RedisStore],
	["sqlite", SqliteStore]
]);

/** Adds a backend, or replaces the one of that name (case-insensitive). */
export function register(name: string, cls: StoreClass): void {
	backends.set(name.toLowerCase(), cls);
}

/** The backend registered under `name` (case-insensitive); throws for an unknown name. */
export function resolve(name: string): StoreClass {
	const cls = backends.get(name.toLowerCase());
	if (!cls) throw new Errors.BrokerOptionsError(`Invalid store type '${name}'.`, { type: name });
	return cls;
}

/**
 * `redis://…`, `rediss://…`, `redis-sentinel://…`: Redis; `<registered name>://…`: that backend;
 * else a SQLite path.
 */
export function openStore(url: string, opts: StoreOptions = {}): Store {
	const scheme = /^([a-z][a-z\d+.-]*):\/\//i.exec(url)?.[1].toLowerCase();
	const Backend = resolve(scheme === undefined ? "sqlite" : isRedisUrl(url) ? "redis" : scheme);
	return new Backend(url, opts);
}
