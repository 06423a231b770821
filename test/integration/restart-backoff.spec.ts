/**
 * Failing replicas with real processes: a control node and one agent over NATS and Redis. A
 * replica whose command the node refuses is `failed` at once with the reason, is not started
 * again by the syncs that follow (the reconcile tells the agent its list every 2 s), and the
 * agent logs it once; a replica that exits 1 with maxRestarts 2 runs exactly 3 times (its
 * backoff decides, not the syncs) and then fails. POST /workloads/:id/retry starts each again.
 */
import fs from "fs";
import os from "os";
import path from "path";
import {
	ClusterFixture,
	clusterFixture,
	eventually,
	NodeProcess,
	nodesReady,
	startAgent,
	startControl
} from "../helpers/cluster";

const SECRET = "backoff-secret";
jest.setTimeout(90_000);

/** Long enough for several reconcile rounds (2 s each) to sync the agent. */
const SYNCS_WINDOW_MS = 8000;
const REFUSED = "/usr/bin/not-on-the-allow-list";

describe("failing replicas back off", () => {
	let cluster: ClusterFixture;
	let control: NodeProcess;
	let agent: NodeProcess;
	const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "isa-backoff-"));

	const api = (p: string, init?: RequestInit) => cluster.api(p, init);
	const get = async (id: string) => (await api(`/api/v1/workloads/${id}`)).body;
	/** Lines of the agent's output that name `needle` (a workload's id, its command). */
	const agentLines = (needle: string) =>
		agent
			.output()
			.split("\n")
			.filter(line => line.includes(needle));

	beforeAll(async () => {
		cluster = await clusterFixture({
			name: "backoff",
			secret: SECRET,
			token: { sub: "op", tenant: "lab", roles: ["operator"] },
			env: { LOGLEVEL: "info", ISA_DATA_DIR: dataDir }
		});
		control = startControl(cluster);
		agent = startAgent(cluster, "a1", {
			ISA_ALLOWED_COMMANDS: process.execPath,
			ISA_NODE_CAPACITY: JSON.stringify({ cpu: 4, memory: "8Gi" })
		});
		await nodesReady(cluster, 1, 20_000);
	});

	afterAll(async () => {
		await Promise.all([agent, control].filter(Boolean).map(n => n.stop()));
		await cluster?.stop();
		fs.rmSync(dataDir, { recursive: true, force: true });
	});

	it("fails a refused command at once, logs it once over many syncs, and starts it again on retry", async () => {
		const created = await api("/api/v1/workloads", {
			method: "POST",
			body: JSON.stringify({
				name: "refused",
				kind: "process",
				process: { command: REFUSED },
				resources: { cpu: 0.5, memory: "64Mi" },
				restart: { policy: "always", maxRestarts: 0 }
			})
		});
		expect(created.status).toBe(201);
		const id = created.body.id;
		const started = Date.now();
		const failed = await eventually(
			async () => {
				const w = await get(id);
				return w.status === "failed" && w;
			},
			10_000,
			"the refused workload failed"
		);
		expect(Date.now() - started).toBeLessThan(5000);
		expect(failed.replicas[0]).toMatchObject({
			state: "failed",
			node: "a1",
			restarts: 0,
			reason: expect.stringContaining("'/usr/bin/not-on-the-allow-list' is not allowed"),
			lastError: expect.stringContaining("ISA_ALLOWED_COMMANDS")
		});

		// Syncs name the failed placement again and again: it stays failed, logged once.
		await new Promise(resolve => setTimeout(resolve, SYNCS_WINDOW_MS));
		expect((await get(id)).replicas[0]).toMatchObject({
			state: "failed",
			fence: failed.replicas[0].fence
		});
		// By the command: a line that tells of the refusal without naming the workload counts too.
		const lines = agentLines(REFUSED);
		expect(lines).toHaveLength(1);
		expect(lines[0]).toMatch(
			/WARN .*\/0 failed: Command '\/usr\/bin\/not-on-the-allow-list' is not allowed/
		);

		// A retry is a new placement: the agent tries it (and, still refused, fails it) once.
		const retried = await api(`/api/v1/workloads/${id}/retry`, { method: "POST", body: "{}" });
		expect(retried.status).toBe(200);
		expect(retried.body.replicas[0].fence).toBeGreaterThan(failed.replicas[0].fence);
		await eventually(
			async () => {
				const w = await get(id);
				return (
					w.status === "failed" && w.replicas[0].fence === retried.body.replicas[0].fence
				);
			},
			10_000,
			"the retried placement failed"
		);
		await eventually(
			async () => agentLines(REFUSED).length === 2,
			5000,
			"a second failure logged"
		);
		expect(agentLines(REFUSED)).toHaveLength(2);
	});

	it("runs a replica that exits 1 exactly maxRestarts + 1 times across syncs, then fails; retry starts it afresh", async () => {
		const created = await api("/api/v1/workloads", {
			method: "POST",
			body: JSON.stringify({
				name: "crasher",
				kind: "process",
				process: {
					command: process.execPath,
					args: ["-e", 'console.log("run"); process.exit(1)']
				},
				resources: { cpu: 0.5, memory: "64Mi" },
				restart: { policy: "on-failure", maxRestarts: 2 }
			})
		});
		expect(created.status).toBe(201);
		const id = created.body.id;
		const runs = async () => {
			const logs = (await api(`/api/v1/workloads/${id}/logs`)).body;
			return logs.items[0].lines.filter((l: { text: string }) => l.text === "run").length;
		};
		// Backoff 1 s, then 2 s (±20%): failed after about 3 s.
		const failed = await eventually(
			async () => {
				const w = await get(id);
				return w.status === "failed" && w;
			},
			15_000,
			"the crashing workload failed"
		);
		expect(failed.replicas[0]).toMatchObject({
			state: "failed",
			restarts: 2,
			reason: "exited with code 1; gave up after 2 restarts",
			lastError: "exited with code 1"
		});
		expect(await runs()).toBe(3);
		// The syncs that follow do not start it again.
		await new Promise(resolve => setTimeout(resolve, SYNCS_WINDOW_MS / 2));
		expect(await runs()).toBe(3);
		expect((await get(id)).replicas[0]).toMatchObject({ state: "failed", restarts: 2 });
		// The restarts were debug lines; the failure is the one line at info level.
		expect(agentLines(id)).toHaveLength(1);

		// Nothing else failed: a retry of a running workload is 409 (tested in the route
		// matrix); this one starts afresh, with no restarts counted.
		const retried = await api(`/api/v1/workloads/${id}/retry`, { method: "POST", body: "{}" });
		expect(retried.status).toBe(200);
		expect(retried.body.replicas[0]).toMatchObject({ restarts: 0 });
		expect(
			retried.body.events.some((e: { message: string }) => /retried by op/.test(e.message))
		).toBe(true);
		await eventually(
			async () => {
				const w = await get(id);
				return (
					w.status === "failed" &&
					w.replicas[0].fence === retried.body.replicas[0].fence &&
					w.replicas[0].restarts === 2
				);
			},
			15_000,
			"the retried placement failed after its own restarts"
		);
		expect(await runs()).toBe(3);
	});
});
