/**
 * Where a process remembers the cluster identity it saw (identity.ts), so that a restarted
 * process still knows which store it belongs to. In memory by default; on disk once a node's
 * entry point (bin/isa.ts) names its data directory, one small file per store or cluster under
 * <dataDir>/cluster-identity/, named by a hash of its key (namespace and URL, so that test
 * clusters sharing a data directory keep apart, and a password in a URL is never written).
 *
 * A file is remembered only once a process that runs a node asks for it: a test's in-process
 * broker on a fresh store must not be told that the store is another's by a file an earlier
 * run left behind.
 */
import crypto from "crypto";
import fs from "fs";
import path from "path";
import { ensurePrivateDir } from "../private-files";
import { type ClusterIdentity, parseIdentity } from "./identity";

export interface IdentityMemory {
	load(): ClusterIdentity | null;
	save(identity: ClusterIdentity): void;
}

let dataDir: string | null = null;

/** Remember identities in files under `dir` from now on (null: in memory only). */
export function rememberIdentitiesIn(dir: string | null): void {
	dataDir = dir;
}

/** A memory that lives as long as the process. */
export function inMemory(): IdentityMemory {
	let kept: ClusterIdentity | null = null;
	return {
		load: () => kept,
		save: identity => {
			kept = identity;
		}
	};
}

/** The file under `dir` that remembers the identity of `key`. */
export function identityFile(dir: string, key: string): string {
	const name = crypto.createHash("sha256").update(key).digest("hex").slice(0, 24);
	return path.join(dir, "cluster-identity", `${name}.json`);
}

/**
 * A memory kept in `file`, in memory too (a file that cannot be written leaves the process
 * remembering, with a warning). An unreadable file counts as none, with a warning.
 */
export function inFile(
	file: string,
	warn: (message: string) => void = () => undefined
): IdentityMemory {
	const mem = inMemory();
	let loaded = false;
	return {
		load() {
			if (!loaded) {
				loaded = true;
				try {
					const raw = JSON.parse(fs.readFileSync(file, "utf8")) as { identity?: unknown };
					const identity = parseIdentity(raw.identity);
					if (identity) mem.save(identity);
					else warn(`${file} holds no cluster identity; ignored.`);
				} catch (err) {
					if ((err as NodeJS.ErrnoException).code !== "ENOENT")
						warn(`${file} cannot be read (${(err as Error).message}); ignored.`);
				}
			}
			return mem.load();
		},
		save(identity) {
			mem.save(identity);
			loaded = true;
			try {
				ensurePrivateDir(path.dirname(path.dirname(file)));
				ensurePrivateDir(path.dirname(file));
				// Written aside and renamed: a crash never leaves half a file.
				const tmp = `${file}.${process.pid}.tmp`;
				fs.writeFileSync(tmp, JSON.stringify({ identity }) + "\n", { mode: 0o600 });
				fs.renameSync(tmp, file);
			} catch (err) {
				warn(`Cluster identity not saved to ${file}: ${(err as Error).message}`);
			}
		}
	};
}

/** The memory for `key`: a file when a data directory was named, else the process's. */
export function identityMemory(key: string, warn?: (message: string) => void): IdentityMemory {
	return dataDir ? inFile(identityFile(dataDir, key), warn) : inMemory();
}
