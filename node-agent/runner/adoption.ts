/**
 * What an agent that starts finds of the process replicas an earlier agent of its node left
 * running: the ones still running as recorded are adopted, the remains of the others are killed,
 * and every file of a replica not adopted is removed. Before that the agent claims the node's
 * records: a second live agent of the same node on the same data directory is refused, since
 * adopting (and then stopping) what the first one runs would be an outage.
 */
import fs from "fs";
import path from "path";
import { ConflictError } from "../../services/shared/errors";
import {
	ownerPath,
	readProcStat,
	readRecords,
	recordVerdict,
	replicaBase,
	ReplicaFiles,
	ReplicaRecord
} from "./replica-record";
import type { AgentIdentity } from "./supervisor";

/** What /proc and signals are to recovery; tests hand in their own. */
export interface ProcessTable {
	stat: typeof readProcStat;
	groupAlive(pgid: number): boolean;
	killGroup(pgid: number): void;
}

export interface Recovered {
	adopt: ReplicaRecord[];
	/** "workload/replica" of each replica whose remains were killed. */
	killed: string[];
	/** "workload/replica" of each record dropped: nothing of it ran any more. */
	forgotten: string[];
}

/**
 * Makes `self` the agent of the node's records. Throws ConflictError when another live process
 * holds them (same pid and start time as written); an owner that is gone is replaced.
 */
export function claimRecords(
	files: ReplicaFiles,
	self: AgentIdentity,
	nodeID: string,
	stat: typeof readProcStat = readProcStat
): void {
	fs.mkdirSync(files.records, { recursive: true, mode: 0o700 });
	const file = ownerPath(files);
	let owner: AgentIdentity | null = null;
	try {
		const m = /^(\d+) (\d+)\n?$/.exec(fs.readFileSync(file, "utf8"));
		if (m) owner = { pid: Number(m[1]), startTime: Number(m[2]) };
	} catch {
		// No owner yet.
	}
	if (owner && owner.pid !== self.pid) {
		const now = stat(owner.pid);
		if (now && now.state !== "Z" && now.startTime === owner.startTime)
			throw new ConflictError(
				`Another agent of node '${nodeID}' runs as pid ${owner.pid} on this data directory ` +
					`(${files.records}). Stop it first, or give this node another NODEID or ISA_DATA_DIR.`,
				{ nodeID, pid: owner.pid }
			);
	}
	fs.writeFileSync(`${file}.tmp`, `${self.pid} ${self.startTime}\n`, { mode: 0o600 });
	fs.renameSync(`${file}.tmp`, file);
}

/** Sorts the node's records into adopted, killed and forgotten, and removes what is not kept. */
export function recoverReplicas(files: ReplicaFiles, procs: ProcessTable): Recovered {
	const result: Recovered = { adopt: [], killed: [], forgotten: [] };
	const keep = new Set<string>();
	for (const { record } of readRecords(files)) {
		if (!record) continue;
		const key = `${record.spec.workloadId}/${record.spec.replica}`;
		const verdict = recordVerdict(
			record,
			procs.stat(record.pid),
			procs.groupAlive(record.pgid)
		);
		if (verdict === "adopt") {
			result.adopt.push(record);
			keep.add(replicaBase(record.spec.workloadId, record.spec.replica));
			continue;
		}
		if (verdict === "remains") {
			procs.killGroup(record.pgid);
			result.killed.push(key);
		} else result.forgotten.push(key);
	}
	// Whatever is not an adopted replica's goes: records, output, leases, half-written files.
	for (const dir of [files.records, files.leases]) {
		let names: string[];
		try {
			names = fs.readdirSync(dir);
		} catch {
			continue;
		}
		for (const name of names) {
			if (dir === files.records && name === path.basename(ownerPath(files))) continue;
			const base = name.replace(/\.(json|out|err)$/, "");
			if (!keep.has(base)) fs.rmSync(path.join(dir, name), { force: true });
		}
	}
	return result;
}
