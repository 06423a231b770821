/**
 * What a failed Redis command means to a caller, in plain words. Redis's own reply to a script
 * names the script's SHA and line ("OOM command not allowed when used memory > 'maxmemory'.
 * script: 73fe…, on @user_script:3."), which says nothing to a user; the reply's first word is
 * what matters:
 * - it refused a write (OOM at `maxmemory`, READONLY on a replica): StoreRefusedError, reads go
 *   on, and only an operator's fix helps;
 * - it cannot answer now (LOADING, BUSY, MASTERDOWN, TRYAGAIN, CLUSTERDOWN): StoreUnavailableError
 *   with `data.reply`, which says the store did answer (fail-fast.ts does not count it as silence);
 * - anything that is not a reply (the connection is down, the command timed out): the store did
 *   not answer, StoreUnavailableError without `data.reply`.
 * Any other reply is a fault of ours and is passed on as it is.
 */
import { ReplyError } from "ioredis";
import { StoreRefusedError, StoreUnavailableError } from "../errors";

/** Replies by their first word: what they mean, and whether only writes are refused. */
const REPLIES: Record<string, { reason: string; writesOnly: boolean }> = {
	OOM: {
		reason: "Redis is out of memory (maxmemory reached). Free memory in Redis or raise its maxmemory; nothing was written",
		writesOnly: true
	},
	READONLY: {
		reason: "this Redis is a read-only replica. Point STORE at the primary; nothing was written",
		writesOnly: true
	},
	LOADING: { reason: "Redis is loading its data set into memory", writesOnly: false },
	BUSY: { reason: "Redis is busy running a long script", writesOnly: false },
	MASTERDOWN: {
		reason: "this Redis replica lost its link to the primary",
		writesOnly: false
	},
	TRYAGAIN: { reason: "the Redis cluster is moving the keys", writesOnly: false },
	CLUSTERDOWN: { reason: "the Redis cluster is down", writesOnly: false }
};

/** The error a caller gets for `err`, thrown by a command to the Redis at `address`. */
export function redisError(err: unknown, address: string): unknown {
	if (!(err instanceof ReplyError)) {
		const timedOut = err instanceof Error && /timed out/i.test(err.message);
		return new StoreUnavailableError(
			timedOut
				? `Redis at ${address} did not answer in time`
				: `Redis at ${address} is not reachable (the connection is down)`
		);
	}
	const reply = /^[A-Z]+/.exec((err as Error).message)?.[0] ?? "";
	const known = Object.prototype.hasOwnProperty.call(REPLIES, reply) ? REPLIES[reply] : null;
	if (!known) return err;
	return known.writesOnly
		? new StoreRefusedError(known.reason, reply)
		: new StoreUnavailableError(known.reason, { reply });
}
