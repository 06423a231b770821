/**
 * The data directory holds what a workload must never read: the JWT secret, the audit key, the
 * embedded store. It is kept owner-only (0700) and every secret in it 0600, and a directory or
 * file found looser at start is tightened, with a warning, instead of being trusted.
 */
import fs from "fs";
import path from "path";

export const PRIVATE_DIR_MODE = 0o700;
export const SECRET_FILE_MODE = 0o600;

/** Where a tightened mode is reported (a service's logger.warn). */
export type Warn = (message: string) => void;

const octal = (mode: number) => (mode & 0o777).toString(8).padStart(4, "0");

/**
 * A mode the data directory may keep: nothing for others, and for the group at most search
 * (x), which the agent grants its workload user's group so that a replica can reach its own
 * directory inside (see node-agent/runner/sandbox.ts); search alone lists nothing.
 */
export function isPrivateDirMode(mode: number): boolean {
	return (mode & 0o077 & ~0o010) === 0;
}

/**
 * Creates `dir` 0700, or tightens an existing one that is looser. Missing parents get the
 * usual mode: a workload user may need to pass through them.
 */
export function ensurePrivateDir(dir: string, warn?: Warn): void {
	fs.mkdirSync(path.dirname(path.resolve(dir)), { recursive: true });
	try {
		fs.mkdirSync(dir, { mode: PRIVATE_DIR_MODE });
	} catch (err) {
		if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
	}
	const { mode } = fs.statSync(dir);
	if (isPrivateDirMode(mode)) return;
	fs.chmodSync(dir, PRIVATE_DIR_MODE);
	warn?.(`${dir} was mode ${octal(mode)}; set to ${octal(PRIVATE_DIR_MODE)} (owner only).`);
}

/** Tightens an existing file to 0600; a missing one is left missing. */
export function ensurePrivateFile(file: string, warn?: Warn): void {
	let mode: number;
	try {
		mode = fs.statSync(file).mode;
	} catch (err) {
		if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
		throw err;
	}
	if ((mode & 0o077) === 0) return;
	fs.chmodSync(file, SECRET_FILE_MODE);
	warn?.(`${file} was mode ${octal(mode)}; set to ${octal(SECRET_FILE_MODE)} (owner only).`);
}

/**
 * Writes `dir/name` 0600 in the private directory `dir`, only if it does not exist yet.
 * false: another process made it first; theirs is kept.
 */
export function writeSecretFile(dir: string, name: string, bytes: string | Buffer): boolean {
	ensurePrivateDir(dir);
	try {
		// "wx": never replace a secret another process just made (two gateways on one dir).
		fs.writeFileSync(path.join(dir, name), bytes, { mode: SECRET_FILE_MODE, flag: "wx" });
		return true;
	} catch (err) {
		if ((err as NodeJS.ErrnoException).code === "EEXIST") return false;
		throw err;
	}
}

/**
 * The secret kept in `dir/name`, made with `make()` on first use. The directory and an existing
 * file are tightened to 0700 and 0600 first.
 */
export function loadOrCreateSecretFile(
	dir: string,
	name: string,
	make: () => string | Buffer,
	warn?: Warn
): { value: Buffer; created: boolean } {
	const file = path.join(dir, name);
	ensurePrivateDir(dir, warn);
	ensurePrivateFile(file, warn);
	try {
		return { value: fs.readFileSync(file), created: false };
	} catch (err) {
		if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
	}
	const value = make();
	if (writeSecretFile(dir, name, value))
		return { value: Buffer.isBuffer(value) ? value : Buffer.from(value), created: true };
	return { value: fs.readFileSync(file), created: false };
}
