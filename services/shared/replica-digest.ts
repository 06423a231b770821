/**
 * A digest of the replicas a node should run, the same in whatever order they are listed:
 * the scheduler's reconcile sends each live node the digest of its list (agent.check) instead
 * of the list, and only a node whose own list differs, because a change was lost on its way,
 * is sent its whole list again. A list is what the node runs (thousands of replicas are
 * megabytes to serialise, every few seconds, for every node); a digest is a few bytes.
 *
 * A replica is named by workload, index and fence: a new placement has a new fence, so the
 * digest changes with every placement, move and removal. Two sums of 32-bit FNV-1a hashes with
 * different offsets and the count: adding is what makes the order not matter, and two
 * different lists sharing all three is a one in 2^64 chance, not a concern for a repair that
 * runs again at the next change.
 */

/** What the digest needs of a replica (a ReplicaSpec has it). */
export interface ReplicaRef {
	workloadId: string;
	replica: number;
	fence: number;
}

const OFFSET_A = 0x811c9dc5;
const OFFSET_B = 0x050c5d1f;
const PRIME = 0x01000193;

function fnv1a(text: string, offset: number): number {
	let h = offset;
	for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), PRIME);
	return h >>> 0;
}

/**
 * A digest being summed: replicas can be added and taken away again in any order, so that a
 * node's digest is kept up to date as its workloads change instead of summed from scratch.
 */
export class DigestSum {
	private count = 0;
	private a = 0;
	private b = 0;

	/** Adds a replica (`sign` -1: takes it away again). */
	add(r: ReplicaRef, sign: 1 | -1 = 1): void {
		const key = `${r.workloadId}/${r.replica}@${r.fence}`;
		this.a = (this.a + sign * fnv1a(key, OFFSET_A)) >>> 0;
		this.b = (this.b + sign * fnv1a(key, OFFSET_B)) >>> 0;
		this.count += sign;
	}

	copy(): DigestSum {
		const c = new DigestSum();
		c.count = this.count;
		c.a = this.a;
		c.b = this.b;
		return c;
	}

	toString(): string {
		return `${this.count}-${this.a.toString(16)}-${this.b.toString(16)}`;
	}
}

/** The digest of these replicas, skipping those of workloads `skip` holds. */
export function replicaDigest(
	replicas: Iterable<ReplicaRef>,
	skip: ReadonlySet<string> = new Set()
): string {
	const sum = new DigestSum();
	for (const r of replicas) if (!skip.has(r.workloadId)) sum.add(r);
	return sum.toString();
}
