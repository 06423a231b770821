/**
 * A workload's `disconnect.stopAfter` on the agent's side: how long since this node last heard
 * the control plane, and which replicas must stop because of it. The agent has heard the
 * control plane when its transporter is connected and a scheduler answered (a sync arrived, or
 * a ping to a scheduler's node came back); a disconnect forgets that at once.
 *
 * Two enforcers, so that a frozen agent (SIGSTOP, a stalled VM) cannot keep a copy running:
 * the agent stops the replicas itself once stopAfter has passed, and while it hears it renews
 * each such process replica's lease (a byte on its supervisor's pipe, runner/process-runner.ts),
 * so that the supervisor kills the replica when the renewals stop for stopAfter. Pure, the
 * clock passed in.
 */

/** What the watch needs of a running replica. */
export interface LeasedReplica {
	workloadId: string;
	replica: number;
	stopAfterMs?: number;
}

export interface LeaseTick<R extends LeasedReplica> {
	/** Replicas whose lease to renew now (this node hears the control plane). */
	renew: R[];
	/** Replicas to stop: stopAfter has passed without a word from the control plane. */
	stop: R[];
}

/** How often to ping a scheduler, for the shortest stopAfter here: thrice within it. */
export function pingInterval(stopAfterMs: number): number {
	return Math.min(2000, Math.max(100, Math.floor(stopAfterMs / 3)));
}

export class DisconnectWatch {
	private connected = true;
	private heardAt: number;

	constructor(now: number) {
		// A starting agent has not lost anybody yet.
		this.heardAt = now;
	}

	/** A scheduler spoke (a sync) or answered (a ping). Ignored while disconnected. */
	heard(now: number): void {
		if (this.connected) this.heardAt = Math.max(this.heardAt, now);
	}

	/** The transporter went (false) or came back (true; the next answer counts as heard). */
	transport(connected: boolean): void {
		this.connected = connected;
	}

	/** ms since the control plane was last heard; Infinity-free: 0 when just heard. */
	silentFor(now: number): number {
		return Math.max(0, now - this.heardAt);
	}

	/**
	 * What to do now with the replicas that have a stopAfter: renew their leases while the
	 * control plane was heard recently (within a third of their stopAfter, the ping period),
	 * stop those whose stopAfter has passed.
	 */
	tick<R extends LeasedReplica>(replicas: R[], now: number): LeaseTick<R> {
		const silent = this.silentFor(now);
		const renew: R[] = [];
		const stop: R[] = [];
		for (const r of replicas) {
			if (!r.stopAfterMs) continue;
			if (silent >= r.stopAfterMs) stop.push(r);
			else if (this.connected && silent < pingInterval(r.stopAfterMs) * 2) renew.push(r);
		}
		return { renew, stop };
	}
}
