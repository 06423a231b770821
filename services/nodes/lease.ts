/**
 * NODEID leases: one live process per NODEID. Moleculer stops a broker that hears an INFO
 * packet with its own nodeID from another instance (transit.js, "nodeID conflict"), and both
 * brokers hear each other's, so a second process with a taken NODEID used to kill the
 * established node. The newcomer therefore takes the NODEID's lease in the store before its
 * broker connects, and refuses to start while a live node holds it.
 *
 * A lease names its holder (a random instance id, hostname, pid, since when) and when it
 * expires: LEASE_INTERVALS report intervals after its last renewal. The holder renews it every
 * report interval and deletes it on a clean stop. A holder that died without a goodbye
 * (kill -9) is recognised two ways: on its own host (same hostname, boot and pid namespace) its
 * pid is gone, so a restart there takes over at once; elsewhere the newcomer waits for the lease
 * to lapse, and refuses as soon as it sees the holder renew. Clocks only decide "expired
 * already"; a live holder is proven by a renewal the newcomer watched.
 */
import { COLLECTIONS } from "../shared/collections";
import { holderGone, LeaseHolder, pidAlive, thisProcess } from "../shared/holder";
import { NodeIdTakenError } from "../shared/errors";
import type { IsaEnv } from "../shared/env";
import type { Store, Versioned } from "../shared/store";

/** A lease lapses this many report intervals after its last renewal. */
export const LEASE_INTERVALS = 5;

export { pidAlive, thisProcess };
export type { LeaseHolder };

export interface NodeLeaseDoc extends LeaseHolder {
	nodeID: string;
	renewedAt: number;
	expiresAt: number;
}

export type LeaseVerdict =
	| { take: true; reason: "free" | "mine" | "expired" | "holder-gone" }
	| { take: false; held: NodeLeaseDoc };

/**
 * Whether `me` may take the lease as it stands now. A holder on this host whose pid is gone, or
 * is our own pid (a container restarted in place), died: its lease is taken over at once.
 */
export function judgeLease(
	current: NodeLeaseDoc | null,
	me: LeaseHolder,
	now: number,
	alive: (pid: number) => boolean = pidAlive
): LeaseVerdict {
	if (!current) return { take: true, reason: "free" };
	if (current.holder === me.holder) return { take: true, reason: "mine" };
	if (current.expiresAt <= now) return { take: true, reason: "expired" };
	if (holderGone(current, me, alive)) return { take: true, reason: "holder-gone" };
	return { take: false, held: current };
}

/** Which nodes take a lease: those with a store, named or used by their services. */
export function leaseWanted(env: IsaEnv): boolean {
	if (env.storeGiven) return true;
	// Every service but the agent opens the store anyway; an agent alone has none to ask.
	return (env.services ?? ["nodes"]).some(name => name !== "agent");
}

export interface NodeLeaseOptions {
	/** The report interval (ms): the lease is renewed this often and lapses LEASE_INTERVALS later. */
	interval: number;
	me?: LeaseHolder;
	now?: () => number;
	alive?: (pid: number) => boolean;
	sleep?: (ms: number) => Promise<void>;
}

/** The lease of one NODEID held by this process. */
export class NodeLease {
	readonly me: LeaseHolder;
	private readonly interval: number;
	private readonly now: () => number;
	private readonly alive: (pid: number) => boolean;
	private readonly sleep: (ms: number) => Promise<void>;

	constructor(
		private readonly store: Store,
		readonly nodeID: string,
		opts: NodeLeaseOptions
	) {
		this.interval = opts.interval;
		this.now = opts.now ?? Date.now;
		this.me = opts.me ?? thisProcess(this.now());
		this.alive = opts.alive ?? pidAlive;
		this.sleep = opts.sleep ?? (ms => new Promise(resolve => setTimeout(resolve, ms)));
	}

	get ttl(): number {
		return LEASE_INTERVALS * this.interval;
	}

	/**
	 * Takes the lease before the node joins, or throws NodeIdTakenError. A lease that is not ours
	 * and not yet expired is watched for as long as its holder lets it live: a renewal proves the
	 * holder alive (refused), silence until then proves it dead (taken).
	 */
	async acquire(): Promise<void> {
		for (;;) {
			const current = await this.read();
			const verdict = judgeLease(current?.value ?? null, this.me, this.now(), this.alive);
			if (verdict.take) {
				if (await this.write(current)) return;
				continue; // Another newcomer or a renewal came between: look again.
			}
			const renewed = await this.watch(current!);
			if (renewed) throw new NodeIdTakenError(this.nodeID, holderOf(renewed.value));
			// Not renewed within its own lifetime: its holder is dead, whatever the clocks say.
			if (await this.write(current)) return;
		}
	}

	/**
	 * Renews the lease (or takes it again if it lapsed and nobody took it). Resolves to the
	 * lease of the live node that took it from us, or null when we still hold it.
	 */
	async renew(): Promise<NodeLeaseDoc | null> {
		for (let attempt = 0; attempt < 3; attempt++) {
			const current = await this.read();
			const verdict = judgeLease(current?.value ?? null, this.me, this.now(), this.alive);
			if (!verdict.take) return verdict.held;
			if (await this.write(current)) return null;
		}
		return null; // Three lost races with writers that keep changing it: try next round.
	}

	/**
	 * Renews every report interval until the returned function is called. `lost` hears of a live
	 * node that took the lease (this one was silent past its lifetime: SIGSTOP, a long pause);
	 * `failed` of a renewal the store did not answer (the next one tries again).
	 */
	keep(lost: (held: NodeLeaseDoc) => void, failed: (err: Error) => void): () => void {
		let busy = false;
		const timer = setInterval(() => {
			if (busy) return;
			busy = true;
			this.renew()
				.then(held => {
					if (held) {
						clearInterval(timer);
						lost(held);
					}
				}, failed)
				.finally(() => (busy = false));
		}, this.interval);
		timer.unref();
		return () => clearInterval(timer);
	}

	/** Gives the lease back on a clean stop, if it is still ours. */
	async release(): Promise<void> {
		const current = await this.read();
		if (current?.value.holder === this.me.holder)
			await this.store.delete(COLLECTIONS.nodeLeases, this.nodeID, current.version);
	}

	private read(): Promise<Versioned<NodeLeaseDoc> | null> {
		return this.store.get<NodeLeaseDoc>(COLLECTIONS.nodeLeases, this.nodeID);
	}

	/** Writes our lease over `current` (compare-and-set); false when something else wrote first. */
	private async write(current: Versioned<NodeLeaseDoc> | null): Promise<boolean> {
		const now = this.now();
		const doc: NodeLeaseDoc = {
			nodeID: this.nodeID,
			...this.me,
			renewedAt: now,
			expiresAt: now + this.ttl
		};
		const version = current?.version ?? 0;
		return (await this.store.cas(COLLECTIONS.nodeLeases, this.nodeID, doc, version)) !== null;
	}

	/**
	 * Polls the lease until its holder's lifetime (expiresAt - renewedAt, a length, not a clock
	 * time) has passed: the changed lease if it was renewed or taken, null if it stayed still.
	 */
	private async watch(seen: Versioned<NodeLeaseDoc>): Promise<Versioned<NodeLeaseDoc> | null> {
		const lifetime = Math.max(0, seen.value.expiresAt - seen.value.renewedAt);
		const step = Math.max(50, Math.min(250, Math.floor(lifetime / 10)));
		const deadline = this.now() + lifetime;
		while (this.now() <= deadline) {
			await this.sleep(step);
			const current = await this.read();
			if (current?.version !== seen.version) {
				// Gone (released on a clean stop): free. Changed: a live holder renewed or took it.
				if (!current) return null;
				return current.value.holder === this.me.holder ? null : current;
			}
		}
		return null;
	}
}

/** What the refusal tells of the holder. */
function holderOf(doc: NodeLeaseDoc): { hostname: string; pid: number; startedAt: number } {
	return { hostname: doc.hostname, pid: doc.pid, startedAt: doc.startedAt };
}
