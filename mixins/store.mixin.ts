/**
 * Gives a service `this.store`. Services of one process that name the same store URL share one
 * connection (one SQLite handle, one Redis client), opened by the first to start and closed by
 * the last to stop.
 */
import type { LoggerInstance, Service, ServiceSchema } from "moleculer";
import { loadEnv } from "../services/shared/env";
import { openStore, Store, type UnreadableHandler } from "../services/shared/store";
import { DOC_CHECKS } from "../services/shared/store/schemas";
import { validatingStore } from "../services/shared/store/validating";
import { warnUnreadable } from "../services/shared/store/unreadable";

interface SharedStore {
	store: Store;
	users: number;
}

const shared = new Map<string, SharedStore>();

function key(url: string, prefix: string): string {
	return `${prefix}\u0000${url}`;
}

/**
 * The shared store of `url`, opened on first use. Documents of collections with a schema are
 * checked on write and on read (services/shared/store/schemas.ts); what a read skips is logged
 * with its collection and id on `logger`, as is a database file whose mode was tightened.
 */
export function acquireStore(url: string, prefix: string, logger?: LoggerInstance): Store {
	let entry = shared.get(key(url, prefix));
	if (!entry) {
		const onUnreadable: UnreadableHandler = logger
			? (collection, id, reason) =>
					logger.warn(`Skipped stored document ${collection}/${id}: ${reason}`)
			: warnUnreadable;
		const warn = logger ? (message: string) => logger.warn(message) : undefined;
		const store = validatingStore(
			openStore(url, { prefix, onUnreadable, warn }),
			DOC_CHECKS,
			onUnreadable
		);
		entry = { store, users: 0 };
		shared.set(key(url, prefix), entry);
	}
	entry.users++;
	return entry.store;
}

export async function releaseStore(url: string, prefix: string): Promise<void> {
	const entry = shared.get(key(url, prefix));
	if (!entry || --entry.users > 0) return;
	shared.delete(key(url, prefix));
	await entry.store.close();
}

export interface StoreSettings {
	/** `redis://…` or a path to the embedded database. */
	store: string;
	/** Key prefix in Redis, so that several clusters can share one server. */
	storePrefix: string;
}

interface StoreThis extends Service<StoreSettings> {
	store: Store;
}

export default function StoreMixin(): Partial<ServiceSchema> {
	const env = loadEnv();
	const mixin: Partial<ServiceSchema<StoreSettings, StoreThis>> = {
		settings: {
			store: env.store,
			storePrefix: env.namespace || "isa"
		},
		started(this: StoreThis) {
			this.store = acquireStore(
				this.settings.store,
				this.settings.storePrefix,
				this.broker.getLogger("store")
			);
		},
		async stopped(this: StoreThis) {
			await releaseStore(this.settings.store, this.settings.storePrefix);
		}
	};
	return mixin as Partial<ServiceSchema>;
}
