import {
	dependencyTree,
	effectiveStatus,
	findCycle,
	Status
} from "../../../services/registry/dependencies";

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
