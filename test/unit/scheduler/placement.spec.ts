import {
	describeShortfall,
	emptyAllocation,
	gpusInUse,
	PlacementNode,
	release,
	reserve
} from "../../../services/scheduler/placement";
import { referencePlace } from "../../../services/scheduler/placement/reference";
import { req } from "./placement/fixtures";

const GiB = 1024 ** 3;

function node(
	id: string,
	over: Partial<PlacementNode> = {},
	gpus = 0,
	model = "NVIDIA A100-SXM4-80GB"
): PlacementNode {
	return {
		id,
		status: "ready",
		labels: {},
		capacity: {
			cpu: 16,
			memory: 64 * GiB,
			gpus: Array.from({ length: gpus }, (_, index) => ({
				index,
				uuid: `GPU-${id}-${index}`,
				model,
				memory: 80 * GiB
			}))
		},
		allocated: emptyAllocation(),
		...over
	};
}

describe("referencePlace", () => {
	it("binpacks onto the fullest node that fits and spreads onto the emptiest", () => {
		const busy = node("busy", { allocated: { cpu: 12, memory: 8 * GiB, gpus: {} } });
		const idle = node("idle");
		expect(referencePlace([idle, busy], req())?.nodeID).toBe("busy");
		expect(referencePlace([idle, busy], req({}, { strategy: "spread" }))?.nodeID).toBe("idle");
	});

	it("keeps CPU-only work off GPU nodes when a CPU node fits", () => {
		expect(referencePlace([node("gpu", {}, 8), node("cpu")], req())?.nodeID).toBe("cpu");
	});

	it("gives whole GPUs exclusively and never shares them", () => {
		const n = node("g", {}, 2);
		const first = referencePlace([n], req({ gpu: 1 }))!;
		expect(first).toEqual({ nodeID: "g", gpus: [0] });
		n.allocated = reserve(n.allocated, "w1/0", req({ gpu: 1 }).resources, first.gpus);
		expect(referencePlace([n], req({ gpu: 1 }))?.gpus).toEqual([1]);
		// No shared use of a GPU someone has whole.
		n.allocated = reserve(n.allocated, "w2/0", req({ gpu: 1 }).resources, [1]);
		expect(referencePlace([n], req({ gpuMemory: GiB }))).toBeNull();
		expect(referencePlace([n], req({ gpu: 1 }))).toBeNull();
	});

	it("shares one GPU by memory between small models, and not beyond its memory", () => {
		const n = node("g", {}, 1);
		const small = req({ gpuMemory: 30 * GiB });
		for (const key of ["a", "b"]) {
			const p = referencePlace([n], small)!;
			expect(p.gpus).toEqual([0]);
			n.allocated = reserve(n.allocated, key, small.resources, p.gpus);
		}
		expect(n.allocated.gpus[0]).toEqual({ exclusive: null, memory: 60 * GiB });
		expect(referencePlace([n], small)).toBeNull();
		expect(referencePlace([n], req({ gpuMemory: 20 * GiB }))?.gpus).toEqual([0]);
		// A GPU with shared use is not free for a whole-GPU request.
		expect(referencePlace([n], req({ gpu: 1 }))).toBeNull();
	});

	it("binpacks shared GPU memory onto the fullest card", () => {
		const n = node("g", {}, 2);
		n.allocated = reserve(n.allocated, "a", req({ gpuMemory: 40 * GiB }).resources, [1]);
		expect(referencePlace([n], req({ gpuMemory: 10 * GiB }))?.gpus).toEqual([1]);
		expect(
			referencePlace([n], req({ gpuMemory: 10 * GiB }, { strategy: "spread" }))?.gpus
		).toEqual([0]);
	});

	it("matches node labels and GPU models", () => {
		const a = node("a", { labels: { zone: "eu" } }, 1, "NVIDIA H100 80GB HBM3");
		const b = node("b", { labels: { zone: "us" } }, 1, "NVIDIA A100-SXM4-80GB");
		expect(
			referencePlace([a, b], req({ gpu: 1 }, { nodeSelector: { zone: "us" } }))?.nodeID
		).toBe("b");
		expect(
			referencePlace([a, b], req({ gpu: 1 }, { nodeSelector: { "gpu.model": "h100" } }))
				?.nodeID
		).toBe("a");
		expect(referencePlace([a, b], req({}, { nodeSelector: { zone: "ap" } }))).toBeNull();
	});

	it("takes nothing on draining or down nodes", () => {
		expect(
			referencePlace(
				[node("d", { status: "draining" }), node("x", { status: "down" })],
				req()
			)
		).toBeNull();
	});

	it("avoids nodes of other replicas with anti-affinity", () => {
		expect(
			referencePlace([node("a"), node("b")], req({}, { avoid: new Set(["a"]) }))?.nodeID
		).toBe("b");
	});

	it("counts fractional CPU and memory exactly", () => {
		const n = node("n", { allocated: { cpu: 15.5, memory: 63 * GiB, gpus: {} } });
		expect(referencePlace([n], req({ cpu: 0.5, memory: GiB }))?.nodeID).toBe("n");
		expect(referencePlace([n], req({ cpu: 0.6, memory: GiB }))).toBeNull();
		expect(referencePlace([n], req({ cpu: 0.5, memory: GiB + 1 }))).toBeNull();
	});
});

describe("reserve and release", () => {
	it("are inverses", () => {
		const r = req({ cpu: 2, memory: 4 * GiB, gpu: 2 }).resources;
		const a = reserve(emptyAllocation(), "w/0@1", r, [0, 1]);
		expect(a).toEqual({
			cpu: 2,
			memory: 4 * GiB,
			gpus: { 0: { exclusive: "w/0@1", memory: 0 }, 1: { exclusive: "w/0@1", memory: 0 } }
		});
		expect(gpusInUse(a)).toBe(2);
		expect(release(a, "w/0@1", r, [0, 1])).toEqual(emptyAllocation());
		const s = req({ gpuMemory: GiB }).resources;
		const shared = reserve(reserve(emptyAllocation(), "a/0@1", s, [0]), "b/0@1", s, [0]);
		expect(release(shared, "a/0@1", s, [0]).gpus).toEqual({
			0: { exclusive: null, memory: GiB }
		});
	});
});

describe("describeShortfall", () => {
	it("says how many nodes fall short and why", () => {
		const text = describeShortfall(
			[
				node("a", {}, 1),
				node("b", { status: "draining" }),
				node("c", { allocated: { cpu: 16, memory: 0, gpus: {} } })
			],
			req({ gpu: 2 })
		);
		expect(text).toBe(
			"0/3 nodes fit (cpu 1, memory 1Gi, gpu 2): 1 node lacks free GPUs; 1 node is draining; 1 node lacks CPU."
		);
		expect(describeShortfall([], req())).toMatch(/No node/);
	});

	it("says it of several nodes in the plural", () => {
		const zoneA = { labels: { zone: "a" } };
		const full = { ...zoneA, allocated: { cpu: 16, memory: 0, gpus: {} } };
		const text = describeShortfall(
			[
				node("a", { ...zoneA, status: "draining" }),
				node("b", { ...zoneA, status: "draining" }),
				node("c", { labels: { zone: "b" } }),
				node("d", { labels: { zone: "b" } }),
				node("e", zoneA, 2),
				node("f", zoneA, 2),
				node("g", full, 2, "NVIDIA H100"),
				node("h", full, 2, "NVIDIA H100"),
				node("i", zoneA, 1, "NVIDIA H100"),
				node("j", zoneA, 1, "NVIDIA H100"),
				node("k", zoneA, 2, "NVIDIA H100"),
				node("l", zoneA, 2, "NVIDIA H100")
			],
			req(
				{ gpu: 2 },
				{ nodeSelector: { zone: "a", "gpu.model": "H100" }, avoid: new Set(["k", "l"]) }
			)
		);
		expect(text).toBe(
			"0/12 nodes fit (cpu 1, memory 1Gi, gpu 2): 2 nodes are draining; 2 nodes do not match zone=a; " +
				"2 nodes have no H100 GPU; 2 nodes lack CPU; 2 nodes lack free GPUs; " +
				"2 nodes run another replica (anti-affinity)."
		);
	});
});
