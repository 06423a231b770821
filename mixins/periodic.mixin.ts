/**
 * Periodic work for a service: `this.every(name, ms, fn)` runs `fn` again `ms` after the last
 * run finished (never overlapping itself), replaces an older timer of the same name, and every
 * timer is cleared when the service stops. Timers are unref()ed so they never hold a process
 * open (the same care as nats.js heartbeats and moleculer-web's memory store).
 */
import type { Service, ServiceSchema } from "moleculer";

export interface PeriodicMethods {
	every(name: string, ms: number, fn: () => Promise<void> | void): void;
	cancel(name: string): void;
}

interface PeriodicThis extends Service, PeriodicMethods {
	$timers: Map<string, NodeJS.Timeout>;
}

export default function PeriodicMixin(): Partial<ServiceSchema> {
	const mixin: Partial<ServiceSchema<Service["settings"], PeriodicThis>> = {
		methods: {
			every(this: PeriodicThis, name: string, ms: number, fn: () => Promise<void> | void) {
				this.cancel(name);
				const tick = async () => {
					try {
						await fn();
					} catch (err) {
						this.logger.warn(`Periodic task '${name}' failed:`, err);
					}
					// cancel() may have run while fn was in flight: only reschedule if still ours.
					if (this.$timers.get(name) === timer) {
						timer = setTimeout(tick, ms);
						timer.unref();
						this.$timers.set(name, timer);
					}
				};
				let timer = setTimeout(tick, ms);
				timer.unref();
				this.$timers.set(name, timer);
			},
			cancel(this: PeriodicThis, name: string) {
				const timer = this.$timers.get(name);
				if (timer) clearTimeout(timer);
				this.$timers.delete(name);
			}
		},
		created(this: PeriodicThis) {
			this.$timers = new Map();
		},
		stopped(this: PeriodicThis) {
			for (const name of [...this.$timers.keys()]) this.cancel(name);
		}
	};
	return mixin as Partial<ServiceSchema>;
}
