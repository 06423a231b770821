/**
 * The store's identity: a cluster id and an epoch, written once when the cluster is first
 * initialised (collection "cluster", id "identity"). Every process that opens the store
 * remembers the identity it saw; a store whose identity is missing or not the one remembered
 * (a Redis restarted empty, an old backup, another cluster's store) is not used until an
 * operator adopts it, which writes the identity again with a larger epoch.
 *
 * Why an epoch as well as an id: an adopted store keeps the cluster's id, so that members that
 * remember it accept the store; a backup restored from before the adoption carries a smaller
 * epoch than its members remember, and is refused as stale. The same epoch restored from a
 * backup taken after the last adoption cannot be told apart: an identity is no substitute for
 * durable writes (see the Redis persistence check in redis.ts).
 *
 * Pure: every decision here is unit-tested with plain data (test/unit/shared/store/identity.spec.ts).
 */

/** Where the identity lives in the store. */
export const IDENTITY_COLLECTION = "cluster";
export const IDENTITY_ID = "identity";

export interface ClusterIdentity {
	clusterId: string;
	/** 1 when the cluster was initialised, one more at each adoption. */
	epoch: number;
	/** When this epoch was written (ms since the epoch). */
	createdAt: number;
	/**
	 * The cluster ids an adoption took over (a store initialised by a process that knew no
	 * better, another cluster's store): members that remember one of them accept this one.
	 */
	supersedes?: string[];
}

/** Why a store is not used. */
export type IdentityProblem = "missing" | "foreign" | "stale";

export type IdentityVerdict =
	/** The store is the remembered one (or a later adoption of it): use it, remember `identity`. */
	| { state: "ok"; identity: ClusterIdentity }
	/** A brand-new cluster: nothing stored, nobody remembers one; write a new identity. */
	| { state: "initialise" }
	/** Not the store this process knew: read-only until an operator adopts it. */
	| {
			state: "mismatch";
			problem: IdentityProblem;
			expected: ClusterIdentity;
			found: ClusterIdentity | null;
	  };

/** A stored or remembered value as an identity, or null when it is not one. */
export function parseIdentity(raw: unknown): ClusterIdentity | null {
	if (!raw || typeof raw !== "object") return null;
	const { clusterId, epoch, createdAt } = raw as Record<string, unknown>;
	if (typeof clusterId !== "string" || clusterId.length === 0) return null;
	if (typeof epoch !== "number" || !Number.isInteger(epoch) || epoch < 1) return null;
	if (typeof createdAt !== "number" || !Number.isFinite(createdAt)) return null;
	const { supersedes } = raw as Record<string, unknown>;
	if (supersedes === undefined) return { clusterId, epoch, createdAt };
	if (!Array.isArray(supersedes) || !supersedes.every(s => typeof s === "string")) return null;
	return { clusterId, epoch, createdAt, supersedes: supersedes as string[] };
}

/**
 * What to do with a store, given its identity (null: none, or unreadable) and the one this
 * process remembers (null: never saw one).
 */
export function judgeIdentity(
	stored: ClusterIdentity | null,
	remembered: ClusterIdentity | null
): IdentityVerdict {
	if (!remembered) return stored ? { state: "ok", identity: stored } : { state: "initialise" };
	if (!stored)
		return { state: "mismatch", problem: "missing", expected: remembered, found: null };
	if (stored.clusterId !== remembered.clusterId)
		return stored.supersedes?.includes(remembered.clusterId)
			? { state: "ok", identity: stored }
			: { state: "mismatch", problem: "foreign", expected: remembered, found: stored };
	if (stored.epoch < remembered.epoch)
		return { state: "mismatch", problem: "stale", expected: remembered, found: stored };
	return { state: "ok", identity: stored };
}

/** A new cluster's identity. */
export function newIdentity(clusterId: string, now: number): ClusterIdentity {
	return { clusterId, epoch: 1, createdAt: now };
}

/**
 * The identity an adoption writes, from every identity known: the one the adopting process
 * remembers, the agents' (what they obey), the stored one, in that order of preference for
 * the cluster id (none: `freshId`); at an epoch above every one seen, so that whoever
 * remembers an older epoch of this cluster accepts it, and superseding every other cluster id
 * seen, so that whoever remembers one of those accepts it too.
 */
export function adoptedIdentity(
	known: Array<ClusterIdentity | null | undefined>,
	freshId: string,
	now: number
): ClusterIdentity {
	const ids = known.filter((k): k is ClusterIdentity => Boolean(k));
	const clusterId = ids[0]?.clusterId ?? freshId;
	const epoch = Math.max(0, ...ids.map(k => k.epoch)) + 1;
	const supersedes = [...new Set(ids.flatMap(k => [k.clusterId, ...(k.supersedes ?? [])]))]
		.filter(id => id !== clusterId)
		.sort();
	return supersedes.length
		? { clusterId, epoch, createdAt: now, supersedes }
		: { clusterId, epoch, createdAt: now };
}

/** The operator's explanation of a mismatch, with the fix. */
export function mismatchMessage(v: Extract<IdentityVerdict, { state: "mismatch" }>): string {
	const known = `cluster ${v.expected.clusterId} epoch ${v.expected.epoch}`;
	const what =
		v.problem === "missing"
			? `The store has no cluster identity, but this process knows ${known}: it was restarted empty or replaced.`
			: v.problem === "foreign"
				? `The store belongs to cluster ${v.found!.clusterId}, not to ${known}.`
				: `The store is at epoch ${v.found!.epoch} of cluster ${v.expected.clusterId}, older than the epoch ${v.expected.epoch} this process knows: it was restored from an old backup.`;
	return (
		`${what} The control services are read-only and no replica is stopped. If this store is ` +
		"the one to use, adopt it: `npm run adopt` (or POST /api/v1/cluster/adopt as an admin), " +
		"which re-registers what the agents still run."
	);
}
