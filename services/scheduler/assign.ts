/**
 * Between the Reserver's placements and the workload documents. Pure, so that the cases two
 * schedulers create (one placed the replica first, the workload changed or went away while its
 * replicas were placed, a crash between the reservation and the workload's write) are
 * unit-tested without a store.
 *
 * The order of writes that makes them safe: a placement is reserved before the workload names
 * it, and the workload forgets it before it is released. So a replica that names a node always
 * has its reservation there: nothing runs on resources another replica may take. A crash
 * between the two writes leaves at worst a reservation no replica names, which `audit` finds
 * and the scheduler's reconcile gives back.
 */
import type { Placement } from "./placement";
import type { PlacementRecord } from "./reservations";
import {
	addEvent,
	lastFence,
	parseReplicaKey,
	pendingReplica,
	replicaKey,
	Workload
} from "./workload";

/**
 * Most "placed" events of one write, one per node; a write that placed replicas on more nodes
 * tells of them in one event (each replica says its node), so that a workload spread wide
 * keeps its other events and a small document.
 */
const PLACED_EVENTS = 8;

/** One pending replica's placement to reserve: its key carries the fence it will have. */
export interface Wanted {
	index: number;
	fence: number;
	key: string;
}

export interface Outcome extends Wanted {
	/** Where the Reserver placed it; null when no node fits. */
	spot: Placement | null;
}

/** The placements to reserve for a workload's pending replicas, in replica order. */
export function wantedPlacements(w: Workload): Wanted[] {
	let fence = lastFence(w);
	return w.replicas
		.filter(r => r.state === "pending")
		.map(r => {
			fence++;
			return { index: r.index, fence, key: replicaKey(w.id, r.index, fence) };
		});
}

/**
 * Puts placed replicas into the workload (as it is now, maybe changed since the placements
 * were planned) and the reason into those that did not fit. Resolves to whether the document
 * changed, and the keys reserved for a replica that no longer wants them (deleted, scaled
 * away, or placed otherwise meanwhile): those must be released.
 */
export function applyPlacements(
	w: Workload,
	outcomes: Outcome[],
	reason: string | null,
	now: number
): { changed: boolean; unused: string[] } {
	const unused: string[] = [];
	let changed = false;
	let waiting = false;
	/** Per node, the replicas placed there now: one event each node, not each replica. */
	const placed = new Map<string, Outcome[]>();
	for (const o of outcomes) {
		const r = w.replicas[o.index];
		if (!o.spot) {
			if (r?.state === "pending" && reason && r.reason !== reason) {
				r.reason = reason;
				changed = waiting = true;
			}
			continue;
		}
		// Placed with this very key already (by another scheduler, same plan): nothing to do.
		if (r && r.fence === o.fence && r.node === o.spot.nodeID) continue;
		if (!r || r.state !== "pending" || r.fence >= o.fence) {
			unused.push(o.key);
			continue;
		}
		Object.assign(r, {
			node: o.spot.nodeID,
			gpus: o.spot.gpus,
			fence: o.fence,
			state: "starting",
			since: now
		});
		delete r.reason;
		// o.fence is above every fence of the plan's document: no scan of the replicas.
		w.fence = Math.max(w.fence ?? 0, o.fence);
		const on = placed.get(o.spot.nodeID);
		if (on) on.push(o);
		else placed.set(o.spot.nodeID, [o]);
		changed = true;
	}
	if (placed.size > PLACED_EVENTS) {
		const indexes = [...placed.values()].flatMap(list => list.map(o => o.index));
		addEvent(w, {
			at: now,
			type: "placed",
			message: `Replicas ${ranges(indexes)} placed on ${placed.size} nodes.`
		});
		placed.clear();
	}
	for (const [node, list] of placed) {
		const gpus = list.flatMap(o => o.spot!.gpus);
		const withGpus = gpus.length ? ` with GPU ${gpus.join(",")}` : "";
		addEvent(w, {
			at: now,
			type: "placed",
			...(list.length === 1 ? { replica: list[0].index } : {}),
			node,
			message:
				list.length === 1
					? `Replica ${list[0].index} placed on ${node}${withGpus}.`
					: `Replicas ${ranges(list.map(o => o.index))} placed on ${node}${withGpus}.`
		});
	}
	if (waiting && reason)
		addEvent(w, { at: now, type: "pending", message: `Waiting for capacity: ${reason}` });
	return { changed, unused };
}

/** "0-3, 7, 9-10": replica indexes, in order, as ranges. */
export function ranges(indexes: number[]): string {
	const sorted = [...indexes].sort((a, b) => a - b);
	const parts: string[] = [];
	for (let i = 0; i < sorted.length; i++) {
		const from = sorted[i];
		while (i + 1 < sorted.length && sorted[i + 1] === sorted[i] + 1) i++;
		parts.push(from === sorted[i] ? `${from}` : `${from}-${sorted[i]}`);
	}
	return parts.join(", ");
}

/** A placed replica's reservation, by the fence it was placed with. */
export interface Placed {
	index: number;
	fence: number;
	node: string;
	key: string;
}

/** The placed replicas among `indexes`: what to release to take them off their nodes. */
export function placedReplicas(w: Workload, indexes: number[]): Placed[] {
	return indexes.flatMap(i => {
		const r = w.replicas[i];
		return r?.node
			? [{ index: i, fence: r.fence, node: r.node, key: replicaKey(w.id, i, r.fence) }]
			: [];
	});
}

/**
 * Takes released replicas off their nodes in the workload (as it is now): pending again (they
 * will be placed anew), or stopped. A replica placed again since (another fence) is left alone.
 * Resolves to whether the document changed.
 */
export function applyReleases(
	w: Workload,
	released: Placed[],
	reason: string,
	pend: boolean,
	now: number
): boolean {
	let changed = false;
	w.fence = lastFence(w);
	for (const p of released) {
		const r = w.replicas[p.index];
		if (!r || r.fence !== p.fence || r.node !== p.node) continue;
		w.replicas[p.index] = pend
			? pendingReplica(p.index, r.fence, now, reason)
			: { ...r, node: null, gpus: [], state: "stopped", reason, since: now };
		if (pend)
			addEvent(w, {
				at: now,
				type: "rescheduled",
				replica: p.index,
				node: p.node,
				message: `Replica ${p.index} left ${p.node} (${reason}); placing it again.`
			});
		changed = true;
	}
	return changed;
}

export interface AuditResult {
	/**
	 * Replicas that name a node but have no reservation there: placed again. The order of
	 * writes never leaves one; this is the net under a bug or a store restored from backup.
	 */
	lost: Array<Placed & { workloadId: string }>;
	/** Reservations no replica names, older than the grace: released. */
	orphans: string[];
}

/**
 * What a crash between a reservation and its workload's write left behind. `workloads` must be
 * read before `placements`: a replica then names only reservations made before the read, so one
 * missing from `placements` was released meanwhile. A reservation made after the workloads were
 * read is not named yet: the grace (longer than any placement round) keeps it from being taken
 * for an orphan.
 */
export async function audit(
	workloads: Iterable<Workload>,
	placements: Iterable<[string, PlacementRecord]>,
	now: number,
	graceMs: number,
	/** Awaited every AUDIT_BATCH items: tens of thousands take tens of ms. */
	pause: () => Promise<void> = async () => undefined
): Promise<AuditResult> {
	let n = 0;
	const step = async () => {
		if (++n % AUDIT_BATCH === 0) await pause();
	};
	const byId = new Map<string, Workload>();
	for (const w of workloads) byId.set(w.id, w);
	const records = new Map(placements);
	const lost: AuditResult["lost"] = [];
	for (const w of byId.values()) {
		await step();
		for (const r of w.replicas) {
			if (!r.node) continue;
			const record = records.get(replicaKey(w.id, r.index, r.fence));
			if (!record || record.nodeID !== r.node)
				lost.push({
					workloadId: w.id,
					index: r.index,
					fence: r.fence,
					node: r.node,
					key: replicaKey(w.id, r.index, r.fence)
				});
		}
	}
	const orphans: string[] = [];
	for (const [key, record] of records) {
		await step();
		if (now - record.at < graceMs) continue;
		const k = parseReplicaKey(key);
		const r = k && byId.get(k.workloadId)?.replicas[k.index];
		if (!r || r.fence !== k.fence || r.node !== record.nodeID) orphans.push(key);
	}
	return { lost, orphans };
}

/** Workloads or reservations audit() looks at between two pauses. */
const AUDIT_BATCH = 2000;
