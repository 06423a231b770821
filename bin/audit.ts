/**
 * The audit log from the command line, reading the store and the key from the same environment
 * as a node (STORE, ISA_DATA_DIR, NAMESPACE, ISA_AUDIT_KEY):
 *
 *   npm run audit -- verify     walks the hash chain: prints OK with the count, or names the
 *                               first broken link (seq, id, why) and exits 1
 *
 * Exit codes: 0 the chain holds, 1 it is broken, 2 it could not be checked (no key, no store).
 */
import { openStore } from "../services/shared/store";
import { redisConnection } from "../services/shared/connections";
import { loadEnv } from "../services/shared/env";
import { existingAuditKey, auditKeyPath } from "../services/audit/key";
import { AuditLog } from "../services/audit/log";

const USAGE = "usage: npm run audit -- verify";

function fail(message: string): never {
	console.error(`audit: ${message}`);
	process.exit(2);
}

async function verify(): Promise<number> {
	const env = loadEnv();
	const key =
		existingAuditKey(env.auditKey, env.dataDir) ??
		fail(
			`no audit key: set ISA_AUDIT_KEY, or run beside a node that made ${auditKeyPath(env.dataDir)}.`
		);
	const store = openStore(env.store, {
		prefix: env.namespace || "isa",
		connection: redisConnection(env.redis)
	});
	try {
		const result = await new AuditLog(store, key).verify();
		const from = result.anchor
			? ` (kept from seq ${result.anchor.seq}, older ones trimmed)`
			: "";
		if (result.ok) {
			const range = result.count ? `, seq ${result.first}..${result.last}` : "";
			console.log(`OK: ${result.count} audit records${range}${from}; the chain holds.`);
			return 0;
		}
		const b = result.broken!;
		console.log(
			`BROKEN at seq ${b.seq} (record ${b.id ?? "?"}): ${b.reason}. ` +
				`${result.count} records before it verified${from}.`
		);
		return 1;
	} catch (err) {
		fail(`cannot read the audit log from ${env.store}: ${(err as Error).message}`);
	} finally {
		await store.close();
	}
}

async function main(): Promise<void> {
	const [command] = process.argv.slice(2);
	if (command !== "verify") fail(USAGE);
	process.exit(await verify());
}

void main();
