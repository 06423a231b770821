/**
 * Overload, with real processes: a control node and two agents over NATS and Redis, and
 * parallel clients that flood creates of workloads whose command the nodes refuse (the issue's
 * measured collapse: false node deaths, timed-out and retried creates, 404s from an open breaker,
 * an agent logging every refusal on every sync).
 *
 * What must hold: every answer is 201, a 4xx other than 404, or 503 with Retry-After; none takes
 * longer than the client's timeout; no node is declared down; each agent logs about one line per
 * replica it refused, not one per sync; and once the flood stops the cluster serves normally
 * within seconds (a plain read is quick, a runnable workload runs).
 */
import {
	ClusterFixture,
	clusterFixture,
	eventually,
	NodeProcess,
	nodesReady,
	startAgent,
	startControl
} from "../helpers/cluster";

const SECRET = "overload-secret";
jest.setTimeout(120_000);

const CLIENTS = 24;
const FLOOD_MS = 10_000;
/** A client gives up on an answer after this long: a hung request. */
const CLIENT_TIMEOUT_MS = 12_000;
const REFUSED = "/usr/bin/not-on-the-allow-list";

interface Outcome {
	status: number;
	ms: number;
	retryAfter: string | null;
	id?: string;
}

describe("a flood of refused creates", () => {
	let cluster: ClusterFixture;
	let control: NodeProcess;
	const agents: NodeProcess[] = [];

	beforeAll(async () => {
		cluster = await clusterFixture({
			name: "overload",
			secret: SECRET,
			token: { sub: "flood", tenant: "lab", roles: ["operator"] }
		});
		control = startControl(cluster);
		for (const id of ["a1", "a2"])
			agents.push(
				startAgent(cluster, id, {
					ISA_ALLOWED_COMMANDS: process.execPath,
					ISA_NODE_CAPACITY: JSON.stringify({ cpu: 10_000, memory: "10000Gi" })
				})
			);
		await nodesReady(cluster, 2, 30_000);
	});

	afterAll(async () => {
		await Promise.all([...agents, control].filter(Boolean).map(n => n.stop()));
		await cluster?.stop();
	});

	/** One create through the gateway, timed; a timeout is recorded as status 0. */
	async function create(name: string, command: string, args: string[] = []): Promise<Outcome> {
		const started = Date.now();
		try {
			const res = await fetch(`http://127.0.0.1:${cluster.port}/api/v1/workloads`, {
				method: "POST",
				headers: {
					Authorization: `Bearer ${cluster.token}`,
					"Content-Type": "application/json"
				},
				body: JSON.stringify({
					name,
					kind: "process",
					process: { command, args },
					resources: { cpu: 0.1, memory: "16Mi" },
					restart: { policy: "always", maxRestarts: 0 }
				}),
				signal: AbortSignal.timeout(CLIENT_TIMEOUT_MS)
			});
			const body = (await res.json()) as { id?: string };
			return {
				status: res.status,
				ms: Date.now() - started,
				retryAfter: res.headers.get("retry-after"),
				id: body.id
			};
		} catch {
			return { status: 0, ms: Date.now() - started, retryAfter: null };
		}
	}

	it("answers every create honestly, keeps every node up, logs little, and recovers", async () => {
		const outcomes: Outcome[] = [];
		const nodeStates: string[] = [];
		const linesBefore = agents.map(a => a.output().split("\n").length);
		const deadline = Date.now() + FLOOD_MS;

		// The inventory's view while the flood runs: no node may be declared down.
		let watching = true;
		const watcher = (async () => {
			while (watching) {
				const res = await cluster.api("/api/v1/nodes").catch(() => null);
				if (res?.status === 200)
					for (const n of res.body.items as Array<{ status: string }>)
						nodeStates.push(n.status);
				await new Promise(r => setTimeout(r, 500));
			}
		})();

		let n = 0;
		await Promise.all(
			Array.from({ length: CLIENTS }, async (_, c) => {
				while (Date.now() < deadline)
					outcomes.push(await create(`flood-${c}-${n++}`, REFUSED));
			})
		);
		// Settle: the refusals of the last placements reach the agents' logs.
		await new Promise(r => setTimeout(r, 3000));
		watching = false;
		await watcher;

		const byStatus: Record<number, number> = {};
		for (const o of outcomes) byStatus[o.status] = (byStatus[o.status] ?? 0) + 1;
		const created = byStatus[201] ?? 0;
		console.log(
			`overload: ${outcomes.length} creates in ${FLOOD_MS} ms by ${CLIENTS} clients: ` +
				JSON.stringify(byStatus) +
				`; slowest ${Math.max(...outcomes.map(o => o.ms))} ms`
		);

		expect(created).toBeGreaterThan(0);
		// Nothing hung past the client's timeout, no 404 and no 500.
		expect(byStatus[0] ?? 0).toBe(0);
		expect(byStatus[404] ?? 0).toBe(0);
		for (const o of outcomes) {
			expect([201, 503].includes(o.status) || (o.status >= 400 && o.status < 500)).toBe(true);
			if (o.status === 503) expect(o.retryAfter).toMatch(/^\d+$/);
		}

		// No node was declared down, and the control node moved no replica.
		expect(nodeStates.length).toBeGreaterThan(0);
		expect(nodeStates.filter(s => s === "down")).toEqual([]);
		expect(control.output()).not.toMatch(/Moving replica/);

		// About one line per refused replica, not one per sync: the two agents together logged
		// no more lines than there were creates, plus their own few.
		const logged = agents.reduce(
			(sum, a, i) => sum + a.output().split("\n").length - linesBefore[i],
			0
		);
		expect(logged).toBeLessThanOrEqual(created + 20);

		// Serving normally within seconds: a quick read, and a runnable workload runs.
		await eventually(
			async () => {
				const started = Date.now();
				const res = await cluster.api("/api/v1/nodes");
				return res.status === 200 && Date.now() - started < 1000;
			},
			10_000,
			"a quick GET /nodes after the flood"
		);
		const ok = await eventually(
			async () => {
				const o = await create("after-the-flood", process.execPath, [
					"-e",
					"setInterval(() => {}, 1000)"
				]);
				return o.status === 201 && o;
			},
			10_000,
			"a create admitted after the flood"
		);
		await eventually(
			async () => (await cluster.api(`/api/v1/workloads/${ok.id}`)).body.status === "running",
			15_000,
			"the workload created after the flood running"
		);
	});
});
