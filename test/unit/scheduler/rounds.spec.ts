import type { LoggerInstance } from "moleculer";
import { SqliteStore } from "../../../services/shared/store/sqlite";
import type { NodeInfo } from "../../../services/shared/types";
import type { AgentSync } from "../../../services/scheduler/agent-sync";
import { emptyAllocation } from "../../../services/scheduler/placement";
import { WorkloadRepository } from "../../../services/scheduler/repository";
import { Reserver } from "../../../services/scheduler/reservations";
import { PlacementRounds } from "../../../services/scheduler/rounds";
import { SerialQueue } from "../../../services/scheduler/serial-queue";
import { newWorkload, type Workload } from "../../../services/scheduler/workload";

const GiB = 1024 ** 3;

/** A CPU node of `cpu` cores. */
function node(id: string, cpu: number): NodeInfo {
	return {
		id,
		status: "ready",
		labels: {},
		capacity: { cpu, memory: 64 * GiB, gpus: [] }
	} as unknown as NodeInfo;
}

let seq = 0;
function workload(name: string, cpu: number, replicas: number, priority = 0): Workload {
	seq++;
	return newWorkload(
		{
			name,
			kind: "process",
			process: { command: "sleep" },
			resources: { cpu, memory: "1Gi" },
			replicas,
			priority
		},
		{ id: name, tenant: "acme", createdBy: "alice", seq, now: 1000 + seq }
	);
}

describe("PlacementRounds", () => {
	let store: SqliteStore;
	let repo: WorkloadRepository;
	let rounds: PlacementRounds;
	let synced: jest.Mock;
	let announced: Array<[string, number]>;
	let nodes: NodeInfo[];
	const logger = { warn: jest.fn() } as unknown as LoggerInstance;

	beforeEach(() => {
		store = new SqliteStore(":memory:");
		repo = new WorkloadRepository(store);
		synced = jest.fn();
		announced = [];
		nodes = [node("n1", 4), node("n2", 2)];
		const reserver = new Reserver(store, {
			onAllocation: (nodeID, a) => rounds.announceAllocation(nodeID, a)
		});
		rounds = new PlacementRounds(
			repo,
			reserver,
			new SerialQueue(),
			{ syncSoon: synced } as unknown as AgentSync,
			{
				nodes: async () => nodes,
				announce: (nodeID, a) => announced.push([nodeID, a.cpu])
			},
			{ announceDelay: 20 },
			logger
		);
	});
	afterEach(async () => {
		rounds.stop();
		await store.close();
	});

	/** Creates workloads as the scheduler does (no quota). */
	async function create(...ws: Workload[]) {
		expect(
			await repo.commitCreates(
				ws.map(w => ({ w, keyVersion: 0 })),
				new Map()
			)
		).toBe(true);
	}

	it("places what is asked in one round, writes each workload once and syncs its nodes", async () => {
		const [a, b] = [workload("a", 1, 2), workload("b", 2, 1)];
		await create(a, b);
		const write = jest.spyOn(repo, "write");
		const first = rounds.requestPlacement([a.id]);
		// Asked while the round waits in the queue: it joins that round.
		const second = rounds.requestPlacement([b.id]);
		expect(second).toBe(first);
		const written = await first;
		expect([...written.keys()].sort()).toEqual(["a", "b"]);
		expect(write).toHaveBeenCalledTimes(2);
		for (const id of ["a", "b"]) {
			const stored = (await repo.get(id))!.value;
			expect(stored.replicas.every(r => r.state === "starting" && r.node)).toBe(true);
			expect(written.get(id)).toEqual(stored);
		}
		expect(synced).toHaveBeenCalledTimes(1);
		const changes = synced.mock.calls[0][0] as Map<string, Set<string>>;
		const told = [...changes.values()].flatMap(ids => [...ids]).sort();
		expect(new Set(told)).toEqual(new Set(["a", "b"]));
		expect(rounds.waiting.size).toBe(0);
	});

	it("takes an urgent request into a round of its own, which runs before the normal one", async () => {
		const [a, b] = [workload("a", 1, 1), workload("b", 1, 1)];
		await create(a, b);
		const order: string[] = [];
		const normal = rounds.requestPlacement([a.id]).then(() => void order.push("normal"));
		const urgent = rounds.requestPlacement([b.id], [], "urgent");
		expect(urgent).not.toBe(rounds.requestPlacement([a.id]));
		const written = await urgent.then(w => (order.push("urgent"), w));
		await normal;
		expect(order).toEqual(["urgent", "normal"]);
		expect([...written.keys()]).toEqual(["b"]);
	});

	it("keeps what does not fit pending, with the reason, and waiting", async () => {
		const big = workload("big", 8, 1);
		await create(big);
		await rounds.requestPlacement([big.id]);
		const r = (await repo.get(big.id))!.value.replicas[0];
		expect(r.state).toBe("pending");
		expect(r.reason).toMatch(/cpu/i);
		expect(rounds.waiting.has(big.id)).toBe(true);
		// Room comes: a round of everything waiting places it.
		nodes = [node("n1", 16)];
		rounds.inventoryChanged();
		await rounds.requestPlacement();
		expect((await repo.get(big.id))!.value.replicas[0].node).toBe("n1");
		expect(rounds.waiting.size).toBe(0);
	});

	it("places by priority first, then first come first served", async () => {
		const [low, high] = [workload("low", 4, 1, 0), workload("high", 4, 1, 5)];
		await create(low, high);
		nodes = [node("n1", 4)];
		await Promise.all([rounds.requestPlacement([low.id]), rounds.requestPlacement([high.id])]);
		expect((await repo.get(high.id))!.value.replicas[0].node).toBe("n1");
		expect((await repo.get(low.id))!.value.replicas[0].state).toBe("pending");
	});

	it("puts each replica of an anti-affine workload on its own node", async () => {
		const w = workload("spread", 1, 3);
		w.placement.antiAffinity = true;
		await create(w);
		await rounds.requestPlacement([w.id]);
		const replicas = (await repo.get(w.id))!.value.replicas;
		expect(
			replicas
				.slice(0, 2)
				.map(r => r.node)
				.sort()
		).toEqual(["n1", "n2"]);
		// Two nodes, three replicas: the third waits.
		expect(replicas[2]).toMatchObject({ node: null, state: "pending" });
	});

	it("announces each node's latest allocation once per announceDelay", async () => {
		rounds.announceAllocation("n1", { ...emptyAllocation(), cpu: 1 });
		rounds.announceAllocation("n1", { ...emptyAllocation(), cpu: 2 });
		rounds.announceAllocation("n2", { ...emptyAllocation(), cpu: 3 });
		expect(announced).toEqual([]);
		await new Promise(resolve => setTimeout(resolve, 50));
		expect(announced).toEqual([
			["n1", 2],
			["n2", 3]
		]);
	});
});
