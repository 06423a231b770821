import type { CallingOptions, LoggerInstance } from "moleculer";
import { NodeDownError } from "../../../services/shared/errors";
import { COLLECTIONS } from "../../../services/shared/collections";
import { SqliteStore } from "../../../services/shared/store/sqlite";
import {
	addChange,
	AgentSync,
	replicaLogs,
	type Changes
} from "../../../services/scheduler/agent-sync";
import { WorkloadRepository } from "../../../services/scheduler/repository";
import { SerialQueue } from "../../../services/scheduler/serial-queue";
import { replicaSpec, type Workload } from "../../../services/scheduler/workload";
import type { ClusterIdentity } from "../../../services/shared/store/identity";
import { replicaDigest } from "../../../services/shared/replica-digest";
import { placedWorkload } from "../../helpers/workloads";

interface Sent {
	action: string;
	params: any;
	opts: CallingOptions;
}

describe("AgentSync", () => {
	let store: SqliteStore;
	let sent: Sent[];
	let connected: Set<string>;
	let sync: AgentSync;
	let repo: WorkloadRepository;
	let failing: boolean;
	/** What an agent answers agent.check, by node (true: its digest is the one sent). */
	let matches: Record<string, boolean | Error>;
	/** What the store's identity check answers (null: the store is not the cluster's). */
	let identity: ClusterIdentity | null;
	const logger = {
		debug: jest.fn(),
		info: jest.fn(),
		warn: jest.fn()
	} as unknown as LoggerInstance;

	beforeEach(async () => {
		store = new SqliteStore(":memory:");
		sent = [];
		failing = false;
		matches = {};
		identity = { clusterId: "c1", epoch: 1, createdAt: 0 };
		connected = new Set(["n1", "n2"]);
		sync = new AgentSync(
			{
				connected: id => connected.has(id),
				call: async (action, params, opts) => {
					sent.push({ action, params, opts });
					if (failing) throw new Error("no agent");
					if (action !== "agent.check") return undefined;
					const answer = matches[opts.nodeID!] ?? true;
					if (answer instanceof Error) throw answer;
					return { match: answer };
				},
				trustedIdentity: async () => identity
			},
			(repo = new WorkloadRepository(store)),
			new SerialQueue(),
			{ syncDelay: 20 },
			logger
		);
		for (const w of [placedWorkload("a", ["n1", "n2"]), placedWorkload("b", ["n1", null])])
			await store.put(COLLECTIONS.workloads, w.id, w);
	});
	afterEach(async () => {
		sync.stop();
		await store.close();
	});

	const stored = async (id: string) =>
		(await store.get<Workload>(COLLECTIONS.workloads, id))!.value;
	const spec = async (id: string, index: number) => {
		const w = await stored(id);
		return replicaSpec(w, w.replicas[index]);
	};

	it("tells each connected node everything it should run, numbered alike", async () => {
		await sync.syncNodes(["n1", "n2", "n1", "away"]);
		expect(sent.map(s => [s.action, s.opts])).toEqual([
			["agent.sync", { nodeID: "n1", retries: 0, timeout: 5000 }],
			["agent.sync", { nodeID: "n2", retries: 0, timeout: 5000 }]
		]);
		expect(sent[0].params.replicas).toEqual([await spec("a", 0), await spec("b", 0)]);
		expect(sent[1].params.replicas).toEqual([await spec("a", 1)]);
		expect(sent[0].params.generation).toBe(sent[1].params.generation);
	});

	it("numbers every later list higher, by the clock in µs", async () => {
		const before = Date.now() * 1000;
		await sync.syncNodes(["n1"]);
		await sync.syncNodes(["n1"]);
		const [g1, g2] = sent.map(s => s.params.generation as number);
		expect(g1).toBeGreaterThanOrEqual(before);
		expect(g2).toBeGreaterThan(g1);
	});

	it("sends every list with the store's identity, and none while the store is not the cluster's", async () => {
		await sync.syncNodes(["n1"]);
		expect(sent[0].params.identity).toEqual({ clusterId: "c1", epoch: 1, createdAt: 0 });
		sent = [];
		identity = null;
		await sync.syncNodes(["n1", "n2"]);
		await sync.syncWorkloads(new Map([["n1", new Set(["a"])]]));
		expect(sent).toEqual([]);
		expect(logger.warn).toHaveBeenCalledWith(expect.stringContaining("not synced"));
	});

	it("tells nothing when no node is connected", async () => {
		await sync.syncNodes(["away"]);
		const changes: Changes = new Map();
		addChange(changes, "away", "a");
		await sync.syncWorkloads(changes);
		expect(sent).toEqual([]);
	});

	it("gathers changes for syncDelay ms and sends each node the lists of its changed workloads", async () => {
		const first: Changes = new Map();
		addChange(first, "n1", "a");
		const second: Changes = new Map();
		addChange(second, "n1", "b");
		addChange(second, "n2", "gone");
		sync.syncSoon(first);
		sync.syncSoon(second);
		expect(sent).toEqual([]);
		await new Promise(resolve => setTimeout(resolve, 60));
		expect(sent.map(s => s.opts.nodeID)).toEqual(["n1", "n2"]);
		expect(sent.every(s => s.action === "agent.syncWorkloads")).toBe(true);
		expect(sent[0].params.workloads).toEqual([
			{ workloadId: "a", replicas: [await spec("a", 0)] },
			{ workloadId: "b", replicas: [await spec("b", 0)] }
		]);
		// A deleted workload: the node stops its replicas.
		expect(sent[1].params.workloads).toEqual([{ workloadId: "gone", replicas: [] }]);
		// Sent: nothing more goes out.
		await new Promise(resolve => setTimeout(resolve, 40));
		expect(sent).toHaveLength(2);
	});

	it("sends nothing once stopped", async () => {
		const changes: Changes = new Map();
		addChange(changes, "n1", "a");
		sync.syncSoon(changes);
		sync.stop();
		await new Promise(resolve => setTimeout(resolve, 40));
		expect(sent).toEqual([]);
	});

	it("does not wait for an agent, and logs one that did not answer", async () => {
		failing = true;
		await sync.syncNodes(["n1"]);
		await new Promise(resolve => setImmediate(resolve));
		expect(logger.debug).toHaveBeenCalledWith("Could not sync node 'n1':", "no agent");
	});

	describe("checkNodes", () => {
		const settle = () => new Promise(resolve => setTimeout(resolve, 30));
		// The reconcile reads the workloads before it checks; the check uses those copies.
		beforeEach(() => repo.allCached());

		it("sends each connected node the digest of its list, and no list when it matches", async () => {
			await sync.checkNodes(["n1", "n2", "away"]);
			await settle();
			expect(sent.map(s => [s.action, s.opts.nodeID])).toEqual([
				["agent.check", "n1"],
				["agent.check", "n2"]
			]);
			const [a, b] = [await stored("a"), await stored("b")];
			const ref = (w: Workload, i: number) => ({
				workloadId: w.id,
				replica: i,
				fence: w.replicas[i].fence
			});
			expect(sent[0].params).toMatchObject({
				digest: replicaDigest([ref(a, 0), ref(b, 0)]),
				skip: [],
				identity: { clusterId: "c1", epoch: 1, createdAt: 0 }
			});
			expect(sent[1].params.digest).toBe(replicaDigest([ref(a, 1)]));
		});

		it("sends its whole list to a node whose digest differs twice in a row, or that cannot check", async () => {
			matches = {
				n1: false,
				n2: Object.assign(new Error("Service 'agent.check' is not found."), {
					type: "SERVICE_NOT_FOUND"
				})
			};
			await sync.checkNodes(["n1", "n2"]);
			await settle();
			// A first mismatch may be a list on its way: only the agent without checks is sent one.
			expect(sent.map(s => [s.action, s.opts.nodeID])).toEqual([
				["agent.check", "n1"],
				["agent.check", "n2"],
				["agent.sync", "n2"]
			]);
			sent = [];
			await sync.checkNodes(["n1"]);
			await settle();
			expect(sent.map(s => [s.action, s.opts.nodeID])).toEqual([
				["agent.check", "n1"],
				["agent.sync", "n1"]
			]);
			expect(sent[1].params.replicas).toEqual([await spec("a", 0), await spec("b", 0)]);
		});

		it("forgets a mismatch that the next check no longer sees", async () => {
			matches = { n1: false };
			await sync.checkNodes(["n1"]);
			await settle();
			matches = { n1: true };
			await sync.checkNodes(["n1"]);
			await settle();
			matches = { n1: false };
			await sync.checkNodes(["n1"]);
			await settle();
			expect(sent.map(s => s.action)).toEqual(["agent.check", "agent.check", "agent.check"]);
		});

		it("sends no list for a check that failed otherwise: the next reconcile checks again", async () => {
			matches = { n1: new Error("Request timed out") };
			await sync.checkNodes(["n1"]);
			await settle();
			expect(sent.map(s => s.action)).toEqual(["agent.check"]);
			expect(logger.debug).toHaveBeenCalledWith(
				"Could not check node 'n1':",
				"Request timed out"
			);
		});

		it("leaves out of the digest the changes still waiting for the sync timer", async () => {
			const changes: Changes = new Map();
			addChange(changes, "n1", "b");
			sync.syncSoon(changes);
			await sync.checkNodes(["n1"]);
			const a = await stored("a");
			expect(sent[0].params.skip).toEqual(["b"]);
			expect(sent[0].params.digest).toBe(
				replicaDigest([{ workloadId: "a", replica: 0, fence: a.replicas[0].fence }])
			);
			await settle();
		});

		it("checks nothing while the store is not the cluster's", async () => {
			identity = null;
			await sync.checkNodes(["n1"]);
			expect(sent).toEqual([]);
		});
	});
});

describe("replicaLogs", () => {
	it("asks each placed replica's agent (or the one asked for), an error for one that fails", async () => {
		const w = placedWorkload("a", ["n1", "n2", null]);
		const asked: Array<[string, object]> = [];
		const call = async (nodeID: string, params: object) => {
			asked.push([nodeID, params]);
			if (nodeID === "n2") throw new Error("agent gone");
			return ["hello"];
		};
		expect(await replicaLogs(w, {}, new Set(), call)).toEqual([
			{ replica: 0, node: "n1", lines: ["hello"] },
			{ replica: 1, node: "n2", lines: [], error: "agent gone" }
		]);
		expect(asked).toEqual([
			["n1", { workloadId: "a", replica: 0, limit: 200 }],
			["n2", { workloadId: "a", replica: 1, limit: 200 }]
		]);
		asked.length = 0;
		expect(await replicaLogs(w, { replica: 0, limit: 5 }, new Set(), call)).toHaveLength(1);
		expect(asked).toEqual([["n1", { workloadId: "a", replica: 0, limit: 5 }]]);
	});

	it("asks no agent of a down node: 503 NODE_DOWN when all are there, else an error for each", async () => {
		const w = placedWorkload("a", ["n1", "n2", "n2"]);
		const asked: string[] = [];
		const call = async (nodeID: string) => {
			asked.push(nodeID);
			return ["hello"];
		};
		expect(await replicaLogs(w, {}, new Set(["n2"]), call)).toEqual([
			{ replica: 0, node: "n1", lines: ["hello"] },
			{ replica: 1, node: "n2", lines: [], error: "node n2 is down" },
			{ replica: 2, node: "n2", lines: [], error: "node n2 is down" }
		]);
		expect(asked).toEqual(["n1"]);
		const err = await replicaLogs(w, { replica: 1 }, new Set(["n2"]), call).catch(e => e);
		expect(err).toBeInstanceOf(NodeDownError);
		expect(err).toMatchObject({ code: 503, type: "NODE_DOWN", data: { nodes: ["n2"] } });
		expect(err.message).toMatch(/^Node 'n2' is down: /);
		await expect(replicaLogs(w, {}, new Set(["n1", "n2"]), call)).rejects.toMatchObject({
			message: expect.stringMatching(/^Nodes 'n1', 'n2' are down: /),
			data: { nodes: ["n1", "n2"] }
		});
		expect(asked).toEqual(["n1"]);
	});
});
