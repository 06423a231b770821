import { spawn } from "child_process";
import fs from "fs";
import os from "os";
import path from "path";
import { claimRecords, recoverReplicas } from "../../../../node-agent/runner/adoption";
import { groupAlive, signalGroup } from "../../../../node-agent/runner/process-runner";
import {
	outputPaths,
	parseProcStat,
	parseRecord,
	readProcStat,
	readRecords,
	RECORD_VERSION,
	recordVerdict,
	ReplicaRecord,
	replicaFiles,
	writeRecord
} from "../../../../node-agent/runner/replica-record";
import type { ReplicaSpec } from "../../../../services/shared/types";

const spec = (workloadId: string, replica: number): ReplicaSpec => ({
	workloadId,
	tenant: "acme",
	name: "job",
	replica,
	fence: 3,
	kind: "process",
	process: { command: process.execPath, args: [], env: {} },
	resources: { cpu: 1, memory: 1024 ** 3, gpu: 0, gpuMemory: 0 },
	gpus: [],
	restart: { policy: "never", maxRestarts: 0 }
});

const record = (
	workloadId: string,
	replica: number,
	pid: number,
	startTime: number
): ReplicaRecord => ({
	version: RECORD_VERSION,
	spec: spec(workloadId, replica),
	pid,
	pgid: pid,
	startTime,
	restarts: 0,
	startedAt: 1
});

describe("/proc/<pid>/stat", () => {
	it("reads state, parent, group and start time (field 22), whatever the command's name", () => {
		const fields = "S 1 4321 4321 0 -1 4194560 1 0 0 0 2 3 0 0 20 0 1 0 778899 1000 10";
		expect(parseProcStat(`4321 (a) b) ${fields}`)).toEqual({
			state: "S",
			ppid: 1,
			pgid: 4321,
			startTime: 778899
		});
		expect(parseProcStat("4321 (x) S 1")).toBeNull();
		expect(parseProcStat("garbage")).toBeNull();
	});

	it("reads this process", () => {
		const self = readProcStat(process.pid);
		expect(self).toMatchObject({ state: expect.any(String), ppid: process.ppid });
		expect(readProcStat(2 ** 22 + 1)).toBeNull();
	});
});

describe("recordVerdict", () => {
	const rec = { pid: 100, pgid: 100, startTime: 5000 };
	const stat = (over: Partial<ReturnType<typeof parseProcStat>> = {}) => ({
		state: "S",
		ppid: 1,
		pgid: 100,
		startTime: 5000,
		...over
	});

	it("adopts the same process: alive, same start time, same group", () => {
		expect(recordVerdict(rec, stat(), true)).toBe("adopt");
	});

	it("leaves a process that reuses the pid alone", () => {
		expect(recordVerdict(rec, stat({ startTime: 9999 }), true)).toBe("gone");
	});

	it("does not adopt a leader that left its group", () => {
		expect(recordVerdict(rec, stat({ pgid: 7 }), true)).toBe("remains");
	});

	it("kills what is left of a group whose leader is gone or a zombie", () => {
		expect(recordVerdict(rec, null, true)).toBe("remains");
		expect(recordVerdict(rec, stat({ state: "Z" }), true)).toBe("remains");
		expect(recordVerdict(rec, null, false)).toBe("gone");
	});
});

describe("records", () => {
	let dataDir: string;
	beforeEach(() => (dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "isa-records-"))));
	afterEach(() => fs.rmSync(dataDir, { recursive: true, force: true }));

	it("parses only a whole record of a process replica", () => {
		const r = record("w", 0, 10, 20);
		expect(parseRecord(JSON.stringify(r))).toEqual(r);
		expect(parseRecord("{")).toBeNull();
		expect(parseRecord(JSON.stringify({ ...r, version: 2 }))).toBeNull();
		expect(parseRecord(JSON.stringify({ ...r, pid: 0 }))).toBeNull();
		expect(
			parseRecord(JSON.stringify({ ...r, spec: { ...r.spec, kind: "service" } }))
		).toBeNull();
	});

	it("are written whole under the node's own directory and read back", () => {
		const files = replicaFiles(dataDir, "gpu/1");
		expect(files.records).toBe(path.join(dataDir, "replicas", "gpu%2F1"));
		fs.mkdirSync(files.records, { recursive: true });
		writeRecord(files, record("w.x", 2, 10, 20));
		fs.writeFileSync(path.join(files.records, "torn.json"), "{");
		expect(readRecords(files).sort((a, b) => a.file.localeCompare(b.file))).toEqual([
			{ file: path.join(files.records, "torn.json"), record: null },
			{ file: path.join(files.records, "w.x.2.json"), record: record("w.x", 2, 10, 20) }
		]);
	});

	it("recovery adopts what runs as recorded, kills remains, forgets the rest with their files", async () => {
		const files = replicaFiles(dataDir, "n1");
		fs.mkdirSync(files.records, { recursive: true });
		fs.mkdirSync(files.leases, { recursive: true });
		// A live group leader, as the supervisor shell is.
		const live = spawn("/bin/sh", ["-c", "sleep 30"], { detached: true, stdio: "ignore" });
		const liveStat = readProcStat(live.pid!)!;
		// A group whose leader is gone, a member left: a shell that forks and exits.
		const leader = spawn("/bin/sh", ["-c", "sleep 30 & exit 0"], {
			detached: true,
			stdio: "ignore"
		});
		const leaderPid = leader.pid!;
		const leaderStart = readProcStat(leaderPid)?.startTime ?? 0;
		await new Promise(resolve => leader.once("exit", resolve));
		expect(groupAlive(leaderPid)).toBe(true);

		writeRecord(files, record("kept", 0, live.pid!, liveStat.startTime));
		writeRecord(files, record("reused", 0, live.pid!, liveStat.startTime + 1));
		writeRecord(files, record("remains", 0, leaderPid, leaderStart));
		writeRecord(files, record("gone", 1, 2 ** 22 + 3, 1));
		for (const base of ["kept.0", "reused.0", "remains.0", "gone.1"]) {
			const out = outputPaths(files, base.split(".")[0], Number(base.split(".")[1]));
			fs.writeFileSync(out.stdout, "x");
			fs.writeFileSync(path.join(files.leases, base), "1 2 3 4\n");
		}
		fs.writeFileSync(path.join(files.records, "kept.0.json.tmp"), "{");

		const killed: number[] = [];
		const found = recoverReplicas(files, {
			stat: readProcStat,
			groupAlive,
			killGroup: pgid => {
				killed.push(pgid);
				signalGroup(pgid, "SIGKILL");
			}
		});
		try {
			expect(found.adopt.map(r => r.spec.workloadId)).toEqual(["kept"]);
			expect(found.killed).toEqual(["remains/0"]);
			expect(found.forgotten.sort()).toEqual(["gone/1", "reused/0"]);
			expect(killed).toEqual([leaderPid]);
			// The reused pid's process (here: the live one) was not touched.
			expect(readProcStat(live.pid!)?.state).not.toBe("Z");
			expect(fs.readdirSync(files.records).sort()).toEqual(["kept.0.json", "kept.0.out"]);
			expect(fs.readdirSync(files.leases)).toEqual(["kept.0"]);
			const deadline = Date.now() + 2000;
			while (groupAlive(leaderPid) && Date.now() < deadline)
				await new Promise(resolve => setTimeout(resolve, 20));
			expect(groupAlive(leaderPid)).toBe(false);
		} finally {
			signalGroup(live.pid!, "SIGKILL");
		}
	});

	it("a second live agent of the node is refused; one that is gone is replaced", () => {
		const files = replicaFiles(dataDir, "n1");
		const self = { pid: process.pid, startTime: readProcStat(process.pid)!.startTime };
		claimRecords(files, self, "n1");
		// The same agent again (a broker restarted in this process): fine.
		claimRecords(files, self, "n1");
		const other = { pid: process.ppid, startTime: readProcStat(process.ppid)!.startTime };
		fs.writeFileSync(path.join(files.records, "agent"), `${other.pid} ${other.startTime}\n`);
		const err = (() => {
			try {
				claimRecords(files, self, "n1");
			} catch (e) {
				return e;
			}
		})();
		expect(err).toMatchObject({
			code: 409,
			type: "CONFLICT",
			data: { nodeID: "n1", pid: other.pid }
		});
		// The same pid, another start time: that agent is gone.
		fs.writeFileSync(
			path.join(files.records, "agent"),
			`${other.pid} ${other.startTime + 1}\n`
		);
		claimRecords(files, self, "n1");
		expect(fs.readFileSync(path.join(files.records, "agent"), "utf8")).toBe(
			`${self.pid} ${self.startTime}\n`
		);
	});
});
