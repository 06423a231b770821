import { Breakers } from "../../../services/registry/breaker";
import {
	dependencyTree,
	effectiveStatus,
	findCycle,
	Status
} from "../../../services/registry/dependencies";
import {
	normalizeHealthCheck,
	normalizeResource,
	normalizeService
} from "../../../services/registry/model";
import { ownerOf } from "../../../services/registry/sharding";

describe("findCycle", () => {
	const graph = new Map([
		["a", ["b"]],
		["b", ["c"]],
		["c", []]
	]);
	it("finds the cycle a new edge would close, as a path", () => {
		expect(findCycle(graph, "c", ["a"])).toEqual(["c", "a", "b", "c"]);
		expect(findCycle(graph, "d", ["a", "c"])).toBeNull();
		expect(findCycle(graph, "c", ["c"])).toEqual(["c", "c"]);
	});
});

describe("effectiveStatus and dependencyTree", () => {
	it("degrades a healthy service whose dependency is not healthy", () => {
		expect(effectiveStatus("healthy", ["healthy"])).toBe("healthy");
		expect(effectiveStatus("healthy", ["healthy", "unhealthy"])).toBe("degraded");
		expect(effectiveStatus("healthy", ["unknown"])).toBe("degraded");
		expect(effectiveStatus("unhealthy", ["healthy"])).toBe("unhealthy");
	});

	it("builds the tree with statuses through the levels", () => {
		const info: Record<string, { own: Status; dependencies: string[] }> = {
			agent: { own: "healthy", dependencies: ["model", "pg"] },
			model: { own: "healthy", dependencies: ["minio"] },
			pg: { own: "healthy", dependencies: [] },
			minio: { own: "unhealthy", dependencies: [] }
		};
		const tree = dependencyTree("agent", name => ({
			kind: name === "agent" || name === "model" ? "service" : "resource",
			...info[name]
		}));
		expect(tree.status).toBe("degraded");
		expect(tree.dependencies.map(d => [d.name, d.status])).toEqual([
			["model", "degraded"],
			["pg", "healthy"]
		]);
		expect(tree.dependencies[0].dependencies[0]).toMatchObject({
			name: "minio",
			status: "unhealthy",
			kind: "resource"
		});
	});
});

describe("Breakers", () => {
	it("opens after the threshold, lets one trial through after the cooldown, closes on success", () => {
		let now = 0;
		const b = new Breakers({ threshold: 2, cooldownMs: 1000, now: () => now });
		b.failure("e");
		expect(b.allow("e")).toBe(true);
		b.failure("e");
		expect(b.allow("e")).toBe(false);
		now = 1000;
		expect(b.allow("e")).toBe(true);
		expect(b.allow("e")).toBe(false); // one trial at a time
		b.failure("e");
		expect(b.allow("e")).toBe(false);
		now = 2000;
		expect(b.allow("e")).toBe(true);
		b.success("e");
		expect(b.isOpen("e")).toBe(false);
		expect(b.allow("e")).toBe(true);
	});
});

describe("ownerOf", () => {
	it("gives each target one owner and moves only the lost instance's targets", () => {
		const targets = Array.from({ length: 300 }, (_, i) => `t${i}`);
		const three = ["r1", "r2", "r3"];
		const before = new Map(targets.map(t => [t, ownerOf(t, three)]));
		const counts = three.map(r => [...before.values()].filter(o => o === r).length);
		for (const c of counts) expect(c).toBeGreaterThan(60);
		const after = new Map(targets.map(t => [t, ownerOf(t, ["r1", "r3"])]));
		for (const t of targets)
			if (before.get(t) !== "r2") expect(after.get(t)).toBe(before.get(t));
		expect(ownerOf("t", [])).toBeNull();
	});
});

describe("model", () => {
	it("fills health check defaults and refuses a timeout longer than the interval", () => {
		expect(normalizeHealthCheck()).toEqual({
			interval: 10_000,
			timeout: 2_000,
			healthyThreshold: 1,
			unhealthyThreshold: 2
		});
		expect(() => normalizeHealthCheck({ interval: "1s", timeout: "2s" })).toThrow(/timeout/);
		expect(() => normalizeHealthCheck({ interval: "100ms" })).toThrow(/at least 500ms/);
	});

	it("checks endpoints by type", () => {
		expect(() =>
			normalizeResource({ name: "pg", type: "postgres", endpoint: "http://x" }, "id", 0)
		).toThrow(/postgres/);
		expect(() =>
			normalizeResource({ name: "t", type: "tcp", endpoint: "nohost" }, "id", 0)
		).toThrow(/host:port/);
		expect(
			normalizeResource({ name: "t", type: "tcp", endpoint: "127.0.0.1:22" }, "id", 0)
				.endpoint
		).toBe("127.0.0.1:22");
	});

	it("normalizes a service with sizes, a default health path, and no self-dependency", () => {
		const s = normalizeService(
			{
				name: "isa_model",
				type: "http",
				endpoints: ["http://127.0.0.1:8081"],
				resources: { gpu: 2, memory: "16Gi", storage: "100Gi" }
			},
			5
		);
		expect(s).toMatchObject({
			healthCheck: { path: "/health" },
			resources: { gpu: 2, memory: 16 * 1024 ** 3, storage: 100 * 1024 ** 3 }
		});
		expect(() =>
			normalizeService({ name: "a", type: "http", endpoints: ["ftp://x"] }, 0)
		).toThrow(/http/);
		expect(() =>
			normalizeService({ name: "a", type: "http", endpoints: [], dependencies: ["a"] }, 0)
		).toThrow(/itself/);
	});
});
