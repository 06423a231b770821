import { Inventory, MISSED_REPORTS, persistedNode } from "../../../services/nodes/inventory";
import type { NodeReport } from "../../../services/shared/types";

function report(nodeID: string, over: Partial<NodeReport> = {}): NodeReport {
	return {
		nodeID,
		hostname: `${nodeID}.local`,
		labels: { zone: "a" },
		capacity: { cpu: 8, memory: 32 * 1024 ** 3, gpus: [] },
		usage: { cpu: 1, cpuPercent: 12.5, memory: 1024 ** 3, gpus: [], loadAvg: [0.5, 0.4, 0.3] },
		interval: 1000,
		sentAt: 0,
		...over
	};
}

describe("Inventory", () => {
	it("brings a new node up as ready", () => {
		const inv = new Inventory();
		const change = inv.applyReport(report("n1"), 1000);
		expect(change?.transition).toBe("up");
		expect(change?.node).toMatchObject({ id: "n1", status: "ready", lastSeen: 1000 });
		expect(change?.node.allocated).toEqual({ cpu: 0, memory: 0, gpus: 0 });
	});

	it("announces nothing when only usage moved", () => {
		const inv = new Inventory();
		inv.applyReport(report("n1"), 1000);
		const usage = { cpu: 4, cpuPercent: 50, memory: 2, gpus: [], loadAvg: [1, 1, 1] };
		expect(inv.applyReport(report("n1", { usage }), 2000)).toBeNull();
		expect(inv.nodes.get("n1")?.usage).toEqual(usage);
		expect(inv.nodes.get("n1")?.lastSeen).toBe(2000);
	});

	it("announces an update when labels or capacity change", () => {
		const inv = new Inventory();
		inv.applyReport(report("n1"), 1000);
		expect(inv.applyReport(report("n1", { labels: { zone: "b" } }), 2000)?.transition).toBe(
			"updated"
		);
		const capacity = { cpu: 16, memory: 1, gpus: [] };
		expect(inv.applyReport(report("n1", { capacity }), 3000)?.transition).toBe("updated");
	});

	it(`marks a node down after ${MISSED_REPORTS} missed reports, not before`, () => {
		const inv = new Inventory();
		inv.applyReport(report("n1"), 0);
		inv.applyReport(report("n2", { interval: 5000 }), 0);
		expect(inv.sweep(MISSED_REPORTS * 1000)).toEqual([]);
		const changes = inv.sweep(MISSED_REPORTS * 1000 + 1);
		expect(changes.map(c => [c.node.id, c.transition])).toEqual([["n1", "down"]]);
		expect(inv.nodes.get("n1")).toMatchObject({ status: "down", usage: null });
		// n1 is already down: a later sweep reports no second transition for it.
		expect(inv.sweep(10_000)).toEqual([]);
	});

	it("marks a node down at once on disconnect, and up again when it reports", () => {
		const inv = new Inventory();
		inv.applyReport(report("n1"), 0);
		expect(inv.markDown("n1")?.transition).toBe("down");
		expect(inv.markDown("n1")).toBeNull();
		expect(inv.markDown("unknown")).toBeNull();
		expect(inv.applyReport(report("n1"), 100)?.node.status).toBe("ready");
	});

	it("keeps a cordon across down and up: a drained node comes back draining", () => {
		const inv = new Inventory();
		inv.applyReport(report("n1"), 0);
		expect(inv.setCordoned("n1", true)?.node.status).toBe("draining");
		expect(inv.setCordoned("n1", true)).toBeNull();
		inv.markDown("n1");
		expect(inv.nodes.get("n1")?.status).toBe("down");
		expect(inv.applyReport(report("n1"), 10)?.node.status).toBe("draining");
		expect(inv.setCordoned("n1", false)?.node.status).toBe("ready");
	});

	it("restores saved nodes as down until they report", () => {
		const inv = new Inventory();
		inv.applyReport(report("n1"), 0);
		inv.setCordoned("n1", true);
		const saved = persistedNode(inv.nodes.get("n1")!);
		expect(saved.usage).toBeNull();

		const next = new Inventory();
		next.restore([saved]);
		expect(next.nodes.get("n1")).toMatchObject({ status: "down", cordoned: true });
		expect(next.applyReport(report("n1"), 50)).toMatchObject({
			transition: "up",
			node: { status: "draining" }
		});
	});

	it("sweeps at half the shortest live report interval", () => {
		const inv = new Inventory();
		expect(inv.sweepInterval(1000)).toBe(500);
		inv.applyReport(report("n1", { interval: 400 }), 0);
		expect(inv.sweepInterval(1000)).toBe(200);
	});

	it("lists nodes in id order", () => {
		const inv = new Inventory();
		inv.applyReport(report("b"), 0);
		inv.applyReport(report("a"), 0);
		expect(inv.list().map(n => n.id)).toEqual(["a", "b"]);
	});

	it("finds the down nodes silent for longer than the retention, and forgets only down ones", () => {
		const inv = new Inventory();
		inv.applyReport(report("old"), 0);
		inv.applyReport(report("recent"), 5000);
		inv.applyReport(report("live"), 0);
		inv.markDown("old");
		inv.markDown("recent");
		// "live" is silent too, but not yet marked down: never a candidate.
		expect(inv.expired(10_001, 10_000)).toEqual(["old"]);
		expect(inv.expired(10_000, 10_000)).toEqual([]);
		expect(inv.expired(20_000, 10_000)).toEqual(["old", "recent"]);

		expect(inv.forget("live")).toBeNull();
		expect(inv.forget("nope")).toBeNull();
		expect(inv.forget("old")).toMatchObject({ id: "old", status: "down" });
		expect(inv.list().map(n => n.id)).toEqual(["live", "recent"]);
		// A forgotten node that reports again is new.
		expect(inv.applyReport(report("old"), 30_000)?.transition).toBe("up");
	});
});
