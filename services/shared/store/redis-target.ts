/**
 * Where a Redis store connects, from its STORE URL: one server (`redis://…`, `rediss://…`, as
 * ioredis takes them), or the primary that Redis Sentinel names:
 *
 *   redis-sentinel://[user:password@]host[:port][,host[:port]…]/<primary name>[/<db>]
 *
 * ioredis asks the sentinels (port 26379 unless given) which server is the primary, connects
 * to it, and, told of a failover by the sentinels (`failoverDetector`) or by a lost
 * connection, asks again and moves to the new one. The URL's credentials are the primary's
 * (ISA_REDIS_USERNAME and ISA_REDIS_PASSWORD set them too); the sentinels are asked without
 * credentials or TLS.
 */
import Redis, { type RedisOptions } from "ioredis";
import { InvalidInputError } from "../errors";
import { redactUrl } from "../secrets";

const SENTINEL_PORT = 26379;

export interface RedisTarget {
	/** The URL for ioredis, or null: connect with `options` alone (Sentinel). */
	url: string | null;
	options: RedisOptions;
	/** Where it connects, without credentials, for messages. */
	address: string;
}

/** `redis://`, `rediss://` or `redis-sentinel://`. */
export function isRedisUrl(url: string): boolean {
	return /^(rediss?|redis-sentinel):\/\//i.test(url);
}

export function redisTarget(url: string): RedisTarget {
	if (!/^redis-sentinel:\/\//i.test(url)) {
		let address = url;
		try {
			const u = new URL(url);
			address = `${u.hostname}:${u.port || 6379}`;
		} catch {
			// ioredis names what it cannot parse when it connects.
		}
		return { url, options: {}, address };
	}
	const rest = url.slice("redis-sentinel://".length);
	const at = rest.lastIndexOf("@", rest.indexOf("/") === -1 ? undefined : rest.indexOf("/"));
	const credentials = at === -1 ? "" : rest.slice(0, at);
	const [hosts, name, db, ...extra] = rest.slice(at + 1).split("/");
	const fail = (why: string) =>
		new InvalidInputError(
			`STORE ${redactUrl(url)}: ${why}; the form is ` +
				"redis-sentinel://host:26379,host:26379,host:26379/<primary name>",
			{ name: "STORE" }
		);
	if (!name) throw fail("the primary's name is missing after the hosts");
	if (extra.length || (db !== undefined && !/^\d+$/.test(db)))
		throw fail("after the primary's name only a database number may follow");
	const sentinels = hosts.split(",").map(hostPort => {
		const m = /^([^:]+|\[[^\]]+\])(?::(\d+))?$/.exec(hostPort.trim());
		if (!m) throw fail(`'${hostPort}' is not host[:port]`);
		return { host: m[1].replace(/^\[|\]$/g, ""), port: m[2] ? Number(m[2]) : SENTINEL_PORT };
	});
	const options: RedisOptions = {
		sentinels,
		name: decodeURIComponent(name),
		// A failover is heard from the sentinels at once, not at the next lost command.
		failoverDetector: true,
		...(db ? { db: Number(db) } : {})
	};
	if (credentials) {
		const colon = credentials.indexOf(":");
		const user = colon === -1 ? "" : credentials.slice(0, colon);
		const password = colon === -1 ? credentials : credentials.slice(colon + 1);
		if (user) options.username = decodeURIComponent(user);
		if (password) options.password = decodeURIComponent(password);
	}
	return {
		url: null,
		options,
		address: `the primary '${options.name}' of the sentinels ${sentinels
			.map(s => `${s.host}:${s.port}`)
			.join(",")}`
	};
}

/** A client of the target, with `options` over what its URL says. */
export function connectRedis(target: RedisTarget, options: RedisOptions): Redis {
	const all = { ...target.options, ...options };
	return target.url ? new Redis(target.url, all) : new Redis(all);
}
