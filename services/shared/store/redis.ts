/**
 * The cluster backend: one Redis shared by every node.
 *
 * Each operation that reads a version and then writes is one Lua script, because Redis runs a
 * script with nothing interleaved: that, not client-side locking, is what keeps two processes
 * from both winning a CAS. Values and versions sit in two hashes per collection (rather than one
 * hash per document) so that a collection is two keys, whatever its size, and `list` reads the
 * values in one HGETALL.
 *
 * Logs are streams whose entry ids are `0-<seq>`: seq then comes from a counter bumped in the
 * same script as the XADD, and `afterSeq` is a plain XRANGE. The script stamps `at` with Redis's
 * clock, never letting it go below the previous entry's, so every process agrees on the order of
 * `at` and `since` can binary-search instead of scanning the log.
 *
 * Connection policy: a command sent while Redis is away waits for at most one reconnection
 * attempt, then fails with StoreUnavailableError; attempts are at most RECONNECT_MAX_DELAY
 * apart, so that wait is short, and the client keeps reconnecting by itself. A server that
 * accepts connections but never answers fails a command after 5 s. The services bound every
 * call tighter and stop calling a store that went silent (fail-fast.ts). In-flight commands are failed rather than replayed after a reconnect, since
 * a replayed CAS whose first send had landed would report a loss for a write that happened.
 *
 * Durability is the server's: a write Redis acknowledged survives its crash only with the AOF on
 * and fsynced before the reply (`appendonly yes`, `appendfsync always`). The store asks the server
 * at start (CONFIG GET) and warns when acknowledged writes can be lost (persistenceWarning).
 */
import Redis, { ReplyError, type RedisOptions } from "ioredis";
import { redisError } from "./redis-errors";
import { connectRedis, redisTarget } from "./redis-target";
import { StoreUnavailableError } from "../errors";
import { formatDuration } from "../duration";
import type { RedisWait } from "../env";
import type {
	DocWrite,
	LogEntry,
	LogQuery,
	Store,
	StoredDoc,
	VersionCheck,
	Versioned
} from "./store";
import { decodeDoc, decodeDocs, type UnreadableHandler, warnUnreadable } from "./unreadable";

export interface RedisStoreOptions {
	/** Namespace of every key, so that several clusters can share one server; default "isa". */
	prefix?: string;
	/** Told of each document `get` and `list` skip because it does not parse. */
	onUnreadable?: UnreadableHandler;
	/**
	 * Told when the server's persistence can lose acknowledged writes; without it nothing is
	 * checked (the services' stores pass their logger, mixins/store.mixin.ts).
	 */
	warn?: (message: string) => void;
	/** Credentials and TLS of the connection (services/shared/connections.ts), beside the URL's. */
	connection?: RedisOptions;
	/**
	 * A write is answered only once this many replicas have it (Redis's WAIT, at most
	 * `timeoutMs`), else refused with 503 STORE_UNAVAILABLE: acknowledged writes then survive a
	 * failover to one of them. Default: none, as Redis itself.
	 */
	wait?: RedisWait;
}

/**
 * The longest pause between two reconnection attempts (ioredis's default is 2 s): a command
 * sent while Redis is away waits for the next attempt, and Redis is found back as soon.
 */
const RECONNECT_MAX_DELAY = 500;

/** The settings to run Redis with, as the README and k8s/redis.yaml give them. */
export const DURABLE_SETTINGS = "appendonly yes, appendfsync always";

/**
 * What is wrong with a server's persistence, from CONFIG GET append* (name → value), or null
 * when every acknowledged write is on disk before the reply. `null` config: CONFIG is
 * disabled or renamed (managed services do that), so nothing can be said for sure.
 */
export function persistenceWarning(config: Record<string, string> | null): string | null {
	const fix = `Run Redis with ${DURABLE_SETTINGS} (redis-server --appendonly yes --appendfsync always).`;
	if (!config)
		return `Could not read the Redis server's persistence settings (CONFIG GET is not allowed). Make sure it runs with ${DURABLE_SETTINGS}, or acknowledged writes can be lost in a crash.`;
	if (config.appendonly !== "yes")
		return `Redis runs without its append-only file (appendonly ${config.appendonly ?? "unset"}): a restart loses what was written since the last snapshot, or everything. ${fix}`;
	if (config.appendfsync !== "always")
		return `Redis fsyncs its append-only file ${config.appendfsync === "no" ? "when the OS decides" : "once a second"} (appendfsync ${config.appendfsync ?? "unset"}): a crash can lose writes it already acknowledged. ${fix}`;
	return null;
}

// KEYS[1]: the collection's value hash, KEYS[2]: its version hash, ARGV[1]: the document id.
const GET = `
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return nil end
return {v, redis.call('HGET', KEYS[2], ARGV[1])}`;

// Flat (id, json, version) triples.
const LIST = `
local vals = redis.call('HGETALL', KEYS[1])
local out = {}
for i = 1, #vals, 2 do
	out[#out + 1] = vals[i]
	out[#out + 1] = vals[i + 1]
	out[#out + 1] = redis.call('HGET', KEYS[2], vals[i])
end
return out`;

// ARGV[2]: the JSON value.
const PUT = `
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return redis.call('HINCRBY', KEYS[2], ARGV[1], 1)`;

// ARGV[3]: the expected version (0: must not exist).
const CAS = `
local cur = tonumber(redis.call('HGET', KEYS[2], ARGV[1])) or 0
if cur ~= tonumber(ARGV[3]) then return nil end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return redis.call('HINCRBY', KEYS[2], ARGV[1], 1)`;

// ARGV[2], when given: the expected version.
const DELETE = `
local cur = tonumber(redis.call('HGET', KEYS[2], ARGV[1])) or 0
if cur == 0 or (ARGV[2] and cur ~= tonumber(ARGV[2])) then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1`;

// KEYS: value and version hash of each collection involved, in pairs; a check or write names its
// collection by pair index c (KEYS[2c+1], KEYS[2c+2]). ARGV: the number of checks, then
// (c, id, version) per check, then the number of writes, then (c, id, json) per write, where an
// empty json (never valid JSON) deletes.
const TRANSACT = `
local i = 2
for _ = 1, tonumber(ARGV[1]) do
	local c = tonumber(ARGV[i]) * 2
	local cur = tonumber(redis.call('HGET', KEYS[c + 2], ARGV[i + 1])) or 0
	if cur ~= tonumber(ARGV[i + 2]) then return 0 end
	i = i + 3
end
local n = tonumber(ARGV[i])
i = i + 1
for _ = 1, n do
	local c = tonumber(ARGV[i]) * 2
	local id = ARGV[i + 1]
	if ARGV[i + 2] == '' then
		redis.call('HDEL', KEYS[c + 1], id)
		redis.call('HDEL', KEYS[c + 2], id)
	else
		redis.call('HSET', KEYS[c + 1], id, ARGV[i + 2])
		redis.call('HINCRBY', KEYS[c + 2], id, 1)
	end
	i = i + 3
end
return 1`;

// KEYS[1]: the log's stream, KEYS[2]: its hash of the last seq and at. ARGV[1]: the JSON entry.
const APPEND = `
local t = redis.call('TIME')
local at = math.max(tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000),
	tonumber(redis.call('HGET', KEYS[2], 'at')) or 0)
local seq = redis.call('HINCRBY', KEYS[2], 'seq', 1)
redis.call('HSET', KEYS[2], 'at', string.format('%d', at))
redis.call('XADD', KEYS[1], '0-' .. seq, 'at', string.format('%d', at), 'entry', ARGV[1])
return seq`;

// As APPEND for the entries ARGV[2..] at seq ARGV[1], ARGV[1] + 1, …, only when the log's newest
// seq is ARGV[1] - 1; returns 1 when it appended, else 0.
const APPEND_AT = `
local seq = tonumber(ARGV[1])
if (tonumber(redis.call('HGET', KEYS[2], 'seq')) or 0) ~= seq - 1 then return 0 end
local t = redis.call('TIME')
local at = string.format('%d', math.max(tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000),
	tonumber(redis.call('HGET', KEYS[2], 'at')) or 0))
for i = 2, #ARGV do
	redis.call('XADD', KEYS[1], '0-' .. (seq + i - 2), 'at', at, 'entry', ARGV[i])
end
redis.call('HSET', KEYS[2], 'seq', seq + #ARGV - 2, 'at', at)
return 1`;

// ARGV[1]: drop entries below this seq, never the newest one. Returns how many it dropped.
const TRIM_LOG = `
local last = tonumber(redis.call('HGET', KEYS[2], 'seq')) or 0
local before = math.min(tonumber(ARGV[1]), last)
if before <= 1 then return 0 end
return redis.call('XTRIM', KEYS[1], 'MINID', '0-' .. before)`;

// ARGV: afterSeq, since ('' for none), limit, '1' for newest first. Entries' at never decrease,
// so the first seq at or after since is found by bisection; a trimmed seq counts as older.
const READ_LOG = `
local last = tonumber(redis.call('HGET', KEYS[2], 'seq')) or 0
local lo = math.max(math.floor(tonumber(ARGV[1])) + 1, 1)
if ARGV[2] ~= '' then
	local since = tonumber(ARGV[2])
	local hi = last + 1
	while lo < hi do
		local mid = math.floor((lo + hi) / 2)
		local e = redis.call('XRANGE', KEYS[1], '0-' .. mid, '0-' .. mid)
		if not e[1] or tonumber(e[1][2][2]) < since then lo = mid + 1 else hi = mid end
	end
end
if lo > last then return {} end
if ARGV[4] == '1' then
	return redis.call('XREVRANGE', KEYS[1], '+', '0-' .. lo, 'COUNT', ARGV[3])
end
return redis.call('XRANGE', KEYS[1], '0-' .. lo, '+', 'COUNT', ARGV[3])`;

/** A stream entry as XRANGE returns it: its id and its fields `at`, at, `entry`, json. */
type StreamEntry = [id: string, fields: [string, string, string, string]];

interface StoreCommands {
	storeGet(vals: string, vers: string, id: string): Promise<[string, string] | null>;
	storeList(vals: string, vers: string): Promise<string[]>;
	storePut(vals: string, vers: string, id: string, json: string): Promise<number>;
	storeCas(
		vals: string,
		vers: string,
		id: string,
		json: string,
		expected: number
	): Promise<number | null>;
	storeDelete(vals: string, vers: string, id: string, ...expected: number[]): Promise<number>;
	/** [numKeys, ...keys, ...args] in one array (ioredis flattens it). */
	storeTransact(numKeysKeysAndArgs: (string | number)[]): Promise<number>;
	storeAppend(stream: string, meta: string, json: string): Promise<number>;
	storeAppendAt(stream: string, meta: string, seq: number, ...json: string[]): Promise<number>;
	storeTrimLog(stream: string, meta: string, beforeSeq: number): Promise<number>;
	storeReadLog(
		stream: string,
		meta: string,
		afterSeq: number,
		since: number | "",
		limit: number,
		newestFirst: "1" | "0"
	): Promise<StreamEntry[]>;
}

function encode(value: unknown): string {
	const json = JSON.stringify(value);
	if (json === undefined) throw new TypeError("The store keeps JSON values; got undefined.");
	return json;
}

export class RedisStore implements Store {
	readonly kind = "redis";
	readonly prefix: string;
	private readonly redis: Redis & StoreCommands;
	private readonly onUnreadable: UnreadableHandler;
	/** Why the connection failed last (a refused TLS certificate, say), for the errors' reason. */
	private connectionError: Error | null = null;
	/** host:port, or the sentinels and the primary's name, for messages. */
	private readonly address: string;
	private readonly wait: RedisWait | null;

	/** `url`: redis://… or rediss://… as ioredis takes it, or redis-sentinel://… (redis-target.ts). */
	constructor(url: string, opts: RedisStoreOptions = {}) {
		this.prefix = opts.prefix ?? "isa";
		this.onUnreadable = opts.onUnreadable ?? warnUnreadable;
		this.wait = opts.wait ?? null;
		const target = redisTarget(url);
		this.redis = connectRedis(target, {
			...opts.connection,
			// The connection policy above: give up on a command at the first failed reconnect.
			maxRetriesPerRequest: 0,
			retryStrategy: times => Math.min(times * 50, RECONNECT_MAX_DELAY),
			connectTimeout: 3000,
			// A server that accepts connections but never answers is down too. A backstop: the
			// services bound each call tighter, by its size (fail-fast.ts, ISA_STORE_TIMEOUT).
			commandTimeout: 5000
		}) as Redis & StoreCommands;
		this.address = target.address;
		// Failures reach callers through rejected commands and ping(); without a listener ioredis
		// would print every failed reconnection attempt.
		this.redis.on("error", (err: Error) => (this.connectionError = err));
		this.redis.on("ready", () => (this.connectionError = null));
		this.redis.defineCommand("storeGet", { numberOfKeys: 2, lua: GET });
		this.redis.defineCommand("storeList", { numberOfKeys: 2, lua: LIST });
		this.redis.defineCommand("storePut", { numberOfKeys: 2, lua: PUT });
		this.redis.defineCommand("storeCas", { numberOfKeys: 2, lua: CAS });
		this.redis.defineCommand("storeDelete", { numberOfKeys: 2, lua: DELETE });
		this.redis.defineCommand("storeTransact", { lua: TRANSACT });
		this.redis.defineCommand("storeAppend", { numberOfKeys: 2, lua: APPEND });
		this.redis.defineCommand("storeReadLog", { numberOfKeys: 2, lua: READ_LOG });
		this.redis.defineCommand("storeAppendAt", { numberOfKeys: 2, lua: APPEND_AT });
		this.redis.defineCommand("storeTrimLog", { numberOfKeys: 2, lua: TRIM_LOG });
		if (opts.warn) void this.checkPersistence(opts.warn);
	}

	/** Warns once, at start, when the server can lose acknowledged writes. */
	private async checkPersistence(warn: (message: string) => void): Promise<void> {
		let config: Record<string, string> | null = null;
		try {
			const flat = (await this.redis.config("GET", "append*")) as string[];
			config = {};
			for (let i = 0; i + 1 < flat.length; i += 2) config[flat[i]] = flat[i + 1];
		} catch (err) {
			// The server is not reachable now: it is checked when a process starts next.
			if (!(err instanceof ReplyError)) return;
		}
		const warning = persistenceWarning(config);
		if (warning) warn(warning);
	}

	async get<T>(collection: string, id: string): Promise<Versioned<T> | null> {
		const reply = await this.call(this.redis.storeGet(...this.docKeys(collection), id));
		if (!reply) return null;
		const value = decodeDoc<T>(collection, id, reply[0], this.onUnreadable);
		return value === undefined ? null : { value, version: Number(reply[1]) };
	}

	async versions(collection: string, ids: string[]): Promise<number[]> {
		if (ids.length === 0) return [];
		const versions = await this.call(this.redis.hmget(this.docKeys(collection)[1], ...ids));
		return versions.map(v => Number(v ?? 0));
	}

	async listVersions(collection: string): Promise<Map<string, number>> {
		const versions = await this.call(this.redis.hgetall(this.docKeys(collection)[1]));
		const ids = Object.keys(versions).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
		return new Map(ids.map(id => [id, Number(versions[id])]));
	}

	async list<T>(collection: string): Promise<StoredDoc<T>[]> {
		const flat = await this.call(this.redis.storeList(...this.docKeys(collection)));
		const rows: Array<{ id: string; value: string; version: number }> = [];
		for (let i = 0; i < flat.length; i += 3)
			rows.push({ id: flat[i], value: flat[i + 1], version: Number(flat[i + 2]) });
		const docs = decodeDocs<T>(collection, rows, this.onUnreadable);
		return docs.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
	}

	async put<T>(collection: string, id: string, value: T): Promise<number> {
		return this.write(this.redis.storePut(...this.docKeys(collection), id, encode(value)));
	}

	async cas<T>(
		collection: string,
		id: string,
		value: T,
		expected: number
	): Promise<number | null> {
		const json = encode(value);
		return this.write(this.redis.storeCas(...this.docKeys(collection), id, json, expected));
	}

	async delete(collection: string, id: string, expected?: number): Promise<boolean> {
		const extra = expected === undefined ? [] : [expected];
		return (
			(await this.write(
				this.redis.storeDelete(...this.docKeys(collection), id, ...extra)
			)) === 1
		);
	}

	async transact(checks: VersionCheck[], writes: DocWrite[]): Promise<boolean> {
		const collections = new Map<string, number>();
		const keys: string[] = [];
		const index = (collection: string): number => {
			let c = collections.get(collection);
			if (c === undefined) {
				c = collections.size;
				collections.set(collection, c);
				keys.push(...this.docKeys(collection));
			}
			return c;
		};
		const args: (string | number)[] = [checks.length];
		for (const check of checks) args.push(index(check.collection), check.id, check.version);
		args.push(writes.length);
		for (const w of writes) {
			args.push(index(w.collection), w.id, w.value === null ? "" : encode(w.value));
		}
		// One array, not spread into arguments: a group commit has tens of thousands of them,
		// past what a JavaScript call takes.
		return (await this.write(this.redis.storeTransact([keys.length, ...keys, ...args]))) === 1;
	}

	async append<T>(log: string, entry: T): Promise<number> {
		return this.write(this.redis.storeAppend(...this.logKeys(log), encode(entry)));
	}

	async appendAt<T>(log: string, seq: number, entries: T[]): Promise<boolean> {
		if (entries.length === 0) return false;
		const json = entries.map(encode);
		return (
			(await this.write(this.redis.storeAppendAt(...this.logKeys(log), seq, ...json))) === 1
		);
	}

	async trimLog(log: string, beforeSeq: number): Promise<number> {
		return this.write(this.redis.storeTrimLog(...this.logKeys(log), beforeSeq));
	}

	async readLog<T>(log: string, query: LogQuery = {}): Promise<LogEntry<T>[]> {
		const limit = query.limit ?? 100;
		if (limit <= 0) return [];
		const entries = await this.call(
			this.redis.storeReadLog(
				...this.logKeys(log),
				query.afterSeq ?? 0,
				query.since ?? "",
				limit,
				query.newestFirst ? "1" : "0"
			)
		);
		return entries.map(([id, fields]) => ({
			seq: Number(id.slice(2)),
			at: Number(fields[1]),
			entry: JSON.parse(fields[3]) as T
		}));
	}

	async ping(): Promise<void> {
		await this.call(this.redis.ping());
	}

	async close(): Promise<void> {
		if (this.redis.status === "ready") await this.redis.quit().catch(() => undefined);
		// Also after QUIT: with Sentinel, the connections that listen for a failover close only
		// here.
		this.redis.disconnect();
	}

	private docKeys(collection: string): [vals: string, vers: string] {
		return [`${this.prefix}:doc:${collection}`, `${this.prefix}:ver:${collection}`];
	}

	private logKeys(log: string): [stream: string, meta: string] {
		return [`${this.prefix}:log:${log}`, `${this.prefix}:logmeta:${log}`];
	}

	/**
	 * A write's `call`, answered once `wait.replicas` replicas have it: WAIT after it on the same
	 * connection covers it and every write before it. A write that the replicas did not confirm
	 * in time is on the primary, and refused here, so that the caller does not count on it.
	 */
	private async write<R>(command: Promise<R>): Promise<R> {
		const result = await this.call(command);
		if (!this.wait?.replicas) return result;
		const { replicas, timeoutMs } = this.wait;
		const acked = await this.call(this.redis.wait(replicas, timeoutMs));
		if (acked < replicas)
			throw new StoreUnavailableError(
				`a write reached ${acked} of the ${replicas} replica(s) ISA_REDIS_WAIT_REPLICAS ` +
					`asks for within ${formatDuration(timeoutMs)}; it is on the primary, and lost if ` +
					"the primary fails before a replica has it",
				{ replicas: acked, wanted: replicas }
			);
		return result;
	}

	/** Awaits a command, turning Redis's failures into what they mean (redis-errors.ts). */
	private async call<R>(command: Promise<R>): Promise<R> {
		try {
			return await command;
		} catch (err) {
			throw redisError(err, this.address, this.connectionError);
		}
	}
}
