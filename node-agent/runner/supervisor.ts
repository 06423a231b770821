/**
 * What keeps a process replica alive across an agent restart, and what stops it when its agent
 * does not come back. Each replica runs under a small shell (SUPERVISOR), the leader of its own
 * process group, that holds no pipe to the agent: the agent can die and be replaced without the
 * replica noticing. The shell watches a lease file the agent rewrites with every node report:
 * the agent's pid and start time, and two deadlines (in /proc/uptime centiseconds, a clock the
 * shell can read). While that agent process lives, the replica runs, whatever the deadlines say
 * (the agent itself stops what the scheduler no longer wants). Once it is gone and the first
 * deadline passed, the shell sends SIGTERM to the group; after the second, SIGKILL. A restarted
 * agent writes its own pid into the lease before the first deadline and the replica keeps
 * running. The deadlines fall before the control plane can declare the node down (the down
 * window after the last report) or the workload's `disconnect.stopAfter`, whichever is
 * shorter, so that an orphan is gone before its replacement starts.
 *
 * The shell runs as the replica's own user (the workload user when the agent is root): it adds
 * no privilege; the lease is readable by that user and writable by the agent only.
 */
import fs from "fs";

/** Who the lease says supervises the replica: an agent process, told apart from a reused pid. */
export interface AgentIdentity {
	pid: number;
	/** Field 22 of /proc/<pid>/stat: clock ticks after boot when the process started. */
	startTime: number;
}

/**
 * A lease as the shell reads it: "pid startTime termAt killAt stopAt\n" (uptime centiseconds).
 * `stopAt` (0: none) is the disconnect lease of a workload with `disconnect.stopAfter`: past it
 * the replica is killed whatever the agent's state, since a frozen agent (SIGSTOP) still exists
 * but stops nothing.
 */
export interface Lease {
	agent: AgentIdentity;
	termAt: number;
	killAt: number;
	stopAt: number;
}

/** ms after a report when an orphan gets SIGTERM (termAfter) and SIGKILL (killAfter). */
export interface OrphanTimes {
	termAfter: number;
	killAfter: number;
}

/** The down window when the agent does not say: 3 missed reports of 2 s (the defaults). */
export const DEFAULT_DOWN_WINDOW_MS = 6000;

/** The supervisor looks at its lease this often (`sleep 0.2`). */
export const SUPERVISOR_POLL_MS = 200;

/**
 * When an orphan stops, counted from the agent's last report: before `limit`, the down window
 * or the workload's stopAfter when that is shorter. The margin (a quarter of it, 250 ms to
 * 1.5 s) covers the supervisor's polling, the report's way to the control plane and the sweep
 * that notices it missing; SIGTERM comes a grace period earlier (at most 1 s, at most a third of
 * what is left), so that the replica can end cleanly before the SIGKILL.
 */
export function orphanTimes(downWindowMs: number, stopAfterMs?: number): OrphanTimes {
	const limit = Math.max(
		0,
		stopAfterMs !== undefined && stopAfterMs >= 0
			? Math.min(downWindowMs, stopAfterMs)
			: downWindowMs
	);
	const margin = Math.min(1500, Math.max(250, limit / 4));
	const killAfter = Math.max(0, Math.floor(limit - margin));
	const termAfter = killAfter - Math.floor(Math.min(1000, killAfter / 3));
	return { termAfter, killAfter };
}

/** The lease that one report (at `nowCs` on the uptime clock) gives. */
export function leaseAt(
	agent: AgentIdentity,
	nowCs: number,
	times: OrphanTimes,
	stopAt = 0
): Lease {
	return {
		agent,
		termAt: nowCs + Math.floor(times.termAfter / 10),
		killAt: nowCs + Math.floor(times.killAfter / 10),
		stopAt
	};
}

/** The disconnect lease's end, `stopAfterMs` after `nowCs` (uptime centiseconds). */
export function stopAtFrom(nowCs: number, stopAfterMs: number): number {
	return nowCs + Math.ceil(stopAfterMs / 10);
}

export function formatLease(lease: Lease): string {
	return `${lease.agent.pid} ${lease.agent.startTime} ${lease.termAt} ${lease.killAt} ${lease.stopAt}\n`;
}

/** A lease file's content (one without a stopAt, from an earlier agent, has none); null when it is not one. */
export function parseLease(text: string): Lease | null {
	const m = /^(\d+) (\d+) (\d+) (\d+)(?: (\d+))?\n$/.exec(text);
	if (!m) return null;
	return {
		agent: { pid: Number(m[1]), startTime: Number(m[2]) },
		termAt: Number(m[3]),
		killAt: Number(m[4]),
		stopAt: Number(m[5] ?? 0)
	};
}

/** "12345.67 …" (the first field of /proc/uptime) → 1234567 centiseconds, as the shell reads it. */
export function parseUptime(text: string): number | null {
	const m = /^(\d+)\.(\d\d)\s/.exec(text);
	return m ? Number(m[1] + m[2]) : null;
}

/** The uptime clock now, in centiseconds. */
export function uptimeCs(): number {
	const cs = parseUptime(fs.readFileSync("/proc/uptime", "utf8"));
	if (cs === null) throw new Error("/proc/uptime is not 'seconds.hundredths …'");
	return cs;
}

/**
 * Writes a lease so that the shell never reads half of one: a temporary file renamed over it.
 * `gid` (the workload user's group, when the agent is root) may read it, nobody else.
 */
export function writeLease(file: string, lease: Lease, gid: number | null): void {
	const tmp = `${file}.tmp`;
	fs.writeFileSync(tmp, formatLease(lease), { mode: gid === null ? 0o600 : 0o640 });
	if (gid !== null) fs.chownSync(tmp, fs.statSync(tmp).uid, gid);
	fs.renameSync(tmp, file);
}

export function readLease(file: string): Lease | null {
	try {
		return parseLease(fs.readFileSync(file, "utf8"));
	} catch {
		return null;
	}
}

/**
 * The replica's shell: `sh -c SUPERVISOR isa-replica <lease> <command> <args…>`. It runs the
 * command in the background (stdin /dev/null, as POSIX gives background jobs; its stdout and
 * stderr are the files the agent handed the shell), a watcher that polls the lease as described
 * above, and exits with the command's status. The watcher ignores SIGTERM, so that the agent's
 * SIGTERM to the group does not end the watch before the command has ended; the shell ends it
 * with SIGKILL. A missing or unreadable lease counts as an agent gone with its deadlines passed.
 */
export const SUPERVISOR = [
	"unset PWD OLDPWD",
	"lease=$1; shift",
	'"$@" &',
	"child=$!",
	"(",
	"trap '' TERM",
	"termed=",
	"while sleep 0.2; do",
	"read -r up _ </proc/uptime",
	"now=${up%.*}${up#*.}",
	'if ! read -r apid astart termat killat stopat 2>/dev/null <"$lease"; then apid=0; astart=0; termat=0; killat=0; stopat=0; fi',
	'if [ "${stopat:-0}" -gt 0 ] 2>/dev/null && [ "$now" -ge "$stopat" ]; then kill -KILL -$$ 2>/dev/null; exit 0; fi',
	'[ "$now" -lt "$termat" ] 2>/dev/null && continue',
	'if [ "$apid" -gt 0 ] 2>/dev/null && read -r stat 2>/dev/null <"/proc/$apid/stat"; then',
	'set -- ${stat##*") "}',
	'[ "$1" != Z ] && [ "${20}" = "$astart" ] && continue',
	"fi",
	'if [ "$now" -ge "$killat" ] 2>/dev/null; then kill -KILL -$$ 2>/dev/null; exit 0; fi',
	'[ -n "$termed" ] || { termed=1; kill -TERM -$$ 2>/dev/null; }',
	"done",
	") &",
	"watcher=$!",
	"trap 'kill -TERM \"$child\" 2>/dev/null' TERM",
	// A trapped TERM interrupts `wait`: wait again while the command still lives.
	'while :; do wait "$child"; code=$?; kill -0 "$child" 2>/dev/null || break; done',
	'kill -KILL "$watcher" 2>/dev/null',
	// Died of a signal: die of the same one, so that the agent sees the signal, not 128+n.
	'if [ "$code" -gt 128 ]; then trap - TERM; kill -s "$(kill -l "$code")" $$; fi',
	'exit "$code"'
].join("\n");
