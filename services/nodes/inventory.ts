/**
 * The cluster inventory as plain data and pure transitions: what a report, a disconnect, a
 * missed-report sweep, a cordon or an uncordon does to a node. The nodes service persists and
 * emits what these functions decide; the decisions themselves are tested here without a broker.
 */
import type { NodeInfo, NodeReport, NodeStatus } from "../shared/types";
import { type Liveness, MISSED_REPORTS, type Verdict } from "./liveness";

/** A node is down once this many report intervals pass without a report (see liveness.ts). */
export { MISSED_REPORTS };

export type Transition = "up" | "down" | "updated";

export interface Change {
	node: NodeInfo;
	transition: Transition;
}

function statusOf(alive: boolean, cordoned: boolean): NodeStatus {
	if (!alive) return "down";
	return cordoned ? "draining" : "ready";
}

function sameJson(a: unknown, b: unknown): boolean {
	return JSON.stringify(a) === JSON.stringify(b);
}

export class Inventory {
	readonly nodes = new Map<string, NodeInfo>();

	/** Loads nodes remembered from an earlier run: they stay down until they report again. */
	restore(saved: NodeInfo[]): void {
		for (const node of saved) this.nodes.set(node.id, { ...node, status: "down", usage: null });
	}

	/**
	 * A report arrived. Resolves to the transition to announce: "up" for a new or returning
	 * node, "updated" when its capacity or labels changed, null when only usage moved.
	 */
	applyReport(report: NodeReport, now: number): Change | null {
		const known = this.nodes.get(report.nodeID);
		const node: NodeInfo = {
			id: report.nodeID,
			hostname: report.hostname,
			labels: report.labels,
			capacity: report.capacity,
			usage: report.usage,
			allocated: known?.allocated ?? { cpu: 0, memory: 0, gpus: 0 },
			lastSeen: now,
			reportInterval: report.interval,
			cordoned: known?.cordoned ?? false,
			status: statusOf(true, known?.cordoned ?? false),
			facts: known?.facts
		};
		this.nodes.set(node.id, node);
		if (!known || known.status === "down") return { node, transition: "up" };
		if (
			known.hostname !== node.hostname ||
			!sameJson(known.labels, node.labels) ||
			!sameJson(known.capacity, node.capacity)
		)
			return { node, transition: "updated" };
		return null;
	}

	/** Moleculer saw the node leave: down now, without waiting for missed reports. */
	markDown(id: string): Change | null {
		const node = this.nodes.get(id);
		if (!node || node.status === "down") return null;
		node.status = "down";
		node.usage = null;
		return { node, transition: "down" };
	}

	/**
	 * Every live node whose last report is more than MISSED_REPORTS intervals old goes down;
	 * with `liveness`, only those it declares down (a blind or disrupted view holds them).
	 */
	sweep(now: number, liveness?: Liveness): Change[] {
		return this.judged(now, liveness).changes;
	}

	/** sweep(), with the verdict that held or declared the silent nodes. */
	judged(now: number, liveness?: Liveness): { changes: Change[]; verdict: Verdict } {
		const nodes = [...this.nodes.values()];
		const verdict: Verdict = liveness
			? liveness.judge(nodes, now)
			: {
					down: nodes
						.filter(
							n =>
								n.status !== "down" &&
								now - n.lastSeen > MISSED_REPORTS * n.reportInterval
						)
						.map(n => n.id),
					held: [],
					reason: null
				};
		const changes: Change[] = [];
		for (const id of verdict.down) {
			const change = this.markDown(id);
			if (change) changes.push(change);
		}
		return { changes, verdict };
	}

	/**
	 * Down nodes last heard of more than `retention` ms ago, to be forgotten (ISA_NODE_RETENTION).
	 * lastSeen of a down node is its last report, so the wait counts from when it fell silent.
	 */
	expired(now: number, retention: number): string[] {
		const ids: string[] = [];
		for (const node of this.nodes.values())
			if (node.status === "down" && now - node.lastSeen > retention) ids.push(node.id);
		return ids.sort();
	}

	/** Forgets a down node; null when it is unknown or not down (a live node is never forgotten). */
	forget(id: string): NodeInfo | null {
		const node = this.nodes.get(id);
		if (!node || node.status !== "down") return null;
		this.nodes.delete(id);
		return node;
	}

	/** Cordons (drain) or uncordons a node; null when that changes nothing. */
	setCordoned(id: string, cordoned: boolean): Change | null {
		const node = this.nodes.get(id);
		if (!node || node.cordoned === cordoned) return null;
		node.cordoned = cordoned;
		node.status = statusOf(node.status !== "down", cordoned);
		return { node, transition: "updated" };
	}

	/** The shortest report interval among live nodes: how often a sweep is worth running. */
	sweepInterval(fallback: number): number {
		let min = fallback;
		for (const node of this.nodes.values())
			if (node.status !== "down") min = Math.min(min, node.reportInterval);
		return Math.max(50, Math.floor(min / 2));
	}

	list(): NodeInfo[] {
		return [...this.nodes.values()].sort((a, b) => a.id.localeCompare(b.id));
	}
}

/** What is kept in the store: everything but the live usage. */
export function persistedNode(node: NodeInfo): NodeInfo {
	return { ...node, usage: null };
}
