/**
 * The audit key (HMAC of the record chain) is not the JWT secret: whoever can mint tokens must
 * not also be able to rewrite history. ISA_AUDIT_KEY sets it (a cluster gives every audit
 * instance the same one); a single node makes one on first start, kept in the data directory as
 * `audit-key`, owner-only, the way the JWT secret is made (services/gateway/secret.ts).
 */
import crypto from "crypto";
import fs from "fs";
import path from "path";
import { loadOrCreateSecretFile, type Warn } from "../shared/private-files";

export const AUDIT_KEY_FILE = "audit-key";

export function auditKeyPath(dataDir: string): string {
	return path.join(dataDir, AUDIT_KEY_FILE);
}

/**
 * ISA_AUDIT_KEY, else the data directory's key, made on first use; a looser data directory or
 * key file is tightened first, and `warn` says so.
 */
export function loadOrCreateAuditKey(
	configured: string | null,
	dataDir: string,
	warn?: Warn
): string {
	if (configured) return configured;
	const { value } = loadOrCreateSecretFile(
		dataDir,
		AUDIT_KEY_FILE,
		() => crypto.randomBytes(32).toString("base64url") + "\n",
		warn
	);
	return value.toString("utf8").trim();
}

/** The key a verifier uses: ISA_AUDIT_KEY or the data directory's; null when neither exists. */
export function existingAuditKey(configured: string | null, dataDir: string): string | null {
	if (configured) return configured;
	try {
		return fs.readFileSync(auditKeyPath(dataDir), "utf8").trim();
	} catch {
		return null;
	}
}
