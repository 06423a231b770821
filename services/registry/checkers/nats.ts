import { connect as natsConnect, NatsError } from "nats";
import { CheckTarget, nonEmpty, ProbeChecker, Scope, splitCredentials } from "./base";

/** Connect and flush (a round trip to the server), credentials from the URL or config. */
export class NatsChecker extends ProbeChecker {
	protected async probe(target: CheckTarget, scope: Scope): Promise<void> {
		const { url, user, password } = splitCredentials(target, "nats");
		scope.step = `connect to ${url.host}`;
		try {
			const nc = await natsConnect({
				servers: url.href,
				user,
				pass: password,
				token: nonEmpty(target.config.token),
				timeout: target.timeoutMs,
				reconnect: false,
				ignoreClusterUpdates: true
			});
			scope.onClose(() => nc.close());
			scope.step = "flush";
			await nc.flush();
		} catch (err) {
			// nats.js reports bare codes ("CONNECTION_REFUSED"); say where, in Node's words.
			if (!(err instanceof NatsError)) throw err;
			throw new Error(
				err.code === "CONNECTION_REFUSED"
					? `connect ECONNREFUSED ${url.host}`
					: `${err.message} from ${url.host}`,
				{ cause: err }
			);
		}
	}
}
