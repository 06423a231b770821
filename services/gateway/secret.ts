/**
 * The single-node default needs a JWT secret without anyone setting one: it is made once, kept
 * in the data directory (owner-only), and reused on every restart so that printed tokens stay
 * valid. Clusters set ISA_JWT_SECRET on every gateway instead.
 */
import crypto from "crypto";
import fs from "fs";
import path from "path";
import { loadOrCreateSecretFile, Warn } from "../shared/private-files";

export const SECRET_FILE = "jwt-secret";

export function secretPath(dataDir: string): string {
	return path.join(dataDir, SECRET_FILE);
}

/**
 * The secret of the data directory, made on first use; the directory (0700) and the file (0600)
 * are tightened first when they were looser, and `warn` says so.
 */
export function loadOrCreateSecret(
	dataDir: string,
	warn?: Warn
): { secret: string; created: boolean } {
	const { value, created } = loadOrCreateSecretFile(
		dataDir,
		SECRET_FILE,
		() => crypto.randomBytes(32).toString("base64url") + "\n",
		warn
	);
	return { secret: value.toString("utf8").trim(), created };
}

/**
 * The HS256 secret command-line tools mint with: ISA_JWT_SECRET, or the one a single node keeps
 * in its data directory; null when there is neither (the node never started here).
 */
export function existingSecret(jwtSecret: string | null, dataDir: string): string | null {
	if (jwtSecret) return jwtSecret;
	try {
		return fs.readFileSync(secretPath(dataDir), "utf8").trim();
	} catch {
		return null;
	}
}

/** ISA_JWT_PUBLIC_KEY may hold the PEM itself or the path of a PEM file. */
export function readPublicKey(value: string | null): string | null {
	if (!value) return null;
	return value.includes("-----BEGIN") ? value : fs.readFileSync(value, "utf8");
}
