/**
 * What a failed Redis command means to a caller, in plain words. Redis's own reply to a script
 * names the script's SHA and line ("OOM command not allowed when used memory > 'maxmemory'.
 * script: 73fe…, on @user_script:3."), which says nothing to a user; the reply's first word is
 * what matters:
 * - it refused a write (OOM at `maxmemory`, READONLY on a replica): StoreRefusedError, reads go
 *   on, and only an operator's fix helps;
 * - it cannot answer now (LOADING, BUSY, MASTERDOWN, TRYAGAIN, CLUSTERDOWN), or not this node
 *   (NOAUTH, WRONGPASS: no or a wrong password; NOPERM: an ACL user without the right):
 *   StoreUnavailableError with `data.reply`, which says the store did answer (fail-fast.ts does
 *   not count it as silence); the reason names the reply, and the setting to fix for the last three;
 * - anything that is not a reply (the connection is down, the command timed out): the store did
 *   not answer, StoreUnavailableError without `data.reply`, with why the connection failed last
 *   when that is known (a refused TLS certificate). ioredis rejects the commands of a connection
 *   whose AUTH was refused with its own words: the refusal is answered as the reply it was.
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
	CLUSTERDOWN: { reason: "the Redis cluster is down", writesOnly: false },
	NOAUTH: {
		reason: "Redis asks for a password that this node did not give (NOAUTH). Set ISA_REDIS_PASSWORD, or the password in STORE",
		writesOnly: false
	},
	WRONGPASS: {
		reason: "Redis refused this node's user or password (WRONGPASS). Fix ISA_REDIS_USERNAME and ISA_REDIS_PASSWORD, or those in STORE",
		writesOnly: false
	},
	NOPERM: {
		reason: "Redis's ACL does not let this node's user run the store's commands (NOPERM). Give the user ISA_REDIS_USERNAME names the commands and keys it needs",
		writesOnly: false
	}
};

/** A reply's first word; "" for anything else. */
function replyWord(err: unknown): string {
	return (err instanceof ReplyError && /^[A-Z]+/.exec((err as Error).message)?.[0]) || "";
}

function knownReply(err: unknown): (typeof REPLIES)[string] | null {
	const reply = replyWord(err);
	return Object.prototype.hasOwnProperty.call(REPLIES, reply) ? REPLIES[reply] : null;
}

/**
 * The error a caller gets for `err`, thrown by a command to the Redis at `address`.
 * `connectionError`: the connection's last error, if it failed since it was last ready.
 */
export function redisError(err: unknown, address: string, connectionError?: Error | null): unknown {
	if (!(err instanceof ReplyError)) {
		if (knownReply(connectionError)) return redisError(connectionError, address);
		const timedOut = err instanceof Error && /timed out/i.test(err.message);
		const cause = connectionError ? `: ${connectionError.message}` : "";
		return new StoreUnavailableError(
			timedOut
				? `Redis at ${address} did not answer in time`
				: `Redis at ${address} is not reachable (the connection is down${cause})`
		);
	}
	const known = knownReply(err);
	if (!known) return err;
	const reply = replyWord(err);
	return known.writesOnly
		? new StoreRefusedError(known.reason, reply)
		: new StoreUnavailableError(known.reason, { reply });
}
