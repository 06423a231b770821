/**
 * A process as the holder of a lease (a NODEID's, services/nodes/lease.ts; a leader's,
 * services/shared/leadership.ts): enough to tell, on the same host, that it died.
 */
import crypto from "crypto";
import fs from "fs";
import os from "os";

/** Who holds a lease: one process, once. */
export interface LeaseHolder {
	/** Random per process start: a restart is a new holder even with the same pid. */
	holder: string;
	hostname: string;
	pid: number;
	/** The kernel's boot id, null off Linux: a pid only means something within one boot. */
	bootId: string | null;
	/** The pid namespace (/proc/self/ns/pid), null off Linux: containers reuse pids. */
	pidNamespace: string | null;
	startedAt: number;
}

/** Whether `pid` runs on this host (EPERM: it runs, as another user). */
export function pidAlive(pid: number): boolean {
	try {
		process.kill(pid, 0);
		return true;
	} catch (err) {
		return (err as NodeJS.ErrnoException).code === "EPERM";
	}
}

function readOr(read: () => string): string | null {
	try {
		return read().trim();
	} catch {
		return null;
	}
}

/** This process as a lease holder. */
export function thisProcess(now = Date.now()): LeaseHolder {
	return {
		holder: crypto.randomUUID(),
		hostname: os.hostname(),
		pid: process.pid,
		bootId: readOr(() => fs.readFileSync("/proc/sys/kernel/random/boot_id", "utf8")),
		pidNamespace: readOr(() => fs.readlinkSync("/proc/self/ns/pid")),
		startedAt: now
	};
}

/** Whether a pid of `a` can be looked up from `b`: same host, same boot, same pid namespace. */
function samePidSpace(a: LeaseHolder, b: LeaseHolder): boolean {
	return a.hostname === b.hostname && a.bootId === b.bootId && a.pidNamespace === b.pidNamespace;
}

/**
 * Whether `current` is known dead from where `me` runs: on the same host its pid is gone, or is
 * `me`'s own pid (a container restarted in place).
 */
export function holderGone(
	current: LeaseHolder,
	me: LeaseHolder,
	alive: (pid: number) => boolean = pidAlive
): boolean {
	return samePidSpace(current, me) && (current.pid === me.pid || !alive(current.pid));
}
