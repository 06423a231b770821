/**
 * How much of the audit log is kept: at most `maxRecords` records and none older than
 * `maxAgeMs` (ISA_AUDIT_MAX_RECORDS, ISA_AUDIT_MAX_AGE), whichever keeps fewer; the newest
 * record is always kept, so the chain goes on from it. A trim first stores the anchor (the first
 * kept seq and the hash of the record before it), then drops what is below: verification then
 * starts at the anchor and trusts it, so what retention removed is not reported as tampering.
 */

export interface RetentionPolicy {
	/** Records kept at most; null: no bound. */
	maxRecords: number | null;
	/** Age of the oldest kept record at most (ms); null: no bound. */
	maxAgeMs: number | null;
}

export interface LogBounds {
	/** The oldest kept seq. */
	oldest: number;
	/** The newest seq. */
	newest: number;
	/**
	 * The first seq appended within maxAgeMs; null when no record is that recent (or no age
	 * bound is set).
	 */
	firstRecent: number | null;
}

/** The first seq to keep, or null when nothing is to be dropped. */
export function keepFrom(bounds: LogBounds, policy: RetentionPolicy): number | null {
	let keep = bounds.oldest;
	if (policy.maxRecords !== null)
		keep = Math.max(keep, bounds.newest - Math.max(policy.maxRecords, 1) + 1);
	if (policy.maxAgeMs !== null) keep = Math.max(keep, bounds.firstRecent ?? bounds.newest);
	keep = Math.min(keep, bounds.newest);
	return keep > bounds.oldest ? keep : null;
}
