import {
	emptyAllocation,
	PlacementNode,
	PlacementRequest,
	release,
	reserve
} from "../../../services/scheduler/placement";
import { pickGpus } from "../../../services/scheduler/placement/gpus";
import * as filters from "../../../services/scheduler/placement/index";
import { unfit } from "../../../services/scheduler/placement/index";
import { referencePlace } from "../../../services/scheduler/placement/reference";
import { PlacementIndex } from "../../../services/scheduler/placement-index";
import type { GpuCapacity, NodeStatus, ResourceRequest } from "../../../services/shared/types";
import { req } from "./placement/fixtures";

const GiB = 1024 ** 3;
const NO_AVOID: ReadonlySet<string> = new Set();

/** A small seeded generator (mulberry32), so that a failing case can be replayed. */
function rng(seed: number) {
	let a = seed >>> 0;
	const next = () => {
		a = (a + 0x6d2b79f5) >>> 0;
		let t = a;
		t = Math.imul(t ^ (t >>> 15), t | 1);
		t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
		return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
	};
	return {
		next,
		int: (n: number) => Math.floor(next() * n),
		pick: <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)],
		chance: (p: number) => next() < p
	};
}
type Rng = ReturnType<typeof rng>;

function gpus(id: string, models: string[], memory = 80 * GiB): GpuCapacity[] {
	return models.map((model, index) => ({ index, uuid: `GPU-${id}-${index}`, model, memory }));
}

function node(
	id: string,
	over: Partial<PlacementNode> = {},
	cards: string[] = [],
	cpu = 16,
	memory = 64 * GiB
): PlacementNode {
	return {
		id,
		status: "ready",
		labels: {},
		capacity: { cpu, memory, gpus: gpus(id, cards) },
		allocated: emptyAllocation(),
		...over
	};
}

function indexOf(nodes: PlacementNode[]): PlacementIndex {
	const index = new PlacementIndex();
	for (const n of nodes) index.update(n);
	return index;
}

/** The scorers' fullnessAfter (placement/scorer.ts), written out again: the reference the index's answers are held to. */
function score(n: PlacementNode, r: ResourceRequest): number {
	const shares = [
		(n.allocated.cpu + r.cpu) / Math.max(n.capacity.cpu, 1e-9),
		(n.allocated.memory + r.memory) / Math.max(n.capacity.memory, 1)
	];
	const count = n.capacity.gpus.length;
	if (count > 0) {
		const taken = Object.values(n.allocated.gpus).filter(g => g.exclusive || g.memory > 0);
		shares.push((taken.length + r.gpu) / count);
	} else if (r.gpu === 0 && r.gpuMemory === 0) shares.push(1);
	return shares.reduce((a, b) => a + b, 0) / shares.length;
}

const A100 = "NVIDIA A100-SXM4-80GB";
const H100 = "NVIDIA H100 80GB HBM3";
const V100 = "Tesla V100-SXM2-16GB";

const SHAPES: { cpu: number; memory: number; cards: string[] }[] = [
	{ cpu: 16, memory: 64 * GiB, cards: [] },
	{ cpu: 32, memory: 128 * GiB, cards: [] },
	{ cpu: 16, memory: 64 * GiB, cards: [A100] },
	{ cpu: 32, memory: 256 * GiB, cards: [H100, H100] },
	{ cpu: 96, memory: 1024 * GiB, cards: Array(8).fill(A100) },
	{ cpu: 8, memory: 32 * GiB, cards: [V100] },
	// One machine with two models: a gpu.model selector may use only some of its cards.
	{ cpu: 32, memory: 128 * GiB, cards: [A100, H100] }
];

function randomResources(r: Rng): ResourceRequest {
	const gpu = r.chance(0.6) ? 0 : r.pick([1, 1, 2, 3, 8]);
	return {
		cpu: r.pick([0, 0.5, 1, 2, 4, 8, 15.5, 16, 33]),
		memory: r.pick([0, GiB, 4 * GiB, 16 * GiB, 70 * GiB]),
		gpu,
		// Both at once is allowed: whole GPUs then decide, as in pickGpus.
		gpuMemory: r.chance(gpu === 0 ? 0.4 : 0.1) ? r.pick([10, 16, 40, 79, 81]) * GiB : 0
	};
}

function randomRequest(r: Rng, ids: string[]): PlacementRequest {
	const selectors: Record<string, string>[] = [
		{},
		{},
		{},
		{ zone: "a" },
		{ zone: "b", tier: "x" },
		{ "gpu.model": "h100" },
		{ "gpu.model": "A100" },
		{ "gpu.model": "nvidia" },
		{ "gpu.model": "v100", zone: "a" },
		{ "gpu.model": "tpu" }
	];
	const avoid = r.chance(0.2)
		? new Set(ids.filter(() => r.chance(0.3)))
		: (NO_AVOID as Set<string>);
	return {
		resources: randomResources(r),
		strategy: r.chance(0.5) ? "binpack" : "spread",
		nodeSelector: r.pick(selectors),
		avoid
	};
}

function randomLabels(r: Rng): Record<string, string> {
	const labels: Record<string, string> = {};
	if (r.chance(0.7)) labels.zone = r.pick(["a", "b"]);
	if (r.chance(0.3)) labels.tier = "x";
	return labels;
}

function randomNode(r: Rng, id: string): PlacementNode {
	// Mostly common machine types (groups of several nodes), sometimes a one-off capacity.
	const shape = r.chance(0.85)
		? r.pick(SHAPES)
		: { cpu: 1 + r.int(64), memory: (1 + r.int(200)) * GiB, cards: r.pick(SHAPES).cards };
	let n = node(
		id,
		{
			labels: randomLabels(r),
			status: r.pick<NodeStatus>(["ready", "ready", "ready", "ready", "draining", "down"])
		},
		shape.cards,
		shape.cpu,
		shape.memory
	);
	for (let i = r.int(8); i > 0; i--) {
		const one = {
			...req(),
			resources: randomResources(r),
			strategy: r.pick(["binpack", "spread"] as const)
		};
		const ready = { ...n, status: "ready" as const };
		if (unfit(ready, one)) continue;
		n = {
			...n,
			allocated: reserve(n.allocated, `${id}/${i}`, one.resources, pickGpus(ready, one)!)
		};
	}
	return n;
}

/** Throws with the case when the index's answer is not one `referencePlace` could have given. */
function agree(nodes: PlacementNode[], index: PlacementIndex, q: PlacementRequest, tag: string) {
	const want = referencePlace(nodes, q);
	const got = index.place(q);
	const describe = () =>
		`${tag}: request ${JSON.stringify({ ...q, avoid: [...q.avoid] })} → place ${JSON.stringify(want)}, index ${JSON.stringify(got)}`;
	if (!want || !got) {
		if (want !== got) throw new Error(describe());
		return;
	}
	const chosen = nodes.find(n => n.id === got.nodeID);
	if (!chosen || unfit(chosen, q) !== null) throw new Error(`${describe()}: does not fit`);
	const best = nodes.find(n => n.id === want.nodeID)!;
	if (Math.abs(score(chosen, q.resources) - score(best, q.resources)) > 1e-9)
		throw new Error(`${describe()}: not the best score`);
	if (JSON.stringify(got.gpus) !== JSON.stringify(pickGpus(chosen, q)))
		throw new Error(`${describe()}: other GPUs than pickGpus`);
}

describe("PlacementIndex", () => {
	it("answers as referencePlace() on random clusters and requests, while nodes change", () => {
		for (let seed = 1; seed <= 150; seed++) {
			const r = rng(seed);
			const ids = Array.from({ length: 1 + r.int(60) }, (_, i) => `n${i}`);
			const nodes = new Map(ids.map(id => [id, randomNode(r, id)]));
			const index = indexOf([...nodes.values()]);
			const live: { key: string; nodeID: string; res: ResourceRequest; gpus: number[] }[] =
				[];
			for (let step = 0; step < 120; step++) {
				const tag = `seed ${seed} step ${step}`;
				const q = randomRequest(r, ids);
				agree([...nodes.values()], index, q, tag);
				const roll = r.next();
				const id = r.pick(ids);
				const n = nodes.get(id);
				let next: PlacementNode | null | undefined;
				if (roll < 0.5) {
					// Reserve where referencePlace() put it, as the scheduler would.
					const spot = referencePlace(nodes.values(), q);
					if (!spot) continue;
					const on = nodes.get(spot.nodeID)!;
					const key = `${tag}`;
					live.push({ key, nodeID: on.id, res: q.resources, gpus: spot.gpus });
					next = { ...on, allocated: reserve(on.allocated, key, q.resources, spot.gpus) };
				} else if (roll < 0.75 && live.length) {
					const [p] = live.splice(r.int(live.length), 1);
					const on = nodes.get(p.nodeID);
					if (!on) continue;
					next = { ...on, allocated: release(on.allocated, p.key, p.res, p.gpus) };
				} else if (roll < 0.85 && n) {
					next = { ...n, status: r.pick<NodeStatus>(["ready", "draining", "down"]) };
				} else if (roll < 0.92 && n) {
					next = { ...n, labels: randomLabels(r) };
				} else if (roll < 0.96) {
					next = n ? null : randomNode(r, id);
				} else if (n) {
					// The same contents in new objects: the index must not rely on identity.
					next = JSON.parse(JSON.stringify(n)) as PlacementNode;
				}
				if (next === null) {
					nodes.delete(id);
					expect(index.remove(id)).toBe(true);
				} else if (next) {
					nodes.set(next.id, next);
					index.update(next);
				}
			}
			expect(index.size).toBe(nodes.size);
			expect(new Set([...index.values()])).toEqual(new Set(nodes.values()));
		}
	});

	it("binpacks onto the fullest node that fits and spreads onto the emptiest", () => {
		const busy = node("busy", { allocated: { cpu: 12, memory: 8 * GiB, gpus: {} } });
		const full = node("full", { allocated: { cpu: 16, memory: 8 * GiB, gpus: {} } });
		const index = indexOf([node("idle"), busy, full]);
		expect(index.place(req())?.nodeID).toBe("busy");
		expect(index.place(req({}, { strategy: "spread" }))?.nodeID).toBe("idle");
	});

	it("breaks ties by the lowest node id, as referencePlace() does", () => {
		const nodes = ["n3", "n1", "n2", "n0"].map(id => node(id));
		const index = indexOf(nodes);
		expect(index.place(req())?.nodeID).toBe("n0");
		expect(index.place(req({}, { strategy: "spread" }))?.nodeID).toBe("n0");
		index.update({ ...nodes[3], status: "draining" });
		expect(index.place(req())?.nodeID).toBe("n1");
		expect(index.place(req({}, { strategy: "spread" }))?.nodeID).toBe("n1");
	});

	it("keeps CPU-only work off GPU nodes when a CPU node fits", () => {
		const index = indexOf([node("gpu", {}, Array(8).fill(A100)), node("cpu")]);
		expect(index.place(req())?.nodeID).toBe("cpu");
		expect(index.place(req({ gpu: 1 }))).toEqual({ nodeID: "gpu", gpus: [0] });
	});

	it("follows reservations and releases given through update()", () => {
		let g = node("g", {}, [A100, A100]);
		const index = indexOf([g]);
		const one = req({ gpu: 1 });
		for (const key of ["a", "b"]) {
			const spot = index.place(one)!;
			g = { ...g, allocated: reserve(g.allocated, key, one.resources, spot.gpus) };
			index.update(g);
		}
		expect(index.place(one)).toBeNull();
		expect(index.place(req({ gpuMemory: GiB }))).toBeNull();
		g = { ...g, allocated: release(g.allocated, "a", one.resources, [0]) };
		index.update(g);
		expect(index.place(one)).toEqual({ nodeID: "g", gpus: [0] });
	});

	it("shares GPU memory on the fullest card with binpack and the emptiest with spread", () => {
		const share = req({ gpuMemory: 10 * GiB });
		const n = node("g", {}, [A100, A100]);
		n.allocated = reserve(n.allocated, "a", req({ gpuMemory: 40 * GiB }).resources, [1]);
		const index = indexOf([n]);
		expect(index.place(share)?.gpus).toEqual([1]);
		expect(index.place({ ...share, strategy: "spread" })?.gpus).toEqual([0]);
		expect(index.place(req({ gpuMemory: 81 * GiB }))).toBeNull();
	});

	it("matches labels and GPU models, also after a node's labels change", () => {
		const a = node("a", { labels: { zone: "eu" } }, [H100]);
		const b = node("b", { labels: { zone: "us" } }, [A100]);
		const mixed = node("m", {}, [A100, H100]);
		const index = indexOf([a, b, mixed]);
		expect(index.place(req({ gpu: 1 }, { nodeSelector: { zone: "us" } }))?.nodeID).toBe("b");
		expect(index.place(req({}, { nodeSelector: { zone: "ap" } }))).toBeNull();
		// Only the matching card of a machine with two models counts.
		expect(index.place(req({ gpu: 2 }, { nodeSelector: { "gpu.model": "h100" } }))).toBeNull();
		expect(index.place(req({ gpu: 2 }, { nodeSelector: { "gpu.model": "nvidia" } }))).toEqual({
			nodeID: "m",
			gpus: [0, 1]
		});
		index.update({ ...b, labels: { zone: "ap" } });
		expect(index.place(req({}, { nodeSelector: { zone: "ap" } }))?.nodeID).toBe("b");
		expect(index.place(req({}, { nodeSelector: { zone: "us" } }))).toBeNull();
	});

	it("takes nothing on draining or down nodes, and again once they are ready", () => {
		const d = node("d", { status: "draining" });
		const index = indexOf([d, node("x", { status: "down" })]);
		expect(index.place(req())).toBeNull();
		index.update({ ...d, status: "ready" });
		expect(index.place(req())?.nodeID).toBe("d");
	});

	it("avoids nodes of other replicas with anti-affinity", () => {
		const index = indexOf([node("a"), node("b")]);
		expect(index.place(req({}, { avoid: new Set(["a"]) }))?.nodeID).toBe("b");
		expect(index.place(req({}, { avoid: new Set(["a", "b"]) }))).toBeNull();
	});

	it("forgets removed nodes and their machine types", () => {
		const index = indexOf([node("a"), node("b", {}, [A100])]);
		expect(index.groupCount).toBe(2);
		expect(index.remove("b")).toBe(true);
		expect(index.remove("b")).toBe(false);
		expect(index.groupCount).toBe(1);
		expect(index.place(req({ gpu: 1 }))).toBeNull();
		expect(index.size).toBe(1);
	});

	it("looks at a few nodes per placement, not at all of them", () => {
		const r = rng(7);
		const nodes = Array.from({ length: 5000 }, (_, i) => {
			const shape = SHAPES[i % 5];
			return node(
				`n${i}`,
				{ labels: { zone: ["a", "b"][i % 2] } },
				shape.cards,
				shape.cpu,
				shape.memory
			);
		});
		const byId = new Map(nodes.map(n => [n.id, n]));
		const index = indexOf(nodes);
		const spy = jest.spyOn(filters, "unfit");
		let placed = 0;
		for (let i = 0; i < 2000; i++) {
			const q = req(
				r.chance(0.5)
					? { cpu: r.pick([0.5, 1, 2]), memory: r.pick([1, 2, 4]) * GiB }
					: { gpu: r.pick([1, 2]), cpu: 4, memory: 16 * GiB },
				// Anti-affinity makes every candidate go through unfit(): count those calls.
				{ strategy: r.chance(0.8) ? "binpack" : "spread", avoid: new Set(["elsewhere"]) }
			);
			const spot = index.place(q);
			if (!spot) continue;
			const n = byId.get(spot.nodeID)!;
			const next = { ...n, allocated: reserve(n.allocated, `k${i}`, q.resources, spot.gpus) };
			byId.set(n.id, next);
			index.update(next);
			placed++;
		}
		expect(placed).toBe(2000);
		// 10 groups; a linear scan would call unfit 5,000 times per placement.
		expect(spy.mock.calls.length / placed).toBeLessThan(40);
		spy.mockRestore();
	});
});
