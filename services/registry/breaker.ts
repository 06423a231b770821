/**
 * A circuit breaker per HTTP endpoint of a registered service: after `threshold` consecutive
 * failures the endpoint is skipped for `cooldownMs`, then one trial request decides (half-open).
 * Moleculer's own breaker covers calls between services; this one covers calls out to plain HTTP
 * endpoints, which Moleculer does not see. Pure apart from the injected clock.
 */
export interface BreakerOptions {
	threshold: number;
	cooldownMs: number;
	now?: () => number;
}

type State = { failures: number; openedAt: number | null; trial: boolean };

export class Breakers {
	private readonly states = new Map<string, State>();
	private readonly now: () => number;

	constructor(private readonly opts: BreakerOptions) {
		this.now = opts.now ?? Date.now;
	}

	private state(key: string): State {
		let s = this.states.get(key);
		if (!s) this.states.set(key, (s = { failures: 0, openedAt: null, trial: false }));
		return s;
	}

	/** Whether a request may go to this endpoint now; claims the one trial when half-open. */
	allow(key: string): boolean {
		const s = this.state(key);
		if (s.openedAt === null) return true;
		if (this.now() - s.openedAt < this.opts.cooldownMs || s.trial) return false;
		s.trial = true;
		return true;
	}

	/** Whether the endpoint's breaker is open (for status displays). */
	isOpen(key: string): boolean {
		const s = this.states.get(key);
		return !!s && s.openedAt !== null;
	}

	success(key: string): void {
		this.states.set(key, { failures: 0, openedAt: null, trial: false });
	}

	failure(key: string): void {
		const s = this.state(key);
		s.failures++;
		if (s.trial || s.failures >= this.opts.threshold) s.openedAt = this.now();
		s.trial = false;
	}
}
