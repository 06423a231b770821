/**
 * Gives a service `this.store`. Services of one process that name the same store URL share one
 * connection (one SQLite handle, one Redis client), opened by the first to start and closed by
 * the last to stop, and one IdentityGuard (`this.storeIdentity`): while the store is not the
 * cluster's (services/shared/store/identity.ts), every write through `this.store` is refused.
 * A store with a server fails fast (services/shared/store/fail-fast.ts): each call waits at
 * most ISA_STORE_TIMEOUT, and once one got no answer every call is refused at once with 503
 * STORE_UNAVAILABLE until a probe gets an answer again.
 */
import type { RedisOptions } from "ioredis";
import type { LoggerInstance, Service, ServiceSchema } from "moleculer";
import { redisConnection } from "../services/shared/connections";
import { loadEnv, type RedisWait } from "../services/shared/env";
import { openStore, Store, type UnreadableHandler } from "../services/shared/store";
import { DOC_CHECKS } from "../services/shared/store/schemas";
import { validatingStore } from "../services/shared/store/validating";
import { failFastStore } from "../services/shared/store/fail-fast";
import { warnUnreadable } from "../services/shared/store/unreadable";
import { guardedStore, IdentityGuard } from "../services/shared/store/identity-guard";
import { identityMemory, inMemory } from "../services/shared/store/identity-memory";

interface SharedStore {
	store: Store;
	guard: IdentityGuard;
	users: number;
}

/** ms between two reads of the store's identity. */
export const IDENTITY_CHECK_INTERVAL = 1000;

/** ms between two pings of a store that went silent (fail-fast.ts). */
export const STORE_PROBE_INTERVAL = 250;

/**
 * Calls without an answer that make the store count as down: one. A store that answers in a
 * millisecond and was silent for a whole timeout, or whose connection is down, is down; the
 * probe finds it back within STORE_PROBE_INTERVAL if it was only a blip.
 */
export const STORE_FAILURES_TO_OPEN = 1;

const shared = new Map<string, SharedStore>();

function key(url: string, prefix: string): string {
	return `${prefix}\u0000${url}`;
}

/**
 * The shared store of `url`, opened on first use. Documents of collections with a schema are
 * checked on write and on read (services/shared/store/schemas.ts); what a read skips is logged
 * with its collection and id on `logger`, as is a database file whose mode was tightened, and
 * when the store goes silent and answers again. `connection`: Redis credentials and TLS
 * (services/shared/connections.ts); `timeout`: ms a call waits for an answer; `wait`: the
 * replicas a Redis write must reach (ISA_REDIS_WAIT_REPLICAS).
 */
export function acquireStore(
	url: string,
	prefix: string,
	logger?: LoggerInstance,
	connection?: RedisOptions,
	timeout = 2000,
	wait?: RedisWait
): Store {
	let entry = shared.get(key(url, prefix));
	if (!entry) {
		const onUnreadable: UnreadableHandler = logger
			? (collection, id, reason) =>
					logger.warn(`Skipped stored document ${collection}/${id}: ${reason}`)
			: warnUnreadable;
		const warn = logger ? (message: string) => logger.warn(message) : undefined;
		const backend = openStore(url, { prefix, onUnreadable, warn, connection, wait });
		// The embedded database answers at once or throws: there is no silence to wait out.
		const store = validatingStore(
			backend.kind === "sqlite"
				? backend
				: failFastStore(backend, {
						// A write's answer includes its wait for the replicas.
						timeout: timeout + (wait?.replicas ? wait.timeoutMs : 0),
						probeInterval: STORE_PROBE_INTERVAL,
						threshold: STORE_FAILURES_TO_OPEN,
						onChange: (open, reason) =>
							open
								? logger?.error(
										`The store is unavailable (${reason}): calls are refused at once until it answers again.`
									)
								: logger?.info("The store answers again.")
					}),
			DOC_CHECKS,
			onUnreadable
		);
		// The embedded database lives in the data directory that a file memory would live in:
		// they are lost and restored together, so remembering it beside would only refuse a
		// single node whose database was deleted to start afresh.
		const memory =
			store.kind === "sqlite"
				? inMemory()
				: identityMemory(`store\u0000${prefix}\u0000${url}`, warn);
		const guard = new IdentityGuard(store, memory, {
			interval: IDENTITY_CHECK_INTERVAL,
			logger: logger && {
				info: (m: string) => logger.info(m),
				error: (m: string) => logger.error(m)
			}
		});
		guard.start();
		entry = { store: guardedStore(store, guard), guard, users: 0 };
		shared.set(key(url, prefix), entry);
	}
	entry.users++;
	return entry.store;
}

export async function releaseStore(url: string, prefix: string): Promise<void> {
	const entry = shared.get(key(url, prefix));
	if (!entry || --entry.users > 0) return;
	shared.delete(key(url, prefix));
	entry.guard.stop();
	await entry.store.close();
}

/** The identity guard of the shared store of `url` (acquired, not yet released). */
export function storeIdentity(url: string, prefix: string): IdentityGuard {
	const entry = shared.get(key(url, prefix));
	if (!entry) throw new Error(`The store ${prefix} is not open in this process.`);
	return entry.guard;
}

export interface StoreSettings {
	/** Settings Moleculer leaves out of the service's description on the bus. */
	$secureSettings?: string[];
	/** `redis://…` or a path to the embedded database. */
	store: string;
	/** Key prefix in Redis, so that several clusters can share one server. */
	storePrefix: string;
	/** ms a store call waits for an answer (ISA_STORE_TIMEOUT). */
	storeTimeout: number;
}

interface StoreThis extends Service<StoreSettings> {
	store: Store;
	storeIdentity: IdentityGuard;
}

export default function StoreMixin(): Partial<ServiceSchema> {
	const env = loadEnv();
	const mixin: Partial<ServiceSchema<StoreSettings, StoreThis>> = {
		settings: {
			// A redis://user:password@ URL stays out of the service descriptions every node sends.
			$secureSettings: ["store"],
			store: env.store,
			storePrefix: env.namespace || "isa",
			storeTimeout: env.storeTimeout
		},
		async started(this: StoreThis) {
			this.store = acquireStore(
				this.settings.store,
				this.settings.storePrefix,
				this.broker.getLogger("store"),
				redisConnection(env.redis),
				this.settings.storeTimeout,
				env.redisWait
			);
			this.storeIdentity = storeIdentity(this.settings.store, this.settings.storePrefix);
			// Services start knowing whether the store is theirs (a store that cannot be read
			// now is decided at the next check).
			await this.storeIdentity.verify();
		},
		async stopped(this: StoreThis) {
			await releaseStore(this.settings.store, this.settings.storePrefix);
		}
	};
	return mixin as Partial<ServiceSchema>;
}
