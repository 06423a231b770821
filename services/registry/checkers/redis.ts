import Redis from "ioredis";
import { CheckTarget, ProbeChecker, Scope, splitCredentials } from "./base";

/** `PING`, on a connection that neither retries nor queues. */
export class RedisChecker extends ProbeChecker {
	protected async probe(target: CheckTarget, scope: Scope): Promise<void> {
		const { url, user, password } = splitCredentials(target, "redis");
		const client = new Redis(url.href, {
			username: user,
			password,
			lazyConnect: true,
			connectTimeout: target.timeoutMs,
			commandTimeout: target.timeoutMs,
			maxRetriesPerRequest: 0,
			retryStrategy: () => null,
			enableOfflineQueue: false
		});
		// connect() only says "Connection is closed."; the 'error' event says why.
		let cause: Error | undefined;
		client.on("error", (err: Error) => {
			cause ??= err;
		});
		scope.onClose(() => client.disconnect());
		scope.step = `connect to ${url.host}`;
		try {
			await client.connect();
		} catch (err) {
			throw cause ?? err;
		}
		scope.step = "PING";
		const reply = await client.ping();
		if (reply !== "PONG") throw new Error(`PING answered '${reply}'`);
	}
}
