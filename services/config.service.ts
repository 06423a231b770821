/**
 * config: cluster-wide settings as versioned keys (`/api/v1/config`). Every write bumps the key's
 * version; a write or delete that names a version is a compare-and-set. Each change is broadcast
 * as `config.changed`, so that services with ConfigMixin (mixins/config.mixin.ts) on any node
 * follow it while they run.
 *
 * A deleted key stays in the store as a tombstone, so a key's versions only ever grow: a client
 * holding version 3 from before a delete cannot overwrite a key re-created since (it would be back
 * at version 1 otherwise), and ConfigMixin can order events and reads by version alone.
 */
import type { Context, Service, ServiceSchema } from "moleculer";
import StoreMixin from "../mixins/store.mixin";
import { COLLECTIONS } from "./shared/collections";
import { EVENTS } from "./shared/events";
import { ConflictError, InvalidInputError, NotFoundError } from "./shared/errors";
import type { Store } from "./shared/store";
import type { Principal } from "./shared/principal";
import { page, pageParams } from "./shared/params";

/**
 * Keys are dotted names (`scheduler.reconcileInterval`). No `/`: a key is one segment of the URL
 * path `/api/v1/config/:key`.
 */
export const CONFIG_KEY_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9._-]{0,199}$/;

/** A live key, as the API shows it. */
export interface ConfigRecord {
	key: string;
	value: unknown;
	version: number;
	updatedAt: number;
	/** The token's `sub`, or `node:<id>` for a call from inside the cluster. */
	updatedBy: string;
}

/** The payload of `config.changed`, and what `snapshot` answers per key. */
export interface ConfigChange {
	key: string;
	/** Absent when deleted. */
	value?: unknown;
	/** 0 for a key that never existed. */
	version: number;
	deleted: boolean;
}

/** What the store holds per key. */
interface ConfigDoc {
	value?: unknown;
	deleted?: true;
	updatedAt: number;
	updatedBy: string;
}

interface ConfigSettings {
	/** Largest value, in bytes of its JSON. */
	maxValueBytes: number;
}

interface Meta {
	user?: Principal;
}

interface ConfigThis extends Service<ConfigSettings> {
	store: Store;
	current(key: string): Promise<{ doc: ConfigDoc; version: number } | null>;
	announce(change: ConfigChange): Promise<void>;
}

const keyParam = { type: "string", pattern: CONFIG_KEY_PATTERN };
const versionParam = { type: "number", integer: true, min: 0, optional: true, convert: true };

function actor(ctx: Context<unknown, Meta>): string {
	return ctx.meta.user?.sub ?? `node:${ctx.nodeID}`;
}

function view(key: string, doc: ConfigDoc, version: number): ConfigRecord {
	return { key, value: doc.value, version, updatedAt: doc.updatedAt, updatedBy: doc.updatedBy };
}

function conflict(key: string, expected: number, current: number): ConflictError {
	return new ConflictError(
		current === 0
			? `Config key '${key}' does not exist, not at version ${expected}; read it again.`
			: `Config key '${key}' is at version ${current}, not ${expected}; read it again.`,
		{ key, expected, version: current }
	);
}

const ConfigService: ServiceSchema<ConfigSettings, ConfigThis> = {
	name: "config",
	mixins: [StoreMixin()],

	settings: {
		maxValueBytes: 64 * 1024
	},

	actions: {
		/** Every live key with its value and version, in key order; `prefix` narrows them. */
		list: {
			idempotent: true,
			access: "read",
			params: {
				$$strict: true,
				prefix: { type: "string", max: 200, optional: true },
				...pageParams(10000)
			},
			async handler(
				this: ConfigThis,
				ctx: Context<{ prefix?: string; limit?: number; offset?: number }>
			): Promise<{ items: ConfigRecord[]; total: number }> {
				const { prefix = "" } = ctx.params;
				const live = (await this.store.list<ConfigDoc>(COLLECTIONS.config)).filter(
					d => !d.value.deleted && d.id.startsWith(prefix)
				);
				const { items, total } = page(live, ctx.params);
				return { items: items.map(d => view(d.id, d.value, d.version)), total };
			}
		},

		/** One key; 404 when it does not exist. */
		get: {
			idempotent: true,
			access: "read",
			params: { $$strict: true, key: keyParam },
			async handler(this: ConfigThis, ctx: Context<{ key: string }>): Promise<ConfigRecord> {
				const cur = await this.current(ctx.params.key);
				if (!cur) throw new NotFoundError("Config key", ctx.params.key);
				return view(ctx.params.key, cur.doc, cur.version);
			}
		},

		/**
		 * Sets a key to any JSON value. With `version`, only if the key is at that version
		 * (0: only if it does not exist), else 409 naming the current one.
		 */
		set: {
			idempotent: true,
			// Admin only: keys are cluster-wide, while an operator's token belongs to one tenant.
			access: "admin",
			params: {
				$$strict: true,
				key: keyParam,
				value: { type: "any", nullable: true },
				version: versionParam
			},
			async handler(
				this: ConfigThis,
				ctx: Context<{ key: string; value: unknown; version?: number }, Meta>
			): Promise<ConfigRecord> {
				const { key, value, version: expected } = ctx.params;
				const size = Buffer.byteLength(JSON.stringify(value));
				if (size > this.settings.maxValueBytes)
					throw new InvalidInputError(
						`The value of config key '${key}' is ${size} bytes as JSON; ` +
							`the limit is ${this.settings.maxValueBytes}.`,
						{ key, size, limit: this.settings.maxValueBytes }
					);
				const doc: ConfigDoc = { value, updatedAt: Date.now(), updatedBy: actor(ctx) };
				let version: number | null;
				if (expected === undefined) {
					version = await this.store.put(COLLECTIONS.config, key, doc);
				} else {
					// A tombstone's stored version is not the client's: to it, the key is at 0.
					const stored = await this.store.get<ConfigDoc>(COLLECTIONS.config, key);
					const current = stored && !stored.value.deleted ? stored.version : 0;
					if (current !== expected) throw conflict(key, expected, current);
					version = await this.store.cas(
						COLLECTIONS.config,
						key,
						doc,
						stored?.version ?? 0
					);
					if (version === null) {
						const now = await this.current(key);
						throw conflict(key, expected, now?.version ?? 0);
					}
				}
				this.logger.info(
					`Config key '${key}' set to version ${version} by ${doc.updatedBy}.`
				);
				await this.announce({ key, value, version, deleted: false });
				return view(key, doc, version);
			}
		},

		/** Deletes a key (with `version`: only at that one, else 409); 404 if it does not exist. */
		remove: {
			idempotent: true,
			access: "admin",
			params: { $$strict: true, key: keyParam, version: versionParam },
			async handler(
				this: ConfigThis,
				ctx: Context<{ key: string; version?: number }, Meta>
			): Promise<{ key: string; version: number; deleted: true }> {
				const { key, version: expected } = ctx.params;
				const stored = await this.store.get<ConfigDoc>(COLLECTIONS.config, key);
				if (!stored || stored.value.deleted) throw new NotFoundError("Config key", key);
				if (expected !== undefined && expected !== stored.version)
					throw conflict(key, expected, stored.version);
				const tombstone: ConfigDoc = {
					deleted: true,
					updatedAt: Date.now(),
					updatedBy: actor(ctx)
				};
				let version: number | null;
				if (expected === undefined) {
					version = await this.store.put(COLLECTIONS.config, key, tombstone);
				} else {
					version = await this.store.cas(COLLECTIONS.config, key, tombstone, expected);
					if (version === null) {
						const now = await this.current(key);
						if (!now) throw new NotFoundError("Config key", key);
						throw conflict(key, expected, now.version);
					}
				}
				this.logger.info(`Config key '${key}' deleted by ${tombstone.updatedBy}.`);
				await this.announce({ key, version, deleted: true });
				return { key, version, deleted: true };
			}
		},

		/**
		 * The state of the given keys, deleted and never-set ones included, with the versions
		 * ConfigMixin orders by. Not on the API: clients have `get` and `list`.
		 */
		snapshot: {
			idempotent: true,
			access: "read",
			params: {
				$$strict: true,
				keys: { type: "array", items: keyParam, min: 1, max: 1000 }
			},
			async handler(this: ConfigThis, ctx: Context<{ keys: string[] }>) {
				return Promise.all(
					ctx.params.keys.map(async (key): Promise<ConfigChange> => {
						const stored = await this.store.get<ConfigDoc>(COLLECTIONS.config, key);
						if (!stored) return { key, version: 0, deleted: true };
						if (stored.value.deleted)
							return { key, version: stored.version, deleted: true };
						return {
							key,
							value: stored.value.value,
							version: stored.version,
							deleted: false
						};
					})
				);
			}
		}
	},

	methods: {
		/** The live document of a key, or null when it never existed or was deleted. */
		async current(this: ConfigThis, key: string) {
			const stored = await this.store.get<ConfigDoc>(COLLECTIONS.config, key);
			return stored && !stored.value.deleted
				? { doc: stored.value, version: stored.version }
				: null;
		},

		/** A broadcast, not an emit: every instance of every following service must see it. */
		async announce(this: ConfigThis, change: ConfigChange) {
			await this.broker.broadcast(EVENTS.configChanged, change);
		}
	}
};

export default ConfigService;
