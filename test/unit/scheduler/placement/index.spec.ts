import { Errors } from "moleculer";
import type { PlacementNode } from "../../../../services/scheduler/placement";
import { AntiAffinity } from "../../../../services/scheduler/placement/anti-affinity";
import { Binpack } from "../../../../services/scheduler/placement/binpack";
import { Filter } from "../../../../services/scheduler/placement/filter";
import {
	FILTERS,
	nodeSelector,
	nodeStatus,
	registerFilter,
	registerScorer,
	resolveFilter,
	resolveScorer,
	unfit
} from "../../../../services/scheduler/placement/index";
import { NodeSelector } from "../../../../services/scheduler/placement/node-selector";
import { NodeStatus } from "../../../../services/scheduler/placement/node-status";
import { Resources } from "../../../../services/scheduler/placement/resources";
import { Scorer } from "../../../../services/scheduler/placement/scorer";
import { Spread } from "../../../../services/scheduler/placement/spread";
import { ERR_INVALID } from "../../../../services/shared/errors";
import type { ResourceRequest } from "../../../../services/shared/types";
import { node, req } from "./fixtures";

/** A filter a deployment might add: nodes labelled `maintenance` take nothing. */
class Maintenance extends Filter {
	readonly name = "Maintenance";

	fits(n: PlacementNode): string | null {
		return n.labels.maintenance ? "maintenance" : null;
	}

	reason(_key: string, count: number): string {
		return count === 1 ? "1 node is in maintenance" : `${count} nodes are in maintenance`;
	}
}

/** A scorer of one's own: the fuller the better, on CPU alone. */
class CpuBinpack extends Scorer {
	readonly name = "CpuBinpack";
	readonly fullestFirst = true;

	score(n: PlacementNode, r: ResourceRequest): number {
		return (n.allocated.cpu + r.cpu) / n.capacity.cpu;
	}

	prefersCard(left: number, best: number): boolean {
		return left < best;
	}
}

describe("resolveFilter and resolveScorer", () => {
	it("resolve a name, in any case, to an instance of its class", () => {
		expect(resolveFilter("NodeStatus")).toBeInstanceOf(NodeStatus);
		expect(resolveFilter("nodeselector")).toBeInstanceOf(NodeSelector);
		expect(resolveFilter("ANTIAFFINITY")).toBeInstanceOf(AntiAffinity);
		expect(resolveFilter("Resources")).toBeInstanceOf(Resources);
		expect(resolveScorer("binpack")).toBeInstanceOf(Binpack);
		expect(resolveScorer("Spread")).toBeInstanceOf(Spread);
	});

	it("take a class or an instance as it is", () => {
		expect(resolveFilter(Maintenance)).toBeInstanceOf(Maintenance);
		const filter = new Maintenance();
		expect(resolveFilter(filter)).toBe(filter);
		expect(resolveScorer(CpuBinpack)).toBeInstanceOf(CpuBinpack);
		const scorer: Scorer = new Spread();
		expect(resolveScorer(scorer)).toBe(scorer);
	});

	it("refuse a name nobody registered", () => {
		let error: unknown;
		try {
			resolveFilter("NoSuchFilter");
		} catch (e) {
			error = e;
		}
		expect(error).toBeInstanceOf(Errors.MoleculerClientError);
		expect(error).toMatchObject({
			code: 422,
			type: ERR_INVALID,
			data: { kind: "filter", name: "NoSuchFilter" }
		});
		expect(() => resolveScorer("leastGpu")).toThrow("Unknown placement scorer 'leastGpu'.");
	});
});

describe("registerFilter and registerScorer", () => {
	it("make a class resolvable by its name", () => {
		expect(() => resolveFilter("Maintenance")).toThrow();
		registerFilter("Maintenance", Maintenance);
		const filter = resolveFilter("maintenance");
		expect(filter).toBeInstanceOf(Maintenance);
		expect(filter.fits(node("m", { labels: { maintenance: "yes" } }), req())).toBe(
			"maintenance"
		);
		registerScorer("CpuBinpack", CpuBinpack);
		expect(resolveScorer("cpubinpack")).toBeInstanceOf(CpuBinpack);
	});

	it("leave the chain every placement runs as it is", () => {
		expect(FILTERS.map(f => f.name)).toEqual([
			"NodeStatus",
			"AntiAffinity",
			"NodeSelector",
			"Resources"
		]);
	});
});

describe("FILTERS and unfit", () => {
	it("hold the filter objects the placement index runs by themselves", () => {
		expect(FILTERS).toContain(nodeStatus);
		expect(FILTERS).toContain(nodeSelector);
	});

	it("give the first filter that rules a node out, in the chain's order", () => {
		const q = req({ cpu: 32 }, { nodeSelector: { zone: "a" }, avoid: new Set(["n"]) });
		const n = node("n", { status: "draining" });
		expect(unfit(n, q)).toBeInstanceOf(NodeStatus);
		expect(unfit({ ...n, status: "ready" }, q)).toBeInstanceOf(AntiAffinity);
		expect(unfit({ ...n, status: "ready" }, { ...q, avoid: new Set() })).toBeInstanceOf(
			NodeSelector
		);
		const inZone = { ...n, status: "ready" as const, labels: { zone: "a" } };
		expect(unfit(inZone, { ...q, avoid: new Set() })).toBeInstanceOf(Resources);
		expect(unfit(inZone, req())).toBeNull();
	});
});

describe("Maintenance, a filter of one's own", () => {
	it("says its reason of one node and of several", () => {
		const filter = new Maintenance();
		expect(filter.reason("maintenance", 1)).toBe("1 node is in maintenance");
		expect(filter.reason("maintenance", 2)).toBe("2 nodes are in maintenance");
	});
});
