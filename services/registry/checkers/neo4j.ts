import neo4j from "neo4j-driver";
import { CheckTarget, isError, ProbeChecker, Scope, splitCredentials } from "./base";

/**
 * `driver.verifyConnectivity()` over bolt:// or neo4j://, credentials from the URL or
 * config.username/password (none: the server must allow unauthenticated access).
 */
export class Neo4jChecker extends ProbeChecker {
	protected async probe(target: CheckTarget, scope: Scope): Promise<void> {
		const { url, user, password } = splitCredentials(target, "bolt");
		const driver = neo4j.driver(
			url.href,
			user === undefined ? undefined : neo4j.auth.basic(user, password ?? ""),
			{ connectionTimeout: target.timeoutMs, connectionAcquisitionTimeout: target.timeoutMs }
		);
		scope.onClose(() => driver.close());
		scope.step = `verifyConnectivity on ${url.host}`;
		try {
			await driver.verifyConnectivity();
		} catch (err) {
			throw neo4jReason(err);
		}
	}
}

/**
 * The driver wraps the socket error twice: in a routing error (neo4j://) whose cause holds it,
 * and in a paragraph of advice that ends "Caused by: connect ECONNREFUSED ...". Keep that end.
 */
function neo4jReason(err: unknown): unknown {
	const inner = isError(err) && isError(err.cause) ? err.cause : err;
	if (!isError(inner)) return inner;
	const marker = "Caused by: ";
	const at = inner.message.lastIndexOf(marker);
	return at < 0 ? inner : new Error(inner.message.slice(at + marker.length));
}
