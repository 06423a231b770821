/**
 * Settings that follow config keys (services/config.service.ts) while the service runs:
 *
 *   mixins: [ConfigMixin({ reconcileInterval: "scheduler.reconcileInterval" })],
 *   settings: { reconcileInterval: 5000 },
 *   methods: { configChanged(name, value, old) { ... } }
 *
 * The map names each setting and the key it follows; the setting's own value is its default,
 * used while the key is not set and again once it is deleted. A factory argument rather than a
 * `settings.$config` map, so that which settings are live is visible where the mixin is named.
 *
 * Values set before the service starts are in `this.settings` before its own `started()` runs
 * (mixins' hooks run first); later ones arrive with the `config.changed` broadcast, and the
 * optional `configChanged(name, value, old)` method is called for each setting that changed.
 * The config service may be on another node, late, or missing: start waits `waitTimeout` for
 * it and then goes on with the defaults. Every value carries its key's version, which only
 * grows, so a late event or an old read never undoes a newer value; the keys are read again
 * whenever the config service (re)appears, after a transporter reconnect, and every
 * `resyncInterval` — so an event missed on the way settles within that time at worst.
 */
import type { Context, Service, ServiceBroker, ServiceSchema } from "moleculer";
import { isDeepStrictEqual } from "util";
import { CONFIG_KEY_PATTERN, ConfigChange } from "../services/config.service";
import { EVENTS } from "../services/shared/events";

const CONFIG_SERVICE = "config";
const SNAPSHOT = `${CONFIG_SERVICE}.snapshot`;

export interface ConfigMixinOptions {
	/** How long start waits for the config service before going on with the defaults (ms). */
	waitTimeout?: number;
	/** All keys are read again this often (ms; 0: never): the bound on a missed event's effect. */
	resyncInterval?: number;
}

/** What a service with ConfigMixin may define to react to a changed setting. */
export interface ConfigChangedHook {
	configChanged?(name: string, value: unknown, old: unknown): void | Promise<void>;
}

interface ConfigState {
	/** Key → the settings that follow it. */
	keys: Map<string, string[]>;
	defaults: Map<string, unknown>;
	/** The newest version applied per key (0: none yet). */
	versions: Map<string, number>;
	/** Whether the registry listed the config service when last looked at. */
	up: boolean;
	/** This node's INFO went out after the service's listener was registered. */
	announced: boolean;
	/** After start: from then on, changes call `configChanged`. */
	running: boolean;
	/** A failed read was logged; the next failures stay quiet until one succeeds. */
	failing: boolean;
	timer: NodeJS.Timeout | null;
}

interface ConfigThis extends Service, ConfigChangedHook {
	$config: ConfigState;
	configResync(): Promise<void>;
	configApply(change: ConfigChange): Promise<void>;
}

/** Moleculer's discoverer, which its typings leave out of the registry. */
function discoverer(broker: ServiceBroker): { sendLocalNodeInfo(): Promise<void> } {
	return (broker.registry as unknown as { discoverer: ReturnType<typeof discoverer> }).discoverer;
}

/** "null", "array" or the `typeof`: a value must keep its default's kind. */
function kind(value: unknown): string {
	return value === null ? "null" : Array.isArray(value) ? "array" : typeof value;
}

export default function ConfigMixin(
	follow: Record<string, string>,
	opts: ConfigMixinOptions = {}
): Partial<ServiceSchema> {
	const { waitTimeout = 5000, resyncInterval = 30_000 } = opts;
	if (Object.keys(follow).length === 0)
		throw new TypeError("ConfigMixin: name at least one setting and the key it follows.");
	const keys = new Map<string, string[]>();
	for (const [name, key] of Object.entries(follow)) {
		if (!CONFIG_KEY_PATTERN.test(key))
			throw new TypeError(
				`ConfigMixin: '${key}' (for setting '${name}') is not a config key ` +
					`(${CONFIG_KEY_PATTERN}).`
			);
		keys.set(key, [...(keys.get(key) ?? []), name]);
	}

	const mixin: Partial<ServiceSchema<Service["settings"], ConfigThis>> = {
		events: {
			[EVENTS.configChanged]: {
				handler(this: ConfigThis, ctx: Context<ConfigChange>) {
					return this.configApply(ctx.params);
				}
			},
			async "$services.changed"(this: ConfigThis, ctx: Context<{ localService: boolean }>) {
				const state = this.$config;
				const up = this.broker.registry.actions.isAvailable(SNAPSHOT);
				const appeared = up && !state.up;
				state.up = up;
				if (ctx.params.localService && !state.announced) {
					// This service's listener is registered now, but other nodes hear of it only
					// with Moleculer's next INFO, debounced by a second, and a change broadcast
					// meanwhile passes this node by. Sending that INFO now orders it before the
					// read below on the transporter: the config node answers already knowing us.
					state.announced = true;
					await discoverer(this.broker).sendLocalNodeInfo();
					return this.configResync();
				}
				if (appeared) return this.configResync();
			},
			"$transporter.connected"(this: ConfigThis, ctx: Context<{ wasReconnect: boolean }>) {
				// Broadcasts sent while the connection was down are lost.
				if (ctx.params.wasReconnect) return this.configResync();
			}
		},

		methods: {
			/** Reads every followed key from the config service and applies what is newer. */
			async configResync(this: ConfigThis) {
				if (!this.broker.registry.actions.isAvailable(SNAPSHOT)) return;
				let states: ConfigChange[];
				try {
					states = await this.broker.call(SNAPSHOT, {
						keys: [...this.$config.keys.keys()]
					});
				} catch (err) {
					if (!this.$config.failing)
						this.logger.warn("Could not read the config keys; will try again:", err);
					this.$config.failing = true;
					return;
				}
				this.$config.failing = false;
				for (const state of states) await this.configApply(state);
			},

			/** Applies a key's state if it is newer than what the settings hold. */
			async configApply(this: ConfigThis, change: ConfigChange) {
				const names = this.$config.keys.get(change.key);
				if (!names || change.version <= (this.$config.versions.get(change.key) ?? 0))
					return;
				this.$config.versions.set(change.key, change.version);
				for (const name of names) {
					const fallback = this.$config.defaults.get(name);
					const value = change.deleted ? fallback : change.value;
					if (fallback != null && kind(value) !== kind(fallback)) {
						this.logger.warn(
							`Config key '${change.key}' version ${change.version} is a ` +
								`${kind(value)}, but setting '${name}' takes a ${kind(fallback)}; ` +
								`keeping ${JSON.stringify(this.settings[name])}.`
						);
						continue;
					}
					const old = this.settings[name];
					if (isDeepStrictEqual(old, value)) continue;
					this.settings[name] = value;
					this.logger.info(
						`Setting '${name}' follows config key '${change.key}' ` +
							(change.deleted
								? "(deleted): back to its default."
								: `at version ${change.version}.`)
					);
					if (this.$config.running && this.configChanged)
						try {
							await this.configChanged(name, value, old);
						} catch (err) {
							this.logger.error(`configChanged('${name}') failed:`, err);
						}
				}
			}
		},

		created(this: ConfigThis) {
			this.$config = {
				keys,
				defaults: new Map(Object.keys(follow).map(name => [name, this.settings[name]])),
				versions: new Map(),
				up: false,
				announced: false,
				running: false,
				failing: false,
				timer: null
			};
		},

		async started(this: ConfigThis) {
			const state = this.$config;
			try {
				await this.waitForServices(CONFIG_SERVICE, waitTimeout, 100);
				state.up = true;
			} catch {
				this.logger.warn(
					`The config service did not appear within ${waitTimeout} ms: ` +
						`${Object.keys(follow).join(", ")} keep their defaults until it does.`
				);
			}
			await this.configResync();
			state.running = true;
			if (state.timer) clearInterval(state.timer);
			if (resyncInterval > 0) {
				state.timer = setInterval(() => void this.configResync(), resyncInterval);
				state.timer.unref();
			}
		},

		stopped(this: ConfigThis) {
			if (this.$config.timer) clearInterval(this.$config.timer);
			this.$config.timer = null;
			this.$config.running = false;
			this.$config.announced = false;
		}
	};
	return mixin as Partial<ServiceSchema>;
}
