/**
 * The single-node default needs a JWT secret without anyone setting one: it is made once, kept
 * in the data directory (owner-only), and reused on every restart so that printed tokens stay
 * valid. Clusters set ISA_JWT_SECRET on every gateway instead.
 */
import crypto from "crypto";
import fs from "fs";
import path from "path";

export const SECRET_FILE = "jwt-secret";

export function secretPath(dataDir: string): string {
	return path.join(dataDir, SECRET_FILE);
}

/** The secret of the data directory, made on first use. */
export function loadOrCreateSecret(dataDir: string): { secret: string; created: boolean } {
	const file = secretPath(dataDir);
	try {
		return { secret: fs.readFileSync(file, "utf8").trim(), created: false };
	} catch (err) {
		if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
	}
	fs.mkdirSync(dataDir, { recursive: true });
	const secret = crypto.randomBytes(32).toString("base64url");
	try {
		// "wx": if another process made it first, keep theirs.
		fs.writeFileSync(file, secret + "\n", { mode: 0o600, flag: "wx" });
		return { secret, created: true };
	} catch (err) {
		if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
		return { secret: fs.readFileSync(file, "utf8").trim(), created: false };
	}
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
