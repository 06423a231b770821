/**
 * Which replicas a node should run, from the scheduler's two kinds of lists:
 *
 * - a node list: every replica the node should run (when it joins, and from the periodic
 *   reconcile);
 * - a workload list: the replicas of some workloads on this node, right after a placement round
 *   changed them. Busy nodes get these, not a whole list per round.
 *
 * Lists travel without waiting for each other, from one or more schedulers, so each carries a
 * generation (a scheduler's clock) and nothing older than what was applied is applied: a
 * workload list is stale after a newer one of that workload or a newer node list; a node list
 * does not touch the workloads a newer workload list spoke for. Pure, so that the orderings
 * are unit-tested.
 */
import { replicaDigest } from "../services/shared/replica-digest";
import type { ReplicaSpec } from "../services/shared/types";

/** A replica running here, as the orderer needs to know it. */
export interface Running {
	workloadId: string;
	replica: number;
	fence: number;
}

export interface SyncPlan {
	/** Running replicas to stop: not wanted any more, or placed anew (a higher fence). */
	stop: Running[];
	/** Replicas to run (starting one that runs already with this fence does nothing). */
	start: ReplicaSpec[];
}

export class SyncOrder {
	/** The generation of the newest node list applied. */
	private generation = 0;
	/** Per workload, the generation of the newest workload list applied after it. */
	private readonly workloads = new Map<string, number>();
	/** What the lists applied say this node should run, by workload (see digest). */
	private told = new Map<string, Running[]>();

	/** A whole list for the node; null when it is older than what was applied. */
	node(replicas: ReplicaSpec[], generation: number, running: Running[]): SyncPlan | null {
		if (generation <= this.generation) return null;
		this.generation = generation;
		// Newer workload lists than this one still speak for their workloads.
		const newer = new Set<string>();
		for (const [id, g] of this.workloads) {
			if (g > generation) newer.add(id);
			else this.workloads.delete(id);
		}
		const wanted = replicas.filter(r => !newer.has(r.workloadId));
		const told = new Map<string, Running[]>();
		for (const id of newer) {
			const kept = this.told.get(id);
			if (kept) told.set(id, kept);
		}
		for (const r of wanted) {
			let list = told.get(r.workloadId);
			if (!list) told.set(r.workloadId, (list = []));
			list.push(ref(r));
		}
		this.told = told;
		return plan(wanted, running, r => !newer.has(r.workloadId));
	}

	/**
	 * Whether the lists applied here say what the scheduler's list of `generation` says, given
	 * its digest (services/shared/replica-digest.ts). Left out on both sides: the workloads in
	 * `skip` (changes the scheduler has yet to send) and those a workload list newer than
	 * `generation` spoke for here. A node list newer than the digest answers yes: it already
	 * says more than the digest knows.
	 */
	matches(digest: string, generation: number, skip: readonly string[]): boolean {
		if (generation <= this.generation) return true;
		const left = new Set(skip);
		for (const [id, g] of this.workloads) if (g > generation) left.add(id);
		return replicaDigest([...this.told.values()].flat(), left) === digest;
	}

	/** The node's replicas of these workloads; null when every one of them is stale. */
	workload(
		lists: Array<{ workloadId: string; replicas: ReplicaSpec[] }>,
		generation: number,
		running: Running[]
	): SyncPlan | null {
		const fresh = lists.filter(
			l =>
				generation > this.generation && generation > (this.workloads.get(l.workloadId) ?? 0)
		);
		if (fresh.length === 0) return null;
		for (const l of fresh) this.workloads.set(l.workloadId, generation);
		const ids = new Set(fresh.map(l => l.workloadId));
		const wanted = fresh.flatMap(l => l.replicas.filter(r => r.workloadId === l.workloadId));
		for (const id of ids) this.told.delete(id);
		for (const r of wanted) {
			let list = this.told.get(r.workloadId);
			if (!list) this.told.set(r.workloadId, (list = []));
			list.push(ref(r));
		}
		return plan(wanted, running, r => ids.has(r.workloadId));
	}
}

function ref(r: ReplicaSpec): Running {
	return { workloadId: r.workloadId, replica: r.replica, fence: r.fence };
}

/** Stops what `concerns` covers and `wanted` does not hold (or holds newer), starts `wanted`. */
function plan(
	wanted: ReplicaSpec[],
	running: Running[],
	concerns: (r: Running) => boolean
): SyncPlan {
	const byKey = new Map(wanted.map(r => [`${r.workloadId}/${r.replica}`, r]));
	const stop = running.filter(r => {
		if (!concerns(r)) return false;
		const want = byKey.get(`${r.workloadId}/${r.replica}`);
		return !want || want.fence > r.fence;
	});
	return { stop, start: wanted };
}
