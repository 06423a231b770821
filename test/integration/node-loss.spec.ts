/**
 * Node loss with real processes: a control node and three agent nodes over NATS and Redis, a
 * process workload of 3 replicas, `kill -9` of the agent holding them. All replicas run
 * elsewhere within 10 s, none twice (the killed agent's own replica processes are stopped by
 * their supervisors before the down window ends), and the reservations match what runs. The
 * agent, restarted, starts nothing again.
 */
import fs from "fs";
import os from "os";
import path from "path";
import { isDeepStrictEqual } from "util";
import { ServiceBroker } from "moleculer";
import {
	ClusterFixture,
	clusterFixture,
	eventually,
	NodeProcess,
	REPL_ENTRY,
	ROOT,
	startNode
} from "../helpers/cluster";

const SECRET = "loss-secret";
jest.setTimeout(90_000);

/** Pids of live replica processes: node itself (not its agent's shell) with `marker` in its arguments. */
function processesWith(marker: string): number[] {
	const pids: number[] = [];
	for (const entry of fs.readdirSync("/proc")) {
		if (!/^\d+$/.test(entry)) continue;
		try {
			const stat = fs.readFileSync(`/proc/${entry}/stat`, "utf8");
			if (/\) Z /.test(stat)) continue; // zombies are gone, only not yet reaped
			const argv = fs.readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0");
			if (argv[0] === process.execPath && argv.includes(marker)) pids.push(Number(entry));
		} catch {
			// The process ended while we looked.
		}
	}
	return pids;
}

describe("node loss", () => {
	let cluster: ClusterFixture;
	let agentEnv: Record<string, string>;
	let common: Record<string, string>;
	const nodes = new Map<string, NodeProcess>();
	const marker = `isa-loss-test-${process.pid}`;

	const api = (path: string, init?: RequestInit) => cluster.api(path, init);

	/** A process workload of `replicas` replicas that run until stopped, marked for processesWith. */
	const sleeper = (name: string, replicas: number) =>
		api("/api/v1/workloads", {
			method: "POST",
			body: JSON.stringify({
				name,
				kind: "process",
				process: {
					command: process.execPath,
					args: ["-e", "setInterval(() => {}, 1000)", marker]
				},
				resources: { cpu: 1, memory: "1Gi" },
				replicas
			})
		});

	beforeAll(async () => {
		cluster = await clusterFixture({
			name: "loss",
			secret: SECRET,
			token: { sub: "op", tenant: "lab", roles: ["operator"] },
			env: { LOGLEVEL: "warn" }
		});
		common = cluster.common;
		agentEnv = {
			...common,
			SERVICES: "agent",
			ISA_ALLOWED_COMMANDS: process.execPath,
			ISA_SERVICE_DIRS: path.join(ROOT, "test/fixtures/workloads"),
			ISA_NODE_CAPACITY: JSON.stringify({ cpu: 4, memory: "8Gi" })
		};
		nodes.set(
			"control",
			startNode("control", {
				...common,
				SERVICES: "nodes,scheduler,tenants,audit,gateway",
				PORT: String(cluster.port)
			})
		);
		for (const id of ["a1", "a2", "a3"]) nodes.set(id, startNode(id, agentEnv));
	});

	// Every test starts on the same cluster: three ready agents and no workload. Before the
	// first test this waits for the start; after one that killed an agent, for its return.
	beforeEach(async () => {
		await eventually(
			async () => (await api("/api/v1/nodes?status=ready")).body.total === 3,
			20_000,
			"3 ready agent nodes"
		);
	});

	/** Deletes every workload and waits until none of their replica processes is left. */
	async function deleteEverything(): Promise<void> {
		const { body } = await api("/api/v1/workloads");
		for (const w of body.items) await api(`/api/v1/workloads/${w.id}`, { method: "DELETE" });
		await eventually(
			async () => processesWith(marker).length === 0,
			10_000,
			"no replica process left"
		);
	}

	// What a test created goes, and an agent it killed (and, by failing, did not restart) comes
	// back, so that binpack, fences and reservations in the next test see only its own work.
	afterEach(async () => {
		for (const [id, n] of nodes)
			if (id !== "control" && (n.proc.exitCode !== null || n.proc.signalCode !== null))
				nodes.set(id, startNode(id, agentEnv));
		await deleteEverything();
		await eventually(
			async () =>
				(await api("/api/v1/nodes")).body.items.every((n: any) => n.allocated.cpu === 0),
			10_000,
			"no reservation left"
		);
	});

	afterAll(async () => {
		await Promise.all([...nodes.values()].map(n => n.stop()));
		await cluster?.stop();
		for (const pid of processesWith(marker)) process.kill(pid, "SIGKILL");
	});

	it("moves every replica off a killed node within 10 s, none twice, reservations matching", async () => {
		const created = await sleeper("sleeper", 3);
		expect(created.status).toBe(201);
		const id = created.body.id;
		const running = await eventually(
			async () => {
				const { body } = await api(`/api/v1/workloads/${id}`);
				return body.status === "running" && body;
			},
			15_000,
			"3 running replicas"
		);
		const victim = running.replicas[0].node;
		// binpack: all three on one node.
		expect(running.replicas.map((r: any) => r.node)).toEqual([victim, victim, victim]);
		await eventually(
			async () => processesWith(marker).length === 3,
			5000,
			"3 replica processes"
		);

		const killedAt = Date.now();
		await nodes.get(victim)!.kill();
		const moved = await eventually(
			async () => {
				const { body } = await api(`/api/v1/workloads/${id}`);
				return (
					body.replicas.every(
						(r: any) => r.node && r.node !== victim && r.state === "running"
					) && body
				);
			},
			10_000,
			"all replicas running elsewhere"
		);
		const tookMs = Date.now() - killedAt;
		console.log(`3 replicas running elsewhere ${tookMs} ms after kill -9 of ${victim}`);
		expect(tookMs).toBeLessThan(10_000);
		// Each moved once: fences 1 to 3 were the first placements, 4 to 6 the moves.
		expect(moved.replicas.map((r: any) => r.fence).sort()).toEqual([4, 5, 6]);
		await eventually(
			async () => processesWith(marker).length === 3,
			5000,
			"exactly 3 replica processes"
		);

		const expected: Record<string, number> = { a1: 0, a2: 0, a3: 0 };
		for (const r of moved.replicas) expected[r.node] += 1;
		// The list follows the scheduler's announcements, a few times a second.
		const allocated = async () => {
			const { body } = await api("/api/v1/nodes");
			return Object.fromEntries(body.items.map((n: any) => [n.id, n.allocated.cpu]));
		};
		await eventually(
			async () => isDeepStrictEqual(await allocated(), expected),
			3000,
			"reservations that match what runs"
		).catch(() => undefined);
		expect(await allocated()).toEqual(expected);

		// The old node returns: it is told it runs nothing, and starts nothing.
		nodes.set(victim, startNode(victim, agentEnv));
		await eventually(
			async () => (await api(`/api/v1/nodes/${victim}`)).body.status === "ready",
			15_000,
			`${victim} back`
		);
		await new Promise(r => setTimeout(r, 1500));
		expect(processesWith(marker)).toHaveLength(3);
		expect(
			(await api(`/api/v1/workloads/${id}`)).body.replicas.every(
				(r: any) => r.node !== victim
			)
		).toBe(true);
	});

	it("shows a replica's output through /logs, and stops everything on delete", async () => {
		const created = await sleeper("logged", 3);
		const id = created.body.id;
		await eventually(
			async () => (await api(`/api/v1/workloads/${id}`)).body.status === "running",
			15_000,
			"3 running replicas"
		);
		const logs = await api(`/api/v1/workloads/${id}/logs`);
		expect(logs.status).toBe(200);
		expect(logs.body.items).toHaveLength(3);
		expect((await api(`/api/v1/workloads/${id}`, { method: "DELETE" })).status).toBe(200);
		await eventually(
			async () => processesWith(marker).length === 0,
			10_000,
			"no replica process left"
		);
	});

	it("schedules and lists workloads from the REPL", async () => {
		const repl = startNode("repl-loss", { ...common, ISA_TENANT: "lab" }, REPL_ENTRY);
		try {
			await eventually(
				async () => repl.output().includes("mol $"),
				15_000,
				"the REPL prompt"
			);
			const script = path.join(os.tmpdir(), `${marker}.js`);
			fs.writeFileSync(script, "setInterval(() => {}, 1000);\n");
			repl.proc.stdin!.write(
				`schedule repl-job --cpu 500m --memory 256Mi --replicas 2 --command ${process.execPath} --args "${script} ${marker}"\n`
			);
			await eventually(
				async () =>
					/repl-job\s+lab\s+process\s+pending\s+0\/2\s+0\.5 cpu, 256Mi/.test(
						repl.output()
					),
				10_000,
				"the new workload"
			);
			await eventually(
				async () => {
					repl.proc.stdin!.write("workloads\n");
					await new Promise(r => setTimeout(r, 300));
					return /repl-job\s+lab\s+process\s+running\s+2\/2/.test(repl.output());
				},
				10_000,
				"both replicas running in the table"
			);
			expect(repl.output()).toMatch(
				/NAME\s+TENANT\s+KIND\s+STATUS\s+READY\s+REQUESTS\s+NODES/
			);
			repl.proc.stdin!.write("schedule too-big --cpu 64 --memory 1Gi --command /bin/true\n");
			await eventually(
				async () => /too-big.*pending.*0\/3 nodes fit \(cpu 64/.test(repl.output()),
				10_000,
				"the pending reason"
			);
		} catch (err) {
			console.log(repl.output().slice(-3000));
			throw err;
		} finally {
			await repl.kill();
		}
		await deleteEverything();
	});

	it("runs a service workload that the cluster can call, and says why a command is refused", async () => {
		const svc = await api("/api/v1/workloads", {
			method: "POST",
			body: JSON.stringify({
				name: "echo",
				kind: "service",
				service: { module: "echo" },
				resources: { cpu: 0.5, memory: "128Mi" }
			})
		});
		expect(svc.status).toBe(201);
		await eventually(
			async () => (await api(`/api/v1/workloads/${svc.body.id}`)).body.status === "running",
			10_000,
			"echo running"
		);
		// A client broker of our own joins the cluster and calls the workload's action.
		const client = new ServiceBroker({
			nodeID: `client-${process.pid}`,
			namespace: common.NAMESPACE,
			transporter: common.TRANSPORTER,
			logger: false
		});
		await client.start();
		try {
			await client.waitForServices("echo", 5000);
			expect(await client.call("echo.say", { text: "hi" })).toEqual({ said: "hi" });
		} finally {
			await client.stop();
		}

		const refused = await api("/api/v1/workloads", {
			method: "POST",
			body: JSON.stringify({
				name: "shell",
				kind: "process",
				process: { command: "/bin/sh", args: ["-c", "echo hi"] },
				resources: { cpu: 0.5, memory: "128Mi" }
			})
		});
		const failed = await eventually(
			async () => {
				const { body } = await api(`/api/v1/workloads/${refused.body.id}`);
				return body.status === "failed" && body;
			},
			10_000,
			"the refused workload failed"
		);
		expect(failed.replicas[0].reason).toMatch(/\/bin\/sh.*not allowed.*ISA_ALLOWED_COMMANDS/);
		for (const id of [svc.body.id, refused.body.id])
			await api(`/api/v1/workloads/${id}`, { method: "DELETE" });
	});
});
