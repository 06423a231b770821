/**
 * Gives a service `this.store`. Services of one process that name the same store URL share one
 * connection (one SQLite handle, one Redis client), opened by the first to start and closed by
 * the last to stop.
 */
import type { Service, ServiceSchema } from "moleculer";
import { loadEnv } from "../services/shared/env";
import { openStore, Store } from "../services/shared/store";

interface SharedStore {
	store: Store;
	users: number;
}

const shared = new Map<string, SharedStore>();

function key(url: string, prefix: string): string {
	return `${prefix}\u0000${url}`;
}

export function acquireStore(url: string, prefix: string, warn?: (message: string) => void): Store {
	let entry = shared.get(key(url, prefix));
	if (!entry) {
		entry = { store: openStore(url, { prefix, warn }), users: 0 };
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
			this.store = acquireStore(this.settings.store, this.settings.storePrefix, msg =>
				this.logger.warn(msg)
			);
		},
		async stopped(this: StoreThis) {
			await releaseStore(this.settings.store, this.settings.storePrefix);
		}
	};
	return mixin as Partial<ServiceSchema>;
}
