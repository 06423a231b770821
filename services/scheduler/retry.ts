/**
 * Trying again after a lost race. Every change of a workload or a tenant's usage is written at
 * the version read (compare-and-set, or a transaction's version checks); when another scheduler
 * wrote first, the change is made again from what the store holds now, after a random while, so
 * that two busy schedulers take turns instead of colliding again.
 */
import type { ConflictError } from "../shared/errors";

/** Attempts of a change that keeps losing races with other schedulers. */
export const MAX_CONFLICTS = 20;

/** What an attempt answers when it lost a race: try again, after a backoff. */
export const CONFLICT: unique symbol = Symbol("conflict");

/**
 * Runs `attempt` until it answers anything but CONFLICT, and resolves to that answer; a random
 * backoff follows each lost attempt. After MAX_CONFLICTS lost attempts it throws the error
 * `conflict` makes, or (none given) gives up quietly: resolves to undefined. An attempt that
 * throws ends it with that error. `attempt` gets the attempt's number, from 0.
 */
export function retryOnConflict<T>(
	attempt: (n: number) => Promise<T | typeof CONFLICT>,
	conflict: () => ConflictError
): Promise<T>;
export function retryOnConflict<T>(
	attempt: (n: number) => Promise<T | typeof CONFLICT>
): Promise<T | undefined>;
export async function retryOnConflict<T>(
	attempt: (n: number) => Promise<T | typeof CONFLICT>,
	conflict?: () => ConflictError
): Promise<T | undefined> {
	for (let n = 0; n < MAX_CONFLICTS; n++) {
		const answer = await attempt(n);
		if (answer !== CONFLICT) return answer;
		await backoff(n);
	}
	if (conflict) throw conflict();
	return undefined;
}

/** A random wait, growing with the attempt (up to about 50 ms). */
export function backoff(attempt: number): Promise<void> {
	const ms = Math.random() * Math.min(50, 2 ** attempt);
	return new Promise(resolve => setTimeout(resolve, ms));
}
