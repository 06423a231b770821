import { DuckDBInstance } from "@duckdb/node-api";
import { CheckTarget, localPath, ProbeChecker, Scope } from "./base";

/**
 * The database file opened read-only and `SELECT 1`. DuckDB lets one process write a file at a
 * time, so a file held open for writing by another process is reported as unhealthy (locked).
 */
export class DuckDbChecker extends ProbeChecker {
	protected async probe(target: CheckTarget, scope: Scope): Promise<void> {
		const file = localPath(target.endpoint, "duckdb");
		scope.step = `open ${file}`;
		const instance = await DuckDBInstance.create(file, { access_mode: "READ_ONLY" });
		scope.onClose(() => instance.closeSync());
		const connection = await instance.connect();
		scope.onClose(() => connection.closeSync());
		scope.step = "SELECT 1";
		await connection.run("SELECT 1");
	}
}
