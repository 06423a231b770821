import { Discovery, moleculerServices } from "../../../services/registry/discovery";

/** A stand-in for Moleculer's ServiceRegistry: `getServiceList` over a list the test changes. */
function lister(
	list: Array<{ name: string; nodeID: string; actions?: object; metadata?: object }>
) {
	const calls: object[] = [];
	return {
		calls,
		list,
		getServiceList(opts: object) {
			calls.push(opts);
			return this.list;
		}
	};
}

describe("moleculerServices", () => {
	it("groups by name with sorted nodes and published actions, leaving out $ services", () => {
		const registry = lister([
			{
				name: "greeter",
				nodeID: "n2",
				actions: {
					"greeter.hi": {},
					"greeter.secret": { visibility: "protected" },
					"greeter.open": { visibility: "published" }
				}
			},
			{ name: "greeter", nodeID: "n1", actions: { "greeter.hi": {} } },
			{ name: "$node", nodeID: "n1", actions: { "$node.list": {} } },
			{ name: "bare", nodeID: "n3" }
		]);
		expect(moleculerServices(registry)).toEqual([
			{
				name: "greeter",
				nodes: ["n1", "n2"],
				actions: ["greeter.hi", "greeter.open"],
				tenants: []
			},
			{ name: "bare", nodes: ["n3"], actions: [], tenants: [] }
		]);
		expect(registry.calls).toEqual([{ onlyAvailable: true, withActions: true }]);
	});
});

describe("Discovery", () => {
	it("announces each service that came as healthy and each that went as unhealthy, once", () => {
		const registry = lister([{ name: "a", nodeID: "n1" }]);
		const discovery = new Discovery(registry, "n1");
		expect(discovery.changes()).toEqual([
			{ name: "a", type: "moleculer", owner: "cluster", health: { status: "healthy" } }
		]);
		expect(discovery.changes()).toEqual([]);
		registry.list = [{ name: "b", nodeID: "n2", metadata: { isaTenant: "acme" } }];
		expect(discovery.changes()).toEqual([
			{
				name: "b",
				type: "moleculer",
				owner: "tenant",
				tenant: "acme",
				health: { status: "healthy" }
			},
			{
				name: "a",
				type: "moleculer",
				owner: "cluster",
				health: { status: "unhealthy", error: "no node offers it" }
			}
		]);
	});

	it("says which tenants' workloads run a service, from the metadata the agent gives it", () => {
		const discovery = new Discovery(
			lister([
				{ name: "a", nodeID: "n1", metadata: { isaTenant: "beta" } },
				{ name: "a", nodeID: "n2", metadata: { isaTenant: "acme" } },
				{ name: "a", nodeID: "n3", metadata: { isaTenant: 7 } }
			]),
			"n1"
		);
		expect(discovery.find("a")?.tenants).toEqual(["acme", "beta"]);
	});

	it("finds a running service by name", () => {
		const discovery = new Discovery(lister([{ name: "a", nodeID: "n1" }]), "n1");
		expect(discovery.find("a")).toEqual({ name: "a", nodes: ["n1"], actions: [], tenants: [] });
		expect(discovery.find("b")).toBeUndefined();
	});

	it("lists the registry instances sorted, this one always among them", () => {
		const registry = lister([
			{ name: "registry", nodeID: "n3" },
			{ name: "nodes", nodeID: "n0" },
			{ name: "registry", nodeID: "n1" }
		]);
		expect(new Discovery(registry, "n1").registryInstances()).toEqual(["n1", "n3"]);
		// Before this node's own registry is announced, it still counts itself.
		expect(new Discovery(registry, "n2").registryInstances()).toEqual(["n1", "n3", "n2"]);
		expect(registry.calls).toContainEqual({ onlyAvailable: true });
	});
});
