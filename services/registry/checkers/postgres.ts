import { Client as PgClient } from "pg";
import { CheckTarget, ProbeChecker, Scope, splitCredentials } from "./base";

/** A real connection and `SELECT 1`. */
export class PostgresChecker extends ProbeChecker {
	protected async probe(target: CheckTarget, scope: Scope): Promise<void> {
		const { url, user, password } = splitCredentials(target, "postgres");
		// pg lets the connection string override its user/password options: put them there.
		url.username = user ?? "";
		url.password = password ?? "";
		const client = new PgClient({
			connectionString: url.href,
			connectionTimeoutMillis: target.timeoutMs,
			query_timeout: target.timeoutMs
		});
		// A failure after connecting is also an 'error' event; unheard, it would crash the process.
		client.on("error", () => undefined);
		scope.onClose(() => client.end());
		scope.step = `connect to ${url.host}`;
		await client.connect();
		scope.step = "SELECT 1";
		await client.query("SELECT 1");
	}
}
