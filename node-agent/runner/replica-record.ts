/**
 * The durable record of what process replicas a node runs, so that an agent that restarts can
 * adopt them instead of starting them again. Per replica, in `<dataDir>/replicas/<nodeID>/`
 * (the agent's alone, 0700): `<workload>.<replica>.json` (its spec, the pid and start time of
 * its process group's leader, its restarts) and its output, `.out` and `.err`, which the replica
 * writes through descriptors the agent opened (it cannot open them by path). Its lease (see
 * supervisor.ts) is in `<dataDir>/leases/<nodeID>/`, which the workload user may pass through
 * and read. A recorded process is adopted only when /proc still shows the same process: alive,
 * the same start time (a reused pid has another) and the same process group.
 */
import fs from "fs";
import path from "path";
import type { ReplicaSpec } from "../../services/shared/types";
import { pathSegment } from "./sandbox";

export const RECORD_VERSION = 1;

export interface ReplicaRecord {
	version: number;
	spec: ReplicaSpec;
	/** The supervisor shell: the leader of the replica's process group (pgid === pid). */
	pid: number;
	pgid: number;
	/** Field 22 of /proc/<pid>/stat when it was spawned. */
	startTime: number;
	restarts: number;
	/** ms since the epoch when this process was spawned. */
	startedAt: number;
}

/** What /proc/<pid>/stat says of a process. */
export interface ProcStat {
	/** R, S, D, T, Z… */
	state: string;
	ppid: number;
	pgid: number;
	startTime: number;
}

/**
 * Parses /proc/<pid>/stat. The command name (field 2) is in parentheses and may itself hold
 * spaces and ") ", so the fields are counted from the last ")".
 */
export function parseProcStat(text: string): ProcStat | null {
	const end = text.lastIndexOf(")");
	if (end < 0) return null;
	// Fields 3 onwards: state, ppid, pgrp, session, tty, tpgid, flags, minflt, cminflt, majflt,
	// cmajflt, utime, stime, cutime, cstime, priority, nice, num_threads, itrealvalue, starttime.
	const fields = text
		.slice(end + 2)
		.trim()
		.split(" ");
	if (fields.length < 20) return null;
	const [ppid, pgid, startTime] = [fields[1], fields[2], fields[19]].map(Number);
	if (![ppid, pgid, startTime].every(Number.isInteger)) return null;
	return { state: fields[0], ppid, pgid, startTime };
}

export function readProcStat(pid: number): ProcStat | null {
	try {
		return parseProcStat(fs.readFileSync(`/proc/${pid}/stat`, "utf8"));
	} catch {
		return null;
	}
}

/**
 * What an agent that starts does with a recorded replica, from what /proc shows of its leader:
 * - adopt: the same process runs (alive, same start time, same group);
 * - remains: the leader is gone but members of its group live on: they are the replica's (a
 *   process group's id is not handed out again while a member holds it) and are killed;
 * - gone: nothing of it runs (or the pid now belongs to another process, which is left alone).
 */
export function recordVerdict(
	record: Pick<ReplicaRecord, "pid" | "pgid" | "startTime">,
	leader: ProcStat | null,
	groupHasMembers: boolean
): "adopt" | "remains" | "gone" {
	const alive = leader !== null && leader.state !== "Z";
	if (alive && leader.startTime === record.startTime && leader.pgid === record.pgid)
		return "adopt";
	if (alive && leader.startTime !== record.startTime) return "gone";
	return groupHasMembers ? "remains" : "gone";
}

/** A record file's content, or null when it is not one this agent can use. */
export function parseRecord(text: string): ReplicaRecord | null {
	let value: unknown;
	try {
		value = JSON.parse(text);
	} catch {
		return null;
	}
	const r = value as Partial<ReplicaRecord> | null;
	const positive = (n: unknown) => Number.isInteger(n) && (n as number) > 0;
	if (
		!r ||
		r.version !== RECORD_VERSION ||
		!positive(r.pid) ||
		!positive(r.pgid) ||
		!Number.isInteger(r.startTime) ||
		!Number.isInteger(r.restarts) ||
		typeof r.startedAt !== "number" ||
		!r.spec ||
		typeof r.spec.workloadId !== "string" ||
		!Number.isInteger(r.spec.replica) ||
		!Number.isInteger(r.spec.fence) ||
		r.spec.kind !== "process" ||
		typeof r.spec.process?.command !== "string"
	)
		return null;
	return r as ReplicaRecord;
}

/** Where one node's records, output files and leases are. */
export interface ReplicaFiles {
	records: string;
	leases: string;
}

export function replicaFiles(dataDir: string, nodeID: string): ReplicaFiles {
	return {
		records: path.join(dataDir, "replicas", pathSegment(nodeID)),
		leases: path.join(dataDir, "leases", pathSegment(nodeID))
	};
}

/** The file names of one replica: `<workload>.<replica>` (a segment holds no `/`). */
export function replicaBase(workloadId: string, replica: number): string {
	return `${pathSegment(workloadId)}.${replica}`;
}

export function recordPath(files: ReplicaFiles, workloadId: string, replica: number): string {
	return path.join(files.records, `${replicaBase(workloadId, replica)}.json`);
}

export function outputPaths(
	files: ReplicaFiles,
	workloadId: string,
	replica: number
): { stdout: string; stderr: string } {
	const base = path.join(files.records, replicaBase(workloadId, replica));
	return { stdout: `${base}.out`, stderr: `${base}.err` };
}

export function leasePath(files: ReplicaFiles, workloadId: string, replica: number): string {
	return path.join(files.leases, replicaBase(workloadId, replica));
}

/** Written whole or not at all: a temporary file renamed over the record. */
export function writeRecord(files: ReplicaFiles, record: ReplicaRecord): void {
	const file = recordPath(files, record.spec.workloadId, record.spec.replica);
	fs.writeFileSync(`${file}.tmp`, JSON.stringify(record), { mode: 0o600 });
	fs.renameSync(`${file}.tmp`, file);
}

/** Every record of the node, with the file it came from (null: not a record this agent reads). */
export function readRecords(
	files: ReplicaFiles
): Array<{ file: string; record: ReplicaRecord | null }> {
	let names: string[];
	try {
		names = fs.readdirSync(files.records);
	} catch {
		return [];
	}
	return names
		.filter(name => name.endsWith(".json"))
		.map(name => {
			const file = path.join(files.records, name);
			try {
				return { file, record: parseRecord(fs.readFileSync(file, "utf8")) };
			} catch {
				return { file, record: null };
			}
		});
}

/** Forgets a replica: its record, its output and its lease. */
export function removeReplicaFiles(files: ReplicaFiles, workloadId: string, replica: number): void {
	const out = outputPaths(files, workloadId, replica);
	for (const file of [
		recordPath(files, workloadId, replica),
		out.stdout,
		out.stderr,
		leasePath(files, workloadId, replica)
	])
		fs.rmSync(file, { force: true });
}

/**
 * Which agent process keeps this node's records: "pid startTime" in `<records>/agent`. A second
 * live agent of the same node on the same data directory must not adopt (and then stop) what
 * the first one runs.
 */
export function ownerPath(files: ReplicaFiles): string {
	return path.join(files.records, "agent");
}
