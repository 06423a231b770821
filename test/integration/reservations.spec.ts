/**
 * Reserver against both store backends: group commit, releases, idempotent keys, recovery from
 * the store, and two Reservers on two connections of one store racing for the same nodes.
 * Whatever the race, the store's allocations must equal the sum of its placement records and
 * never exceed a node's capacity.
 */
import { COLLECTIONS } from "../../services/shared/collections";
import { ConflictError, StoreUnavailableError } from "../../services/shared/errors";
import type { Store } from "../../services/shared/store/store";
import {
	Allocation,
	emptyAllocation,
	PlacementRequest,
	reserve
} from "../../services/scheduler/placement";
import {
	InventoryNode,
	PLACEMENTS,
	PlacementRecord,
	Reserver
} from "../../services/scheduler/reservations";
import { redisBackend, sqliteBackend } from "../helpers/store-backends";

const GiB = 1024 ** 3;
const NO_AVOID: ReadonlySet<string> = new Set();

const backends = [sqliteBackend(), redisBackend()];

function gpuNode(id: string, gpus: number, cpu = 16): InventoryNode {
	return {
		id,
		status: "ready",
		labels: {},
		capacity: {
			cpu,
			memory: 64 * GiB,
			gpus: Array.from({ length: gpus }, (_, index) => ({
				index,
				uuid: `GPU-${id}-${index}`,
				model: "NVIDIA H100 80GB HBM3",
				memory: 80 * GiB
			}))
		}
	};
}

function req(
	over: Partial<PlacementRequest["resources"]> = {},
	strategy: PlacementRequest["strategy"] = "binpack"
): PlacementRequest {
	return {
		resources: { cpu: 1, memory: GiB, gpu: 0, gpuMemory: 0, ...over },
		strategy,
		nodeSelector: {},
		avoid: NO_AVOID
	};
}

/**
 * The store after any race: each allocation is the sum of the placement records on its node
 * (nothing lost, nothing counted twice) and within the node's capacity.
 */
async function audit(store: Store, nodes: InventoryNode[]): Promise<number> {
	const [allocations, placements] = await Promise.all([
		store.list<Allocation>(COLLECTIONS.allocations),
		store.list<PlacementRecord>(PLACEMENTS)
	]);
	const expected = new Map<string, Allocation>();
	for (const p of placements) {
		const { nodeID, resources, gpus } = p.value;
		expected.set(
			nodeID,
			reserve(expected.get(nodeID) ?? emptyAllocation(), p.id, resources, gpus)
		);
	}
	for (const node of nodes) {
		const stored = allocations.find(a => a.id === node.id)?.value ?? emptyAllocation();
		const sum = expected.get(node.id) ?? emptyAllocation();
		expect({ node: node.id, ...stored }).toEqual({ node: node.id, ...sum });
		expect(stored.cpu).toBeLessThanOrEqual(node.capacity.cpu + 1e-9);
		expect(stored.memory).toBeLessThanOrEqual(node.capacity.memory);
		for (const [index, g] of Object.entries(stored.gpus)) {
			const card = node.capacity.gpus[Number(index)];
			expect(card).toBeDefined();
			if (g.exclusive) expect(g.memory).toBe(0);
			expect(g.memory).toBeLessThanOrEqual(card.memory);
		}
	}
	return placements.length;
}

describe.each(backends)("Reserver on $name", backend => {
	const open: Store[] = [];
	let connect: () => Store;

	beforeAll(() => backend.start());
	afterAll(() => backend.stop());
	beforeEach(() => {
		const fresh = backend.fresh();
		connect = () => {
			const store = fresh();
			open.push(store);
			return store;
		};
	});
	afterEach(async () => {
		await Promise.all(open.splice(0).map(s => s.close()));
	});

	async function reserver(nodes: InventoryNode[], store = connect()): Promise<Reserver> {
		const r = new Reserver(store);
		await r.load(nodes);
		return r;
	}

	it("commits requests queued together in one transaction", async () => {
		const nodes = [gpuNode("a", 2), gpuNode("b", 2)];
		const store = connect();
		const r = await reserver(nodes, store);
		const before = r.stats.transactions;
		const results = await Promise.all(
			Array.from({ length: 20 }, (_, i) => r.reserve(`w/${i}`, req({ cpu: 0.5 })))
		);
		expect(results.every(p => p !== null)).toBe(true);
		expect(r.stats.transactions - before).toBe(1);
		// binpack: all on one node, the lowest id of two equal ones.
		expect(new Set(results.map(p => p!.nodeID))).toEqual(new Set(["a"]));
		expect(await audit(store, nodes)).toBe(20);
		expect((await store.get<Allocation>(COLLECTIONS.allocations, "a"))?.value.cpu).toBe(10);
	});

	it("gives whole GPUs once, shares GPU memory, and answers null when nothing fits", async () => {
		const nodes = [gpuNode("a", 2), gpuNode("b", 1)];
		const store = connect();
		const r = await reserver(nodes, store);
		const whole = await Promise.all(
			Array.from({ length: 5 }, (_, i) => r.reserve(`g/${i}`, req({ gpu: 1 })))
		);
		expect(whole.filter(p => p !== null)).toHaveLength(3);
		expect(
			whole
				.filter(p => p)
				.map(p => `${p!.nodeID}:${p!.gpus}`)
				.sort()
		).toEqual(["a:0", "a:1", "b:0"]);
		expect(await r.reserve("s/0", req({ gpuMemory: GiB }))).toBeNull();
		expect(await r.release("g/0")).toBe(true);
		const shared = await Promise.all([
			r.reserve("s/1", req({ gpuMemory: 30 * GiB })),
			r.reserve("s/2", req({ gpuMemory: 30 * GiB })),
			r.reserve("s/3", req({ gpuMemory: 30 * GiB }))
		]);
		expect(shared.map(p => p && `${p.nodeID}:${p.gpus}`)).toEqual([
			whole[0] && `${whole[0].nodeID}:${whole[0].gpus}`,
			whole[0] && `${whole[0].nodeID}:${whole[0].gpus}`,
			null
		]);
		expect(await audit(store, nodes)).toBe(4);
	});

	it("takes a key once, and gives it back once", async () => {
		const nodes = [gpuNode("a", 1)];
		const store = connect();
		const r = await reserver(nodes, store);
		const [p1, p2] = await Promise.all([
			r.reserve("w/0", req({ gpu: 1 })),
			r.reserve("w/0", req({ gpu: 1 }))
		]);
		expect(p1).toEqual({ nodeID: "a", gpus: [0] });
		expect(p2).toEqual(p1);
		expect(await r.reserve("w/0", req({ gpu: 1 }))).toEqual(p1);
		expect(await Promise.all([r.release("w/0"), r.release("w/0")])).toEqual([true, false]);
		expect(await r.release("nope")).toBe(false);
		expect(await audit(store, nodes)).toBe(0);
		expect((await store.get<Allocation>(COLLECTIONS.allocations, "a"))?.value).toEqual(
			emptyAllocation()
		);
	});

	it("checks its cached answers against the store: another Reserver's release and placement", async () => {
		const nodes = [gpuNode("a", 1), gpuNode("b", 1)];
		const store = connect();
		const a = await reserver(nodes, store);
		const b = await reserver(nodes);
		expect(await a.reserve("w/0@1", req({ gpu: 1 }))).toEqual({ nodeID: "a", gpus: [0] });
		// b never saw w/0@1 placed: its release must not answer "not placed" from its cache.
		expect(await b.release("w/0@1")).toBe(true);
		// a still holds w/0@1 in its cache: placing it again must not answer the released spot
		// without the store agreeing. It is placed anew.
		expect(await a.reserve("w/0@1", req({ gpu: 1 }))).toEqual({ nodeID: "a", gpus: [0] });
		expect(await b.reserve("w/1@2", req({ gpu: 1 }))).toEqual({ nodeID: "b", gpus: [0] });
		expect(await audit(store, nodes)).toBe(2);
		expect(a.stats.conflicts).toBeGreaterThan(0);
		expect(b.stats.conflicts).toBeGreaterThan(0);
	});

	it("reads its placements back after a restart", async () => {
		const nodes = [gpuNode("a", 2)];
		const first = await reserver(nodes);
		await first.reserve("w/0", req({ gpu: 1 }));
		await first.reserve("w/1", req({ cpu: 4 }));
		const store = connect();
		const second = await reserver(nodes, store);
		expect(second.placementOf("w/0")).toEqual({
			nodeID: "a",
			gpus: [0],
			resources: req({ gpu: 1 }).resources,
			at: expect.any(Number)
		});
		expect(second.index.get("a")?.allocated.cpu).toBe(5);
		expect(await second.reserve("w/2", req({ gpu: 1 }))).toEqual({ nodeID: "a", gpus: [1] });
		expect(await second.release("w/0")).toBe(true);
		expect(await audit(store, nodes)).toBe(2);
	});

	it("two Reservers on two connections never over-commit a node", async () => {
		const nodes = [gpuNode("a", 2), gpuNode("b", 2), gpuNode("c", 2), gpuNode("d", 2, 8)];
		const store = connect();
		const [one, two] = await Promise.all([reserver(nodes, store), reserver(nodes)]);
		// 400 requests for the 8 GPUs, half through each, all at once.
		const gpus = await Promise.all(
			Array.from({ length: 400 }, (_, i) =>
				(i % 2 ? one : two).reserve(
					`gpu/${i}`,
					req({ gpu: 1 }, i % 3 ? "binpack" : "spread")
				)
			)
		);
		expect(gpus.filter(p => p !== null)).toHaveLength(8);
		// CPU: 48 cores left (8 taken by the GPU replicas); 2 × 60 single-core requests.
		const cpus = await Promise.all(
			Array.from({ length: 120 }, (_, i) =>
				(i % 2 ? one : two).reserve(`cpu/${i}`, req({ memory: 0 }))
			)
		);
		expect(cpus.filter(p => p !== null)).toHaveLength(48);
		expect(one.stats.conflicts + two.stats.conflicts).toBeGreaterThan(0);
		expect(await audit(store, nodes)).toBe(56);
	});

	it("stays exact while two Reservers reserve and release at once", async () => {
		const nodes = Array.from({ length: 6 }, (_, i) => gpuNode(`n${i}`, i % 3, 8));
		const store = connect();
		const reservers = await Promise.all([reserver(nodes, store), reserver(nodes)]);
		const held: string[][] = [[], []];
		let seq = 0;
		const shapes = [req({ cpu: 1 }), req({ cpu: 0.5, gpu: 1 }), req({ gpuMemory: 30 * GiB })];
		await Promise.all(
			[0, 1].flatMap(side =>
				Array.from({ length: 8 }, async () => {
					const r = reservers[side];
					for (let i = 0; i < 40; i++) {
						if (held[side].length > 10 && seq % 3 === 0) {
							const key = held[side].splice(seq % held[side].length, 1)[0];
							expect(await r.release(key)).toBe(true);
						}
						const key = `k/${seq++}`;
						if (await r.reserve(key, shapes[seq % shapes.length])) held[side].push(key);
						else await r.refresh();
					}
				})
			)
		);
		expect(await audit(store, nodes)).toBe(held[0].length + held[1].length);
	});

	it("both Reservers asking for one key place it once", async () => {
		const nodes = [gpuNode("a", 1), gpuNode("b", 1)];
		const store = connect();
		const [one, two] = await Promise.all([reserver(nodes, store), reserver(nodes)]);
		const [p1, p2] = await Promise.all([
			one.reserve("w/0", req({ gpu: 1 })),
			two.reserve("w/0", req({ gpu: 1 }, "spread"))
		]);
		expect(p1).not.toBeNull();
		expect(p2).toEqual(p1);
		expect(await audit(store, nodes)).toBe(1);
	});

	it("gives up with ConflictError when every try loses a race, and tells each commit", async () => {
		const nodes = [gpuNode("a", 1)];
		const store = connect();
		const told: [string, number][] = [];
		const r = new Reserver(store, {
			maxConflicts: 3,
			onAllocation: (nodeID, a) => told.push([nodeID, a.cpu])
		});
		await r.load(nodes);
		await r.reserve("w/0", req({ cpu: 2 }));
		expect(told).toEqual([["a", 2]]);
		// Someone else writes the node before every transaction of ours.
		const transact = store.transact.bind(store);
		let tries = 0;
		store.transact = async (checks, writes) => {
			tries++;
			await store.put(COLLECTIONS.allocations, "a", { cpu: 3, memory: 0, gpus: {} });
			return transact(checks, writes);
		};
		const err = await r.reserve("w/1", req()).catch(e => e);
		expect(err).toBeInstanceOf(ConflictError);
		expect(err).toMatchObject({ code: 409, type: "CONFLICT", data: { key: "w/1" } });
		expect(tries).toBe(3);
		expect(r.placementOf("w/1")).toBeUndefined();
		// What it read last is what the index shows: someone else's 3 cores.
		expect(r.index.get("a")?.allocated.cpu).toBe(3);
		expect(told).toHaveLength(1);
	});

	it("rejects with StoreUnavailableError when the store is gone, and keeps its view", async () => {
		const nodes = [gpuNode("a", 1)];
		const store = connect();
		const r = await reserver(nodes, store);
		await store.close();
		open.splice(open.indexOf(store), 1);
		await expect(r.reserve("w/0", req({ gpu: 1 }))).rejects.toBeInstanceOf(
			StoreUnavailableError
		);
		expect(r.index.get("a")?.allocated).toEqual(emptyAllocation());
		expect(r.placementOf("w/0")).toBeUndefined();
	});
});
