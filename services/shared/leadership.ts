/**
 * Leader election through the store, for work that must happen once per cluster (the monitor's
 * notifications). Every copy of a service runs a `Leadership`; at most one of them leads.
 *
 * Two documents per name, in the `leaders` collection:
 * - `<name>`: the lease. The leader rewrites it every `renewMs`; its version is its heartbeat.
 * - `<name>.term`: the term, rewritten only when the leadership changes hands. Its version is
 *   the fencing token: `fence()` is a check a leader adds to its transactions, so a write of a
 *   leader that was replaced fails in the store however late it arrives.
 *
 * Clocks are never compared across processes (the same rule as the NODEID lease). A standby
 * takes over when it has watched the lease's version stay the same for `leaseMs` of its own
 * monotonic clock, or at once when the lease is gone (a leader that stopped cleanly resigns) or
 * its holder is known dead (on the same host, its pid is gone: a single node's restart).
 * A leader counts itself leader until `leaseMs × LEAD_SHARE` after the start of its last good
 * renewal, so it stops acting before any standby can have taken over (both measure at the same
 * rate; the share leaves room for timer delays).
 */
import { COLLECTIONS } from "./collections";
import { holderGone, LeaseHolder, pidAlive } from "./holder";
import type { Store, VersionCheck } from "./store";

/** The part of the lease a leader acts on after its last good renewal. */
export const LEAD_SHARE = 0.8;

/** Who leads: what the lease and term documents name, for logs and operators. */
export interface LeaderInfo extends LeaseHolder {
	nodeID: string;
}

interface LeaseDoc extends LeaderInfo {
	term: number;
	renewedAt: number;
}

interface TermDoc extends LeaderInfo {
	term: number;
	since: number;
}

export interface LeadershipOptions {
	store: Store;
	/** What is led: one election per name and cluster. */
	name: string;
	me: LeaderInfo;
	/** ms a lease lasts without renewal (default 8000). */
	leaseMs?: number;
	/** ms between two renewals of a leader (default leaseMs / 4). */
	renewMs?: number;
	/** ms between two looks of a standby (default 500). */
	watchMs?: number;
	/** Whether a pid of this host runs (default: signal 0). */
	alive?(pid: number): boolean;
	/** Monotonic ms (default performance.now). */
	clock?: () => number;
	/** Wall-clock ms, only written into the documents for people to read (default Date.now). */
	now?: () => number;
	/** Told when this copy becomes leader, with its term; awaited before it acts. */
	onElected?(term: number): Promise<void> | void;
	/** Told when this copy stops leading: replaced, its lease lapsed unrenewed, or it resigned. */
	onDeposed?(reason: string): void;
}

export class Leadership {
	readonly leaseMs: number;
	readonly renewMs: number;
	readonly watchMs: number;
	private readonly clock: () => number;
	private readonly now: () => number;
	/** The term this copy leads in, or 0. */
	private myTerm = 0;
	/** The term document's version this copy wrote when it took over: the fence. */
	private termVersion = 0;
	/** The lease's version as last written (leader) or seen (standby). */
	private leaseVersion = -1;
	/** Monotonic ms: when the lease's version last moved (standby), or the last good renewal began (leader). */
	private since = 0;
	private timer: NodeJS.Timeout | null = null;
	private running: Promise<void> = Promise.resolve();
	private stopped = false;

	constructor(private readonly opts: LeadershipOptions) {
		this.leaseMs = opts.leaseMs ?? 8000;
		this.renewMs = opts.renewMs ?? Math.round(this.leaseMs / 4);
		this.watchMs = opts.watchMs ?? 500;
		this.clock = opts.clock ?? (() => performance.now());
		this.now = opts.now ?? Date.now;
	}

	/** Whether this copy leads now: elected and within its last renewal's share of the lease. */
	get isLeader(): boolean {
		return this.myTerm > 0 && this.clock() - this.since < this.leaseMs * LEAD_SHARE;
	}

	/** The term this copy leads in (0: none). Terms only grow. */
	get term(): number {
		return this.isLeader ? this.myTerm : 0;
	}

	/**
	 * The check that makes a transaction a leader's: it fails once another copy took over.
	 * Only meaningful while `isLeader`.
	 */
	fence(): VersionCheck {
		return {
			collection: COLLECTIONS.leaders,
			id: `${this.opts.name}.term`,
			version: this.termVersion
		};
	}

	/** Looks at once, then every renewMs (leader) or watchMs (standby). */
	start(): void {
		this.stopped = false;
		const loop = () => {
			this.running = this.tick().finally(() => {
				if (this.stopped) return;
				this.timer = setTimeout(loop, this.myTerm > 0 ? this.renewMs : this.watchMs);
				this.timer.unref();
			});
		};
		loop();
	}

	/** Stops looking; a leader deletes its lease, so that a standby takes over at once. */
	async stop(): Promise<void> {
		this.stopped = true;
		if (this.timer) clearTimeout(this.timer);
		await this.running;
		if (this.myTerm === 0) return;
		const version = this.leaseVersion;
		this.depose("resigned");
		await this.opts.store
			.delete(COLLECTIONS.leaders, this.opts.name, version)
			.catch(() => false);
	}

	/**
	 * One look: a leader renews; a standby takes over a lease that is gone or has not moved for
	 * leaseMs. A store that cannot be reached changes nothing (a leader's share then runs out).
	 */
	async tick(): Promise<void> {
		try {
			if (this.myTerm > 0) await this.renew();
			else await this.watch();
		} catch {
			// The store is away: a leader stops acting when its share of the lease runs out.
			if (this.myTerm > 0 && !this.isLeader) this.depose("its lease could not be renewed");
		}
	}

	private async renew(): Promise<void> {
		const started = this.clock();
		const { store, name, me } = this.opts;
		const lease: LeaseDoc = { ...me, term: this.myTerm, renewedAt: this.now() };
		const version = await store.cas(COLLECTIONS.leaders, name, lease, this.leaseVersion);
		if (version === null) return this.depose("another copy took over");
		this.leaseVersion = version;
		this.since = started;
	}

	private async watch(): Promise<void> {
		const { store, name } = this.opts;
		const [lease, termDoc] = await Promise.all([
			store.get<LeaseDoc>(COLLECTIONS.leaders, name),
			store.get<TermDoc>(COLLECTIONS.leaders, `${name}.term`)
		]);
		const now = this.clock();
		const leaseVersion = lease?.version ?? 0;
		const gone =
			lease !== null && holderGone(lease.value, this.opts.me, this.opts.alive ?? pidAlive);
		if (leaseVersion !== this.leaseVersion) {
			this.leaseVersion = leaseVersion;
			this.since = now;
			if (lease && !gone) return;
		} else if (lease && !gone && now - this.since < this.leaseMs) return;
		await this.takeOver(termDoc?.value.term ?? 0, termDoc?.version ?? 0, now);
	}

	/** `at`: the look that decided it (monotonic), from which the new lease counts. */
	private async takeOver(lastTerm: number, termVersion: number, at: number): Promise<void> {
		const { store, name, me } = this.opts;
		const term = lastTerm + 1;
		const stamp = this.now();
		const taken = await store.transact(
			[
				{ collection: COLLECTIONS.leaders, id: name, version: this.leaseVersion },
				{ collection: COLLECTIONS.leaders, id: `${name}.term`, version: termVersion }
			],
			[
				{
					collection: COLLECTIONS.leaders,
					id: name,
					value: { ...me, term, renewedAt: stamp }
				},
				{
					collection: COLLECTIONS.leaders,
					id: `${name}.term`,
					value: { ...me, term, since: stamp }
				}
			]
		);
		// Another standby was quicker: watch its lease from now on.
		if (!taken) return;
		this.myTerm = term;
		this.termVersion = termVersion + 1;
		this.leaseVersion = this.leaseVersion + 1;
		this.since = at;
		await this.opts.onElected?.(term);
	}

	private depose(reason: string): void {
		this.myTerm = 0;
		this.termVersion = 0;
		this.leaseVersion = -1;
		this.opts.onDeposed?.(reason);
	}
}
