/**
 * Where and as whom a process replica runs. Each replica gets a directory of its own under the
 * data directory, `<dataDir>/workloads/<nodeID>/<workloadId>/<replica>`, made fresh when the
 * placement starts, kept across the restarts of that placement and removed when it stops for
 * good. The nodeID keeps two agents that share a data directory (tests, a laptop) from wiping
 * each other's replicas when one moves between them.
 *
 * An agent running as root starts replicas as ISA_WORKLOAD_USER (default `nobody`): the data
 * directory stays closed to that user except for search (x) through the path to its own
 * directories, so it cannot read the JWT secret, the audit key or the store, nor signal the
 * agent. An agent that is not root has no other uid to give: replicas run as its own user.
 */
import { execFileSync } from "child_process";
import fs from "fs";
import path from "path";
import { InvalidInputError } from "../../services/shared/errors";

export const DEFAULT_WORKLOAD_USER = "nobody";

/** The uid and gid replicas are started with. */
export interface WorkloadUser {
	name: string;
	uid: number;
	gid: number;
}

/** A user's entry of /etc/passwd ("name:x:uid:gid:…"), or null. */
export function passwdEntry(passwd: string, name: string): WorkloadUser | null {
	for (const line of passwd.split("\n")) {
		const [user, , uid, gid] = line.split(":");
		if (user === name && /^\d+$/.test(uid ?? "") && /^\d+$/.test(gid ?? ""))
			return { name, uid: Number(uid), gid: Number(gid) };
	}
	return null;
}

/** What resolveWorkloadUser needs to know of the machine; tests hand in their own. */
export interface UserLookup {
	/** The agent's own uid (process.getuid()). */
	uid: number;
	/** A user by name, or null when the machine knows none of that name. */
	find(name: string): WorkloadUser | null;
}

/** /etc/passwd first, then `id` for users only NSS knows (LDAP, sssd). */
export function systemLookup(): UserLookup {
	return {
		uid: process.getuid?.() ?? -1,
		find(name) {
			try {
				const entry = passwdEntry(fs.readFileSync("/etc/passwd", "utf8"), name);
				if (entry) return entry;
			} catch {
				// No /etc/passwd: ask id.
			}
			try {
				const id = (flag: string) =>
					Number(
						execFileSync("id", [flag, "--", name], { stdio: "pipe" }).toString().trim()
					);
				const uid = id("-u");
				const gid = id("-g");
				return Number.isInteger(uid) && Number.isInteger(gid) ? { name, uid, gid } : null;
			} catch {
				return null;
			}
		}
	};
}

/**
 * The user replicas run as. As root: ISA_WORKLOAD_USER, `nobody` when unset; a name the machine
 * does not know, or `uid:gid` that is not two numbers, stops the agent with the reason. Not
 * root: null (the agent's own user), and a setting naming anyone else is refused, since the
 * agent could not honour it.
 */
export function resolveWorkloadUser(
	setting: string | null,
	lookup: UserLookup
): WorkloadUser | null {
	const wanted = setting?.trim() || null;
	const numeric = wanted ? /^(\d+)(?::(\d+))?$/.exec(wanted) : null;
	const user = numeric
		? {
				name: wanted as string,
				uid: Number(numeric[1]),
				gid: Number(numeric[2] ?? numeric[1])
			}
		: lookup.find(wanted ?? DEFAULT_WORKLOAD_USER);
	if (lookup.uid !== 0) {
		if (wanted && user?.uid !== lookup.uid)
			throw new InvalidInputError(
				`ISA_WORKLOAD_USER='${wanted}' needs the agent to run as root; it runs as uid ${lookup.uid}. ` +
					"Unset ISA_WORKLOAD_USER to run replicas as the agent's own user, or start the agent as root.",
				{ name: "ISA_WORKLOAD_USER", value: wanted, uid: lookup.uid }
			);
		return null;
	}
	if (!user)
		throw new InvalidInputError(
			`ISA_WORKLOAD_USER='${wanted ?? DEFAULT_WORKLOAD_USER}' is not a user of this machine. ` +
				"Name an existing unprivileged user (see /etc/passwd), or uid:gid.",
			{ name: "ISA_WORKLOAD_USER", value: wanted ?? DEFAULT_WORKLOAD_USER }
		);
	return user;
}

/** A name as one path segment: nothing in it can climb out (`..`) or split it (`/`). */
export function pathSegment(name: string): string {
	// encodeURIComponent keeps dots, and writes `%` as %25, so the escapes below cannot collide.
	if (/^\.*$/.test(name)) return name.replace(/\./g, "%2E") || "%00";
	return encodeURIComponent(name);
}

/** The directory under which this node's replicas get theirs. */
export function sandboxRoot(dataDir: string, nodeID: string): string {
	return path.join(dataDir, "workloads", pathSegment(nodeID));
}

/** The directory of one replica. */
export function sandboxDir(root: string, workloadId: string, replica: number): string {
	return path.join(root, pathSegment(workloadId), String(replica));
}

/**
 * Makes `dir` empty, 0700 and owned by `user` (when given), and the directories from the data
 * directory down to it passable (x) by the user's group and by nobody else: a replica can reach
 * its own directory by its path, list none of its neighbours', and read nothing of the agent's.
 */
export function prepareSandbox(dataDir: string, dir: string, user: WorkloadUser | null): void {
	fs.rmSync(dir, { recursive: true, force: true });
	preparePassable(dataDir, path.dirname(dir), user);
	fs.mkdirSync(dir, { mode: 0o700 });
	if (user) fs.chownSync(dir, user.uid, user.gid);
}

/**
 * Makes `dir` and the directories from the data directory down to it, the agent's, passable
 * (x) by the user's group and by nobody else (0700 without a user).
 */
export function preparePassable(dataDir: string, dir: string, user: WorkloadUser | null): void {
	let parent = dataDir;
	for (const segment of ["", ...path.relative(dataDir, dir).split(path.sep)]) {
		parent = path.join(parent, segment);
		fs.mkdirSync(parent, { recursive: true, mode: 0o700 });
		if (user) fs.chownSync(parent, fs.statSync(parent).uid, user.gid);
		fs.chmodSync(parent, user ? 0o710 : 0o700);
	}
}

/**
 * The first directory above `dir` that `user` may not pass through (no search permission for
 * it as owner, as its primary group or as anyone: replicas keep no supplementary groups), or
 * null. A replica still starts there (it is put in its directory before it becomes the user)
 * but cannot reach its directory, its HOME, by path.
 */
export function blockedAncestor(
	dir: string,
	user: WorkloadUser,
	stat: (p: string) => { uid: number; gid: number; mode: number } = fs.statSync
): string | null {
	const chain: string[] = [];
	for (let d = path.dirname(path.resolve(dir)); ; d = path.dirname(d)) {
		chain.unshift(d);
		if (d === path.dirname(d)) break;
	}
	for (const d of chain) {
		const { uid, gid, mode } = stat(d);
		const bit = uid === user.uid ? 0o100 : gid === user.gid ? 0o010 : 0o001;
		if ((mode & bit) === 0) return d;
	}
	return null;
}

/**
 * Removes what an earlier agent left of this node's replicas, but for the directories in
 * `keep`: those of the replicas the new agent adopted, which still run in them.
 */
export function clearSandboxes(root: string, keep: Iterable<string> = []): void {
	const kept = new Set([...keep].map(dir => path.resolve(dir)));
	if (kept.size === 0) return fs.rmSync(root, { recursive: true, force: true });
	const entries = (dir: string) => {
		try {
			return fs.readdirSync(dir).map(name => path.join(dir, name));
		} catch {
			return [];
		}
	};
	for (const workload of entries(root)) {
		for (const replica of entries(workload))
			if (!kept.has(path.resolve(replica)))
				fs.rmSync(replica, { recursive: true, force: true });
		if (entries(workload).length === 0) fs.rmSync(workload, { recursive: true, force: true });
	}
}

/** Removes a replica's directory, and its workload's directory once that is empty. */
export function removeSandbox(dir: string): void {
	fs.rmSync(dir, { recursive: true, force: true });
	try {
		fs.rmdirSync(path.dirname(dir));
	} catch {
		// Another replica of the workload still has its directory here.
	}
}
