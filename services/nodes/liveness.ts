/**
 * Whether a silent node is dead, or only unheard. A node is silent once MISSED_REPORTS of its
 * report intervals pass without a report; whether the inventory may then declare it down (and
 * the scheduler move its replicas) is decided here, with what the inventory alone cannot see:
 *
 * - Blindness: while this node's own transporter is disconnected it hears nobody, so nobody is
 *   declared down; after it reconnects, silence is counted from the reconnect, and nobody is
 *   declared down for a grace (GRACE_INTERVALS report intervals plus the NATS client's
 *   RECONNECT_WAIT, since each agent reconnects at its own next attempt, up to that much later).
 * - Disruption: when more than `threshold` of the nodes that were up go silent within one
 *   down window, the likelier cause is the network between them and us, not that many
 *   machines died at once (Kubernetes' node lifecycle controller stops evicting in a fully
 *   disrupted zone for the same reason). They are held, not declared down: their replicas stay
 *   where they are, an alert fires, and when they report again nothing has changed.
 *
 * - Stalls: while this process itself stands still (its event loop blocked or starved: 100% CPU,
 *   a long garbage collection), reports wait unread in its socket, and after the stall the
 *   sweep's timer may run before they are read. Time this process stood still (`stalled`, from
 *   services/shared/lag.ts) is not counted as a node's silence: a stall of S ms moves every
 *   node's deadline S ms later, so a busy control node never declares healthy nodes down.
 *
 * One silent node among many is still declared down within its down window. No I/O and the
 * clock passed in, so the decisions are unit-tested with plain numbers.
 */
import type { NodeInfo } from "../shared/types";

/** A node is silent once this many report intervals pass without a report. */
export const MISSED_REPORTS = 3;

/** After a reconnect, nobody is declared down for this many report intervals (at least one). */
export const GRACE_INTERVALS = 2;

/**
 * The NATS client's wait between two reconnect attempts (nats.js' default, which Moleculer's
 * transporter keeps): the agents reconnect up to this much after this node does.
 */
export const RECONNECT_WAIT = 2000;

/** How long a stall is remembered (ms): longer than any node's down window. */
export const STALL_MEMORY = 10 * 60_000;

/** The default share of up nodes that may go silent in one window and still be declared down. */
export const DEFAULT_DISRUPTION_THRESHOLD = 0.5;

export type HoldReason = "blind" | "disruption";

export interface Verdict {
	/** Silent nodes to declare down now. */
	down: string[];
	/** Silent nodes kept as they are, and why (null when none is held). */
	held: string[];
	reason: HoldReason | null;
}

/** What the judge reads of a node. */
export type Judged = Pick<NodeInfo, "id" | "status" | "lastSeen" | "reportInterval">;

export interface LivenessOptions {
	/** Share of up nodes (0–1) that may go silent within one window and still be declared down. */
	threshold?: number;
	/** The report interval assumed for the grace when no node is known (ms). */
	reportInterval?: number;
	reconnectWait?: number;
}

export class Liveness {
	private readonly threshold: number;
	private readonly reportInterval: number;
	private readonly reconnectWait: number;
	private connected = true;
	/** When this node last (re)connected; silence is never counted from before it. */
	private connectedAt: number;
	/** Nodes declared down for silence, and when: they count in the window that follows. */
	private readonly recentDowns = new Map<string, { at: number; window: number }>();
	/** Stretches this process stood still, oldest first: `ms` long, ended at `end`. */
	private readonly stalls: Array<{ end: number; ms: number }> = [];

	constructor(now: number, opts: LivenessOptions = {}) {
		this.threshold = opts.threshold ?? DEFAULT_DISRUPTION_THRESHOLD;
		this.reportInterval = opts.reportInterval ?? 2000;
		this.reconnectWait = opts.reconnectWait ?? RECONNECT_WAIT;
		// A node that just started has heard nobody yet: the same grace as after a reconnect.
		this.connectedAt = now;
	}

	/** This node's transporter went away (false) or came back (true). */
	transport(connected: boolean, now: number): void {
		if (connected && !this.connected) this.connectedAt = now;
		this.connected = connected;
	}

	/** This process stood still for `ms` ms until `now`: no report could be read meanwhile. */
	stalled(ms: number, now: number): void {
		this.stalls.push({ end: now, ms });
		while (this.stalls.length && now - this.stalls[0].end > STALL_MEMORY) this.stalls.shift();
	}

	/** How long this process stood still after `since` (ms). */
	stalledSince(since: number): number {
		let ms = 0;
		for (const s of this.stalls) if (s.end > since) ms += Math.min(s.ms, s.end - since);
		return ms;
	}

	/** Whether this node cannot judge anybody now: disconnected, or reconnected within the grace. */
	blind(now: number, nodes: Judged[]): boolean {
		return !this.connected || now - this.connectedAt < this.grace(nodes);
	}

	/** GRACE_INTERVALS of the slowest reporter, plus the reconnect wait. */
	grace(nodes: Judged[]): number {
		let interval = 0;
		for (const n of nodes)
			if (n.status !== "down") interval = Math.max(interval, n.reportInterval);
		return GRACE_INTERVALS * (interval || this.reportInterval) + this.reconnectWait;
	}

	/**
	 * Whether a live node has missed MISSED_REPORTS reports, counted from our last connect,
	 * less the time this process stood still since.
	 */
	silent(node: Judged, now: number): boolean {
		if (node.status === "down") return false;
		const heardOrConnected = Math.max(node.lastSeen, this.connectedAt);
		const silence = now - heardOrConnected - this.stalledSince(heardOrConnected);
		return silence > MISSED_REPORTS * node.reportInterval;
	}

	/**
	 * Which silent nodes to declare down now. The share is taken over the nodes that were up
	 * at the start of the window: the live ones and those declared down for silence within it,
	 * which count as silent too (two nodes that die a sweep apart are one event).
	 */
	judge(nodes: Judged[], now: number): Verdict {
		const silent = nodes.filter(n => this.silent(n, now)).map(n => n.id);
		if (silent.length === 0) return { down: [], held: [], reason: null };
		if (this.blind(now, nodes)) return { down: [], held: silent, reason: "blind" };
		const live = new Set(nodes.filter(n => n.status !== "down").map(n => n.id));
		const byId = new Map(nodes.map(n => [n.id, n]));
		let recent = 0;
		for (const [id, d] of this.recentDowns) {
			if (now - d.at > d.window || byId.get(id)?.status !== "down") {
				this.recentDowns.delete(id);
				continue;
			}
			recent++;
		}
		const share = (silent.length + recent) / (live.size + recent);
		if (share > this.threshold) return { down: [], held: silent, reason: "disruption" };
		for (const id of silent)
			this.recentDowns.set(id, {
				at: now,
				window: MISSED_REPORTS * byId.get(id)!.reportInterval
			});
		return { down: silent, held: [], reason: null };
	}
}
