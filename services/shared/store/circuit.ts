/**
 * The store's circuit, as a state machine over plain events (fail-fast.ts feeds it): `closed`
 * lets calls through; `threshold` consecutive calls without an answer open it, and while it
 * is `open` calls are refused at once instead of each waiting out its timeout; a probe
 * (`probing`) that gets an answer closes it again, one that does not leaves it open. Any
 * answer closes it, since a store that answered one call is reachable.
 */

export type CircuitState = "closed" | "open" | "probing";

export class Circuit {
	private current: CircuitState = "closed";
	private failures = 0;
	private why = "";

	/** `threshold`: consecutive calls without an answer that open the circuit (at least 1). */
	constructor(private readonly threshold: number) {}

	get state(): CircuitState {
		return this.current;
	}

	/** Whether a call may go to the store now. */
	get admits(): boolean {
		return this.current === "closed";
	}

	/** Why the last call without an answer failed (set while not closed). */
	get reason(): string {
		return this.why;
	}

	/** A call or a probe was answered. Returns whether this closed the circuit. */
	answered(): boolean {
		this.failures = 0;
		const reopened = this.current !== "closed";
		this.current = "closed";
		this.why = "";
		return reopened;
	}

	/** A call or a probe got no answer. Returns whether this opened the circuit. */
	unanswered(reason: string): boolean {
		this.why = reason;
		if (this.current !== "closed") {
			this.current = "open";
			return false;
		}
		if (++this.failures < this.threshold) return false;
		this.current = "open";
		return true;
	}

	/** Open: a probe starts now (returns true). Otherwise nothing to probe (false). */
	startProbe(): boolean {
		if (this.current !== "open") return false;
		this.current = "probing";
		return true;
	}
}
