/**
 * The periodic health checking. Each tick looks at every target (targets.ts) and starts the
 * checks that are due, one at a time per target, for the targets this instance owns: several
 * registry instances share the checking, each target checked by one live instance (rendezvous
 * hashing, sharding.ts), and it moves when that instance leaves. A check's result goes through
 * the rise/fall state machine (health.ts) into the store, and a change of status is announced.
 * At most `maxChecks` checks run at once (ISA_QUEUE_HEALTH_CHECKS): when more are due, the
 * longest-waiting go first and the rest wait for a later tick, so that many slow targets hold
 * a bounded number of sockets and timers instead of piling up. Stopping waits for the checks in
 * flight, so that none writes to a store already closed.
 */
import type { LoggerInstance } from "moleculer";
import { EVENTS } from "../shared/events";
import type { Catalog } from "./catalog";
import { runCheck } from "./checkers";
import { nextHealth, publicHealth } from "./health";
import { collectSecrets, redactText, redactUrl } from "./secrets";
import { ownerOf } from "./sharding";
import type { Target } from "./targets";

export interface HealthLoopOptions {
	catalog: Pick<Catalog, "targets" | "health" | "putHealth">;
	/** This instance's nodeID. */
	nodeID: string;
	/** The nodeIDs of the live registry instances, this one included. */
	instances(): string[];
	broadcast(event: string, payload: Record<string, unknown>): void;
	logger: Pick<LoggerInstance, "info" | "warn">;
	/** Checks running at once, at most (default: no bound). */
	maxChecks?: number;
}

export class HealthLoop {
	/** Checks running now, by target key: stopping waits for them before the store closes. */
	private readonly inFlight = new Map<string, Promise<void>>();
	/** When each target's latest check started (ms since the epoch). */
	private readonly lastRun = new Map<string, number>();
	private stopping = false;

	constructor(private readonly opts: HealthLoopOptions) {}

	/** Starts the checks that are due and that this instance owns; does not wait for them. */
	async tick(): Promise<void> {
		const instances = this.opts.instances();
		const now = Date.now();
		const targets = await this.opts.catalog.targets();
		// stop() may have begun while the targets were read: start nothing new then.
		if (this.stopping) return;
		const due = targets.filter(
			t =>
				ownerOf(t.key, instances) === this.opts.nodeID &&
				!this.inFlight.has(t.key) &&
				now - (this.lastRun.get(t.key) ?? 0) >= t.interval
		);
		const room = (this.opts.maxChecks ?? Infinity) - this.inFlight.size;
		if (due.length > room)
			due.sort((a, b) => (this.lastRun.get(a.key) ?? 0) - (this.lastRun.get(b.key) ?? 0));
		for (const t of due.slice(0, Math.max(0, room))) {
			this.lastRun.set(t.key, now);
			const run = this.check(t)
				.catch(err =>
					this.opts.logger.warn(`Health check of ${t.kind} '${t.name}' failed:`, err)
				)
				.finally(() => this.inFlight.delete(t.key));
			this.inFlight.set(t.key, run);
		}
	}

	/** Checks one target, stores its next health, and announces a change of status. */
	private async check(t: Target): Promise<void> {
		const result = await runCheck(t.check);
		// Drivers sometimes echo the connection string: the stored error never holds a secret.
		if (result.error)
			result.error = redactText(
				result.error,
				collectSecrets(t.check.endpoint, t.check.config)
			);
		const { state, changed } = nextHealth(
			await this.opts.catalog.health(t.key),
			result,
			Date.now(),
			t.thresholds
		);
		await this.opts.catalog.putHealth(t.key, state);
		if (!changed) return;
		const health = publicHealth(state);
		this.opts.logger.info(
			`${t.kind} '${t.name}' is ${state.status}${state.error ? `: ${state.error}` : ""}`
		);
		// The owner goes along, so that the event stream shows a tenant's targets to it alone.
		if (t.kind === "resource")
			this.opts.broadcast(EVENTS.resourceHealthChanged, {
				id: t.ref,
				name: t.name,
				...t.owner,
				health
			});
		else
			this.opts.broadcast(EVENTS.serviceHealthChanged, {
				name: t.name,
				endpoint: redactUrl(t.check.endpoint),
				...t.owner,
				health
			});
	}

	/** Starts no more checks, and resolves once those in flight have ended. */
	async stop(): Promise<void> {
		this.stopping = true;
		await Promise.all(this.inFlight.values());
	}
}
