/**
 * A second process with an existing NODEID: a control node and one agent running a replica; a
 * second agent process is started with the agent's NODEID. It finds the NODEID's lease held
 * (services/nodes/lease.ts) before its broker connects, exits with status 3 naming the holder
 * (hostname, pid, since), and the established agent never hears of it: still running, still
 * `ready`, its replica's process unchanged, and the API, the processes and the store agree.
 */
import fs from "fs";
import os from "os";
import path from "path";
import { startNode } from "../helpers/cluster";
import { type FaultCluster, faultCluster, Watcher } from "./harness";

jest.setTimeout(90_000);

/** The lease is watched for a renewal, every 0.5 s here (ISA_REPORT_INTERVAL=0.5). */
const REFUSED_WITHIN_MS = 15_000;
/** How long the established node is watched after the refusal: several report intervals. */
const AFTER_MS = 3000;

describe("fault: a second process with an existing NODEID", () => {
	let cluster: FaultCluster;

	beforeAll(async () => {
		cluster = await faultCluster({ name: "dupid", agents: ["agent-1"] });
		await cluster.readyAgents(1);
	});

	afterAll(async () => {
		await cluster?.close();
	});

	it("refuses the newcomer, which names the holder, and leaves the established node alone", async () => {
		await cluster.sleeper("dup", 1);
		const before = await cluster.agreement(1, 30_000);
		const [pidBefore] = [...before.procs.values()].map(([p]) => p.pid);
		const established = cluster.nodes.get("agent-1")!;
		const watcher = new Watcher(cluster).start();

		const startedAt = Date.now();
		// As from another machine: a data directory of its own (a second agent on the same one
		// is refused earlier still, by the node's replica records: node-agent/runner/adoption.ts).
		// At info level, so that a broker start would show in its output.
		const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "isa-dupid-newcomer-"));
		const newcomer = startNode("agent-1", {
			...cluster.agentEnv,
			ISA_DATA_DIR: dataDir,
			LOGLEVEL: "info"
		});
		const code = await Promise.race([
			new Promise<number | null>(resolve =>
				newcomer.proc.once("exit", (c: number | null) => resolve(c))
			),
			new Promise<"running">(resolve =>
				setTimeout(() => resolve("running"), REFUSED_WITHIN_MS)
			)
		]);
		if (code === "running") await newcomer.kill();
		expect({ code, output: newcomer.output() }).toMatchObject({ code: 3 });
		const refusedMs = Date.now() - startedAt;
		expect(newcomer.output()).toMatch(
			new RegExp(
				`NODEID 'agent-1' is held by a live node \\(hostname ${os.hostname()}, pid ` +
					`${established.proc.pid}, since \\d{4}-\\d\\d-\\d\\dT`
			)
		);
		// It never joined: the broker did not start, so no INFO packet reached the cluster.
		expect(newcomer.output()).not.toMatch(/ServiceBroker with \d+ service\(s\) started/);

		await new Promise(r => setTimeout(r, AFTER_MS));
		const samples = watcher.stop();
		expect(established.proc.exitCode).toBeNull();
		expect(established.proc.signalCode).toBeNull();
		expect(established.output()).not.toMatch(/nodeID conflict/);
		const control = cluster.nodes.get("control")!;
		expect(control.output()).not.toMatch(/nodeID conflict/);

		const { body } = await cluster.api("/api/v1/nodes/agent-1");
		expect(body.status).toBe("ready");
		expect(watcher.restarted()).toEqual([]);
		expect(watcher.maxCopies()).toBe(1);
		// The replica stayed `running` in the API throughout, never `starting` again.
		expect(samples.filter(s => s.api && s.api.size !== 1)).toEqual([]);
		const after = await cluster.agreement(1, 10_000);
		expect([...after.procs.values()].map(([p]) => p.pid)).toEqual([pidBefore]);
		console.log(`duplicate NODEID refused in ${refusedMs} ms; replica pid ${pidBefore} kept`);
		fs.rmSync(dataDir, { recursive: true, force: true });
	});
});
