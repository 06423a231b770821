import type { LoggerInstance } from "moleculer";
import { COLLECTIONS } from "../../../services/shared/collections";
import { SqliteStore } from "../../../services/shared/store/sqlite";
import type { AgentSync } from "../../../services/scheduler/agent-sync";
import { placedReplicas } from "../../../services/scheduler/assign";
import { emptyAllocation } from "../../../services/scheduler/placement";
import { Recovery } from "../../../services/scheduler/recovery";
import { WorkloadRepository } from "../../../services/scheduler/repository";
import type { Reserver } from "../../../services/scheduler/reservations";
import type { PlacementRounds } from "../../../services/scheduler/rounds";
import { SerialQueue } from "../../../services/scheduler/serial-queue";
import { placedWorkload } from "../../helpers/workloads";

describe("Recovery", () => {
	let store: SqliteStore;
	let repo: WorkloadRepository;
	let recovery: Recovery;
	let released: jest.Mock;
	let synced: jest.Mock;
	let syncSoon: jest.Mock;
	let checked: jest.Mock;
	let queue: SerialQueue;
	let rounds: {
		waiting: Set<string>;
		placePending: jest.Mock;
		loadInventory: jest.Mock;
		announceAllocation: jest.Mock;
	};
	const logger = { info: jest.fn(), warn: jest.fn() } as unknown as LoggerInstance;
	const allocation = { ...emptyAllocation(), cpu: 1 };
	const record = (nodeID: string, at = Date.now()) => ({
		nodeID,
		gpus: [],
		resources: { cpu: 1, memory: 1, gpu: 0, gpuMemory: 0 },
		at
	});
	/** The reservations the Reserver knows: every placed replica's, and an orphan. */
	const placements = new Map([
		["a/0@1", record("n1")],
		["a/1@1", record("n2")],
		["b/0@1", record("n2")],
		["gone/0@1", record("n1", 0)]
	]);

	beforeEach(async () => {
		jest.spyOn(Math, "random").mockReturnValue(0);
		jest.mocked(logger.warn).mockClear();
		store = new SqliteStore(":memory:");
		repo = new WorkloadRepository(store);
		released = jest.fn(async () => true);
		synced = jest.fn(async () => undefined);
		syncSoon = jest.fn();
		checked = jest.fn(async () => undefined);
		queue = new SerialQueue();
		rounds = {
			waiting: new Set(),
			placePending: jest.fn(async () => new Map([["n3", new Set(["a"])]])),
			loadInventory: jest.fn(async () => undefined),
			announceAllocation: jest.fn()
		};
		const reserver = {
			release: released,
			refresh: jest.fn(async () => undefined),
			placementEntries: () => placements.entries(),
			index: new Map([
				["n1", { id: "n1", status: "ready", allocated: allocation }],
				["n2", { id: "n2", status: "down", allocated: allocation }]
			])
		};
		recovery = new Recovery(
			repo,
			reserver as unknown as Reserver,
			queue,
			rounds as unknown as PlacementRounds,
			{ syncNodes: synced, syncSoon, checkNodes: checked } as unknown as AgentSync,
			{ auditInterval: 60_000, auditGrace: 60_000 },
			logger
		);
		for (const w of [placedWorkload("a", ["n1", "n2"]), placedWorkload("b", ["n2", null])])
			await store.put(COLLECTIONS.workloads, w.id, w);
	});
	afterEach(async () => {
		jest.restoreAllMocks();
		await store.close();
	});

	const stored = async (id: string) => (await repo.get(id))!.value;

	it("takes placements off their nodes to be placed again, then gives their reservations back", async () => {
		const a = await stored("a");
		const nodes = await recovery.releaseReplicas(
			a,
			w => placedReplicas(w, [1]),
			"node n2 is down",
			true
		);
		expect(nodes).toEqual(new Set(["n2"]));
		expect(released.mock.calls).toEqual([["a/1@1"]]);
		const r = (await stored("a")).replicas[1];
		expect(r).toMatchObject({ node: null, state: "pending", reason: "node n2 is down" });
		expect(rounds.waiting.has("a")).toBe(true);
	});

	it("keeps the placements of a workload that keeps changing, quietly", async () => {
		const write = jest.spyOn(repo, "write").mockResolvedValue(null);
		const a = await stored("a");
		const nodes = await recovery.releaseReplicas(a, w => placedReplicas(w, [0]), "x", true);
		expect(write).toHaveBeenCalledTimes(20);
		expect(nodes).toEqual(new Set());
		expect(released).not.toHaveBeenCalled();
		expect(rounds.waiting.size).toBe(0);
	});

	it("evacuates a lost node: its replicas wait, and the nodes that changed are told", async () => {
		await recovery.evacuate("n2", "node n2 is down", true);
		expect((await stored("a")).replicas[1].state).toBe("pending");
		expect((await stored("b")).replicas[0].state).toBe("pending");
		expect(rounds.placePending).toHaveBeenCalledWith(["a", "b"]);
		// Told only if connected (AgentSync): a lost node hears it when it returns.
		expect(synced).toHaveBeenCalledWith(new Set(["n2", "n3"]));
	});

	describe("disconnect.replaceAfter", () => {
		beforeEach(async () => {
			jest.useFakeTimers({ doNotFake: ["setImmediate", "nextTick", "queueMicrotask"] });
			const a = await stored("a");
			a.disconnect = { replaceAfterMs: 10_000 };
			await store.put(COLLECTIONS.workloads, a.id, a);
		});
		afterEach(() => {
			recovery.stop();
			jest.useRealTimers();
		});

		it("leaves a lost node's replicas placed for that long, then places them again", async () => {
			await recovery.evacuate("n2", "node n2 is down", true);
			// b has no replaceAfter: it moves at once; a waits.
			expect((await stored("b")).replicas[0].state).toBe("pending");
			expect((await stored("a")).replicas[1]).toMatchObject({ node: "n2" });
			await jest.advanceTimersByTimeAsync(9_000);
			expect((await stored("a")).replicas[1]).toMatchObject({ node: "n2" });
			await jest.advanceTimersByTimeAsync(1_000);
			jest.useRealTimers();
			await new Promise(r => setTimeout(r, 50));
			expect((await stored("a")).replicas[1].state).toBe("pending");
			expect((await stored("a")).replicas[0]).toMatchObject({ node: "n1" });
		});

		it("moves nothing when the node is back within it", async () => {
			await recovery.evacuate("n2", "node n2 is down", true);
			recovery.nodeUp("n2");
			await jest.advanceTimersByTimeAsync(20_000);
			expect((await stored("a")).replicas[1]).toMatchObject({ node: "n2" });
		});
	});

	it("tells a drained node what it should run, even with nothing on it", async () => {
		await recovery.evacuate("n9", "node n9 is draining", false);
		expect(synced).toHaveBeenCalledWith(new Set(["n9", "n3"]));
		await recovery.evacuate("n9", "node n9 is down", true);
		expect(synced).toHaveBeenLastCalledWith(new Set(["n3"]));
	});

	it("reconciles: what waits is placed and its nodes told, every live node checked, allocations announced once", async () => {
		rounds.waiting.add("stale");
		await recovery.reconcile();
		expect(rounds.loadInventory).toHaveBeenCalled();
		expect(rounds.placePending).toHaveBeenCalledWith(["b"]);
		expect(released.mock.calls).toEqual([["gone/0@1"]]);
		// The workloads placed now go out as changes; no node lost a replica, so none is sent
		// its whole list, and the live one is checked by digest.
		expect(syncSoon).toHaveBeenCalledWith(new Map([["n3", new Set(["a"])]]));
		expect(synced).toHaveBeenCalledWith(new Set());
		expect(checked).toHaveBeenCalledWith(["n1"]);
		expect(rounds.announceAllocation.mock.calls).toEqual([
			["n1", allocation],
			["n2", allocation]
		]);
		await recovery.reconcile();
		expect(rounds.announceAllocation).toHaveBeenCalledTimes(2);
	});

	it("places a replica whose reservation is gone again, and its node is sent its list", async () => {
		placements.delete("a/0@1");
		try {
			await recovery.reconcile();
		} finally {
			placements.set("a/0@1", record("n1"));
		}
		expect((await stored("a")).replicas[0]).toMatchObject({ node: null, state: "pending" });
		expect(rounds.placePending).toHaveBeenCalledWith(expect.arrayContaining(["a", "b"]));
		expect(synced).toHaveBeenCalledWith(new Set(["n1"]));
		expect(logger.warn).toHaveBeenCalledWith(
			"Placing 1 replica(s) of 'a' again: their reservation is gone."
		);
	});

	it("leaves alone a replica the audit found lost that was released while it waited for the queue", async () => {
		placements.delete("a/0@1");
		let open!: () => void;
		const busy = queue.run(() => new Promise<void>(resolve => (open = resolve)));
		try {
			const reconciled = recovery.reconcile();
			// The audit runs outside the queue; meanwhile a scale-down takes replica 0 away.
			await new Promise(resolve => setTimeout(resolve, 20));
			const doc = (await repo.get("a"))!;
			doc.value.replicas[0] = { ...doc.value.replicas[0], node: null, fence: 2 };
			await store.cas(COLLECTIONS.workloads, "a", doc.value, doc.version);
			open();
			await busy;
			await reconciled;
		} finally {
			placements.set("a/0@1", record("n1"));
		}
		expect(logger.warn).not.toHaveBeenCalledWith(
			"Placing 1 replica(s) of 'a' again: their reservation is gone."
		);
		expect(synced).toHaveBeenCalledWith(new Set());
	});
});
