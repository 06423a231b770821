import { spawnSync } from "child_process";
import fs from "fs";
import os from "os";
import path from "path";
import {
	ProcessReplica,
	ProcessReplicaOptions,
	Timers,
	isCommandAllowed,
	parseAllowedCommands,
	processEnv,
	realTimers,
	selfIdentity
} from "../../../../node-agent/runner/process-runner";
import {
	readRecords,
	ReplicaRecord,
	replicaFiles
} from "../../../../node-agent/runner/replica-record";
import { readLease } from "../../../../node-agent/runner/supervisor";
import {
	CommandNotAllowedError,
	ERR_COMMAND_NOT_ALLOWED
} from "../../../../services/shared/errors";
import type { ReplicaSpec, ReplicaStatus } from "../../../../services/shared/types";

const NODE = process.execPath;

function processSpec(script: string, overrides: Partial<ReplicaSpec> = {}): ReplicaSpec {
	return {
		workloadId: "w1",
		tenant: "acme",
		name: "job",
		replica: 2,
		fence: 7,
		kind: "process",
		process: { command: NODE, args: ["-e", script], env: {} },
		resources: { cpu: 1.5, memory: 1024 ** 3, gpu: 2, gpuMemory: 0 },
		gpus: [1, 3],
		restart: { policy: "never", maxRestarts: 0 },
		...overrides
	};
}

const running: ProcessReplica[] = [];
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "isa-runner-"));
/** The agent's own user: the other-user case is test/integration/sandbox.spec.ts. */
const sandbox = { dataDir, root: path.join(dataDir, "workloads", "gpu-node-1"), user: null };

afterAll(() => fs.rmSync(dataDir, { recursive: true, force: true }));

function replica(spec: ReplicaSpec, options: Partial<ProcessReplicaOptions> = {}) {
	const statuses: ReplicaStatus[] = [];
	const r = new ProcessReplica(spec, {
		nodeID: "gpu-node-1",
		sandbox,
		allowedCommands: [NODE, "/bin/sh"],
		backoffBase: 10,
		// No jitter: the delays are exact (restart-policy.spec.ts covers the spread).
		random: () => 0.5,
		stopGrace: 2000,
		onStatus: status => statuses.push(status),
		...options
	});
	running.push(r);
	return { r, statuses };
}

async function until(predicate: () => boolean, timeout = 5000): Promise<void> {
	const deadline = Date.now() + timeout;
	while (!predicate()) {
		if (Date.now() > deadline) throw new Error("condition not met in time");
		await new Promise(resolve => setTimeout(resolve, 10));
	}
}

/** A zombie (exited, not yet reaped by init) counts as dead. */
function isAlive(pid: number): boolean {
	try {
		process.kill(pid, 0);
	} catch {
		return false;
	}
	try {
		return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, "utf8"));
	} catch {
		return false;
	}
}

afterEach(async () => {
	await Promise.all(running.splice(0).map(r => r.stop()));
});

describe("ISA_ALLOWED_COMMANDS", () => {
	it("parses a comma separated list", () => {
		expect(parseAllowedCommands(" python3, /opt/bin/* ,,")).toEqual(["python3", "/opt/bin/*"]);
		expect(parseAllowedCommands(undefined)).toEqual([]);
		expect(parseAllowedCommands("")).toEqual([]);
	});

	it.each([
		["python3", ["python3"], true],
		["/usr/bin/python3", ["python3"], false],
		["python3", [], false],
		["/opt/models/serve", ["/opt/models/*"], true],
		["/opt/models/llama/serve", ["/opt/models/*"], false],
		["/opt/models/llama/serve", ["/opt/models/**"], true],
		["/opt/models/../../bin/sh", ["/opt/models/**"], false],
		["/optXmodels/serve", ["/opt.models/*"], false],
		["python3.11", ["python3.1?"], true],
		["", ["**"], false]
	])("%s with %j allowed: %s", (command, allowList, allowed) => {
		expect(isCommandAllowed(command, allowList)).toBe(allowed);
	});

	it("refuses a command that is not allowed, reporting and throwing why", async () => {
		const { r, statuses } = replica(processSpec("0"), { allowedCommands: ["python3"] });
		const err = await r.start().catch(e => e);
		expect(err).toBeInstanceOf(CommandNotAllowedError);
		expect(err.code).toBe(403);
		expect(err.type).toBe(ERR_COMMAND_NOT_ALLOWED);
		expect(err.data).toEqual({ command: NODE, nodeID: "gpu-node-1" });
		expect(err.message).toContain(`'${NODE}'`);
		expect(err.message).toContain(
			`add it to ISA_ALLOWED_COMMANDS on node gpu-node-1, e.g. ISA_ALLOWED_COMMANDS=${NODE}`
		);
		expect(statuses.map(s => s.state)).toEqual(["failed"]);
		expect(statuses[0].reason).toBe(err.message);
		expect(statuses[0].pid).toBeUndefined();
	});

	it("fails a refused command at once, whatever its restart policy: a refusal is no restart", async () => {
		const timers: Timers = {
			...realTimers,
			setTimeout: () => {
				throw new Error("a refused replica must not schedule a restart");
			}
		};
		const spec = processSpec("0", { restart: { policy: "always", maxRestarts: 0 } });
		const { r, statuses } = replica(spec, { allowedCommands: ["python3"], timers });
		await expect(r.start()).rejects.toBeInstanceOf(CommandNotAllowedError);
		expect(statuses.map(s => [s.state, s.restarts])).toEqual([["failed", 0]]);
		expect(r.status()).toMatchObject({ state: "failed", lastError: statuses[0].reason });
	});
});

describe("the process's environment", () => {
	it("holds PATH, LANG, the spec's env, HOME in its directory, its GPUs and the ISA_* facts only", async () => {
		const spec = processSpec("console.log(JSON.stringify(process.env))", {
			process: {
				command: NODE,
				args: ["-e", "console.log(JSON.stringify(process.env))"],
				env: { MODEL: "llama", CUDA_VISIBLE_DEVICES: "0,1,2,3", HOME: "/root" }
			}
		});
		const { r } = replica(spec, {
			env: {
				PATH: "/usr/bin:/bin",
				HOME: "/home/isa",
				LANG: "C.UTF-8",
				JWT_SECRET: "do-not-leak",
				ISA_JWT_SECRET: "do-not-leak",
				NODE_OPTIONS: "--require /tmp/x.js"
			}
		});
		await r.start();
		await until(() => r.logs().length > 0);
		expect(JSON.parse(r.logs()[0].text)).toEqual({
			PATH: "/usr/bin:/bin",
			LANG: "C.UTF-8",
			HOME: path.join(sandbox.root, "w1", "2"),
			MODEL: "llama",
			CUDA_VISIBLE_DEVICES: "1,3",
			ISA_WORKLOAD_ID: "w1",
			ISA_REPLICA: "2",
			ISA_TENANT: "acme",
			ISA_CPU: "1.5",
			ISA_MEMORY: String(1024 ** 3),
			ISA_GPU_MEMORY: "0"
		});
	});

	it("hides every GPU from a replica given none", () => {
		const env = processEnv(processSpec("0", { gpus: [] }), "/data/w/0", { LANG: "C.UTF-8" });
		expect(env.CUDA_VISIBLE_DEVICES).toBe("");
		expect(env.LANG).toBe("C.UTF-8");
	});
});

describe("its directory", () => {
	const dir = path.join(sandbox.root, "w1", "2");
	const script = `
		const fs = require("fs");
		fs.appendFileSync("runs", "x");
		console.log(JSON.stringify({ cwd: process.cwd(), runs: fs.readFileSync("runs", "utf8") }));
		process.exit(1);`;

	it("runs in a fresh directory of its own, kept across restarts, removed on stop", async () => {
		fs.mkdirSync(dir, { recursive: true });
		fs.writeFileSync(path.join(dir, "left-over"), "from an earlier placement");
		const spec = processSpec(script, { restart: { policy: "on-failure", maxRestarts: 1 } });
		const { r } = replica(spec);
		await r.start();
		await until(() => r.status().state === "failed");
		expect(r.dir).toBe(dir);
		expect(r.logs().map(l => JSON.parse(l.text))).toEqual([
			{ cwd: dir, runs: "x" },
			{ cwd: dir, runs: "xx" }
		]);
		expect(fs.readdirSync(dir).sort()).toEqual(["runs"]);
		expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
		await r.stop();
		expect(fs.existsSync(dir)).toBe(false);
		// The workload's directory goes with its last replica's.
		expect(fs.existsSync(path.dirname(dir))).toBe(false);
	});

	it("fails with the reason when its directory cannot be made", async () => {
		const blocked = path.join(dataDir, "blocked");
		fs.writeFileSync(blocked, "a file where a directory should be");
		const { r, statuses } = replica(processSpec("0"), {
			sandbox: { ...sandbox, root: path.join(blocked, "n") }
		});
		const err = await r.start().catch(e => e);
		expect(err).toMatchObject({
			code: 503,
			type: "SERVICE_UNAVAILABLE",
			data: { workloadId: "w1", replica: 2, dir: path.join(blocked, "n", "w1", "2") }
		});
		expect(statuses.map(s => [s.state, s.reason])).toEqual([
			["failed", expect.stringContaining("could not prepare its directory")]
		]);
	});
});

describe("output", () => {
	it("keeps the newest lines, each cut to the limit, marked by stream", async () => {
		const script = `
			for (let i = 0; i < 30; i++) console.log("line " + i);
			process.stdout.write("x".repeat(10000) + "\\npartial");
			setTimeout(() => console.error("oops"), 50);`;
		const { r } = replica(processSpec(script), { maxLogLines: 10, maxLineLength: 100 });
		const before = Date.now();
		await r.start();
		await until(() => r.logs().some(l => l.text === "oops") && r.status().state === "stopped");
		await until(() => r.logs().some(l => l.text === "partial"));
		const logs = r.logs(100);
		expect(logs).toHaveLength(10);
		const stdout = logs.filter(l => l.stream === "stdout").map(l => l.text);
		expect(stdout).toEqual([
			...[23, 24, 25, 26, 27, 28, 29].map(i => `line ${i}`),
			`${"x".repeat(100)}…`,
			"partial"
		]);
		expect(logs.filter(l => l.stream === "stderr").map(l => l.text)).toEqual(["oops"]);
		for (const line of logs) expect(line.at).toBeGreaterThanOrEqual(before);
		expect(r.logs(2)).toEqual(logs.slice(-2));
	});
});

describe("restarts", () => {
	it("never: reports the exit and stays down", async () => {
		const { r, statuses } = replica(processSpec("process.exit(3)"));
		expect((await r.start()).state).toBe("running");
		await until(() => r.status().state === "failed");
		expect(statuses.map(s => s.state)).toEqual(["starting", "running", "failed"]);
		expect(statuses[1].pid).toEqual(expect.any(Number));
		expect(r.status()).toMatchObject({
			workloadId: "w1",
			replica: 2,
			fence: 7,
			nodeID: "gpu-node-1",
			reason: "exited with code 3",
			restarts: 0,
			pid: undefined
		});
	});

	it("on-failure: a clean exit is a stop", async () => {
		const spec = processSpec("0", { restart: { policy: "on-failure", maxRestarts: 0 } });
		const { r } = replica(spec);
		await r.start();
		await until(() => r.status().state === "stopped");
		expect(r.status()).toMatchObject({ reason: "exited with code 0", restarts: 0 });
	});

	it("on-failure: restarts after a failure until maxRestarts, then fails", async () => {
		const spec = processSpec("process.exit(3)", {
			restart: { policy: "on-failure", maxRestarts: 2 }
		});
		const { r, statuses } = replica(spec);
		await r.start();
		await until(() => r.status().state === "failed");
		expect(statuses.map(s => [s.state, s.restarts])).toEqual([
			["starting", 0],
			["running", 0],
			["starting", 0],
			["running", 1],
			["starting", 1],
			["running", 2],
			["failed", 2]
		]);
		expect(statuses[2].reason).toBe("exited with code 3; restarting in 10 ms (restart 1 of 2)");
		expect(statuses[4].reason).toBe("exited with code 3; restarting in 20 ms (restart 2 of 2)");
		expect(r.status()).toMatchObject({
			reason: "exited with code 3; gave up after 2 restarts",
			lastError: "exited with code 3"
		});
	});

	it("on-failure: a signal is a failure", async () => {
		const spec = processSpec("process.kill(process.pid, 'SIGKILL')", {
			restart: { policy: "on-failure", maxRestarts: 1 }
		});
		const { r } = replica(spec);
		await r.start();
		await until(() => r.status().state === "failed");
		expect(r.status()).toMatchObject({
			reason: "killed by SIGKILL; gave up after 1 restart",
			restarts: 1
		});
	});

	it("always: restarts after a clean exit too, without limit at maxRestarts 0", async () => {
		const spec = processSpec("0", { restart: { policy: "always", maxRestarts: 0 } });
		const { r } = replica(spec, { backoffBase: 1, backoffCap: 5 });
		await r.start();
		await until(() => r.status().restarts >= 5);
		expect((await r.stop()).state).toBe("stopped");
	});

	it("waits the backoff between restarts on the injected timers", async () => {
		const delays: number[] = [];
		const timers: Timers = {
			...realTimers,
			setTimeout(fn, ms) {
				delays.push(ms);
				return realTimers.setTimeout(fn, 0);
			}
		};
		const spec = processSpec("process.exit(1)", {
			restart: { policy: "always", maxRestarts: 4 }
		});
		const { r } = replica(spec, { timers, backoffBase: undefined });
		await r.start();
		await until(() => r.status().state === "failed");
		expect(delays).toEqual([1000, 2000, 4000, 8000]);
	});

	it("reports a command that cannot be spawned as a failure", async () => {
		const missing = "/nonexistent/isa-model-server";
		const { r } = replica(
			processSpec("0", { process: { command: missing, args: [], env: {} } }),
			{ allowedCommands: [missing] }
		);
		const status = await r.start();
		expect(status.state).toBe("failed");
		expect(status.reason).toMatch(/^could not start: spawn .* ENOENT$/);
	});
});

describe("stop", () => {
	it("stops the whole process group, grandchildren included", async () => {
		const spec = processSpec("", {
			process: { command: "/bin/sh", args: ["-c", "sleep 100 & echo $!; sleep 100"], env: {} }
		});
		const { r, statuses } = replica(spec);
		const { pid } = await r.start();
		await until(() => r.logs().length > 0);
		const grandchild = Number(r.logs()[0].text);
		expect(isAlive(pid as number)).toBe(true);
		expect(isAlive(grandchild)).toBe(true);

		const status = await r.stop();
		expect(status).toMatchObject({ state: "stopped", reason: "stopped (killed by SIGTERM)" });
		expect(statuses.map(s => s.state)).toEqual(["starting", "running", "stopped"]);
		await until(() => !isAlive(grandchild));
		expect(isAlive(pid as number)).toBe(false);
	});

	it("ends the whole group by itself once its agent is gone past the lease", async () => {
		// An agent that is gone: a process that ran and ended.
		const gone = spawnSync(NODE, ["-e", "0"]);
		expect(gone.status).toBe(0);
		const agent = { pid: gone.pid as number, startTime: 1 };
		const spec = processSpec("", {
			process: { command: "/bin/sh", args: ["-c", "sleep 100 & echo $!; sleep 100"], env: {} }
		});
		// A down window of 1 s: SIGTERM 0.5 s after the lease was written, SIGKILL at 0.75 s.
		const { r } = replica(spec, { lease: { agent, downWindow: 1000 } });
		const started = Date.now();
		const { pid } = await r.start();
		await until(() => r.logs().length > 0);
		const grandchild = Number(r.logs()[0].text);
		await until(() => !isAlive(grandchild) && !isAlive(pid as number), 3000);
		const took = Date.now() - started;
		expect(took).toBeGreaterThanOrEqual(400);
		expect(took).toBeLessThan(1500);
	});

	it("keeps running past the lease while its agent lives", async () => {
		const { r } = replica(processSpec("setInterval(() => {}, 1000)"), {
			lease: { agent: selfIdentity(), downWindow: 1000 }
		});
		const { pid } = await r.start();
		await new Promise(resolve => setTimeout(resolve, 1500));
		expect(isAlive(pid as number)).toBe(true);
		expect(r.status().state).toBe("running");
	});

	it("with disconnect.stopAfter, ends the group when its lease is not renewed for that long", async () => {
		const spec = processSpec("setInterval(() => {}, 1000)", {
			disconnect: { stopAfterMs: 800 }
		});
		const { r } = replica(spec);
		const { pid } = await r.start();
		// Renewed every 200 ms for 1.6 s: it lives on.
		for (let i = 0; i < 8; i++) {
			r.renew();
			await new Promise(resolve => setTimeout(resolve, 200));
		}
		expect(isAlive(pid as number)).toBe(true);
		// No renewal (a frozen agent): gone within its lease and a little.
		const since = Date.now();
		await until(() => !isAlive(pid as number), 3000);
		expect(Date.now() - since).toBeLessThan(1500);
	});

	it("kills with SIGKILL after the grace period when SIGTERM is ignored", async () => {
		const script = `process.on("SIGTERM", () => {}); setInterval(() => {}, 1000); console.log("ready")`;
		const { r } = replica(processSpec(script), { stopGrace: 300 });
		await r.start();
		await until(() => r.logs().length > 0);
		const started = Date.now();
		const status = await r.stop();
		expect(Date.now() - started).toBeGreaterThanOrEqual(290);
		expect(status).toMatchObject({ state: "stopped", reason: "stopped (killed by SIGKILL)" });
	});

	it("never restarts after a stop, even one during the backoff", async () => {
		const spec = processSpec("process.exit(1)", {
			restart: { policy: "always", maxRestarts: 0 }
		});
		const { r, statuses } = replica(spec, { backoffBase: 60000 });
		await r.start();
		await until(() => r.status().state === "starting");
		const status = await r.stop();
		expect(status).toMatchObject({ state: "stopped", reason: "stopped (exited with code 1)" });
		await new Promise(resolve => setTimeout(resolve, 100));
		expect(statuses.map(s => s.state)).toEqual(["starting", "running", "starting", "stopped"]);
	});
});

describe("adoption", () => {
	/** What a restarted agent finds: the replica's record, as the first agent wrote it. */
	function recordOf(spec: ReplicaSpec): ReplicaRecord {
		const files = replicaFiles(dataDir, "gpu-node-1");
		const found = readRecords(files).find(
			r =>
				r.record?.spec.workloadId === spec.workloadId &&
				r.record.spec.replica === spec.replica
		);
		return found!.record!;
	}

	it("takes over a running replica: same process, its earlier output, the lease in its name", async () => {
		const spec = processSpec(`console.log("hello"); setInterval(() => {}, 1000)`, {
			workloadId: "adopt-me"
		});
		const first = replica(spec);
		const { pid } = await first.r.start();
		await until(() => first.r.logs().some(l => l.text === "hello"));
		// The first agent goes (its object is dropped, the process runs on).
		first.r.detach();
		running.splice(running.indexOf(first.r), 1);
		const record = recordOf(spec);
		expect(record).toMatchObject({ pid, pgid: pid, restarts: 0, spec });

		const agent = { pid: process.pid, startTime: 12345 };
		const statuses: ReplicaStatus[] = [];
		const adopted = ProcessReplica.adopt(record, {
			nodeID: "gpu-node-1",
			sandbox,
			allowedCommands: [NODE],
			onStatus: s => statuses.push(s),
			lease: { agent, downWindow: 6000 }
		});
		running.push(adopted);
		expect(adopted.status()).toMatchObject({ state: "running", pid, fence: 7 });
		expect(adopted.logs().map(l => l.text)).toEqual(["hello"]);
		const lease = readLease(path.join(dataDir, "leases", "gpu-node-1", "adopt-me.2"));
		expect(lease?.agent).toEqual(agent);
		expect(isAlive(pid as number)).toBe(true);

		const stopped = await adopted.stop();
		expect(stopped.state).toBe("stopped");
		expect(isAlive(pid as number)).toBe(false);
		expect(fs.existsSync(path.join(dataDir, "replicas", "gpu-node-1", "adopt-me.2.json"))).toBe(
			false
		);
		expect(fs.existsSync(adopted.dir)).toBe(false);
	});

	it("notices when an adopted replica ends, and applies its restart policy", async () => {
		const spec = processSpec("setInterval(() => {}, 1000)", { workloadId: "adopt-end" });
		const first = replica(spec);
		const { pid } = await first.r.start();
		first.r.detach();
		running.splice(running.indexOf(first.r), 1);
		const statuses: ReplicaStatus[] = [];
		const adopted = ProcessReplica.adopt(recordOf(spec), {
			nodeID: "gpu-node-1",
			sandbox,
			allowedCommands: [NODE],
			onStatus: s => statuses.push(s)
		});
		running.push(adopted);
		process.kill(-(pid as number), "SIGKILL");
		await until(() => adopted.status().state === "failed");
		expect(adopted.status().reason).toMatch(/exit status unknown/);
		expect(statuses.map(s => s.state)).toEqual(["failed"]);
	});
});
