import {
	applyPlacements,
	applyReleases,
	audit,
	placedReplicas,
	ranges,
	wantedPlacements
} from "../../../services/scheduler/assign";
import type { PlacementRecord } from "../../../services/scheduler/reservations";
import {
	lastFence,
	newWorkload,
	parseReplicaKey,
	pendingReplica,
	replicaKey,
	Workload
} from "../../../services/scheduler/workload";

const GiB = 1024 ** 3;

function workload(replicas = 3, id = "w1"): Workload {
	return newWorkload(
		{
			name: "llm",
			kind: "process",
			process: { command: "python3" },
			resources: { cpu: 1, memory: "1Gi", gpu: 1 },
			replicas
		},
		{ id, tenant: "acme", createdBy: "ann", seq: 1, now: 1000 }
	);
}

/** A workload whose replicas are all placed on node "a" (GPU 0), at 2000. */
function placedOnA(replicas: number): Workload {
	const w = workload(replicas);
	applyPlacements(
		w,
		wantedPlacements(w).map(o => ({ ...o, spot: { nodeID: "a", gpus: [0] } })),
		null,
		2000
	);
	return w;
}

function record(nodeID: string, at = 0): PlacementRecord {
	return {
		nodeID,
		gpus: [0],
		resources: { cpu: 1, memory: GiB, gpu: 1, gpuMemory: 0 },
		at
	};
}

describe("replica keys", () => {
	it("carry the fence, and parse back", () => {
		expect(replicaKey("w-1/x", 2, 7)).toBe("w-1/x/2@7");
		expect(parseReplicaKey("w-1/x/2@7")).toEqual({ workloadId: "w-1/x", index: 2, fence: 7 });
		expect(parseReplicaKey("w1/2")).toBeNull();
	});

	it("never repeat after a scale to zero and back", () => {
		const w = workload(2);
		const first = wantedPlacements(w);
		applyPlacements(
			w,
			first.map(o => ({ ...o, spot: { nodeID: "a", gpus: [0] } })),
			null,
			2000
		);
		expect(lastFence(w)).toBe(2);
		w.replicas = [];
		expect(lastFence(w)).toBe(2);
		w.replicas.push(pendingReplica(0, 0, 3000));
		expect(wantedPlacements(w).map(o => o.key)).toEqual(["w1/0@3"]);
	});
});

describe("applyPlacements", () => {
	it("places pending replicas with one fence each, in order", () => {
		const w = workload(3);
		const wanted = wantedPlacements(w);
		expect(wanted.map(o => o.key)).toEqual(["w1/0@1", "w1/1@2", "w1/2@3"]);
		const { changed, unused } = applyPlacements(
			w,
			[
				{ ...wanted[0], spot: { nodeID: "a", gpus: [0] } },
				{ ...wanted[1], spot: { nodeID: "b", gpus: [1] } },
				{ ...wanted[2], spot: null }
			],
			"2 nodes have no free GPU.",
			2000
		);
		expect(changed).toBe(true);
		expect(unused).toEqual([]);
		expect(w.replicas.map(r => [r.node, r.fence, r.state])).toEqual([
			["a", 1, "starting"],
			["b", 2, "starting"],
			[null, 0, "pending"]
		]);
		expect(w.replicas[2].reason).toBe("2 nodes have no free GPU.");
		expect(w.events.map(e => e.type)).toEqual(["created", "placed", "placed", "pending"]);
		expect(w.events[1].message).toBe("Replica 0 placed on a with GPU 0.");
		// The next plan starts after the fences handed out.
		expect(wantedPlacements(w).map(o => o.key)).toEqual(["w1/2@3"]);
	});

	it("tells of the replicas placed on one node in one event", () => {
		const w = workload(5);
		const wanted = wantedPlacements(w);
		applyPlacements(
			w,
			wanted.map((o, i) => ({ ...o, spot: { nodeID: i === 2 ? "b" : "a", gpus: [i] } })),
			null,
			2000
		);
		expect(w.events.slice(1).map(e => [e.node, e.replica, e.message])).toEqual([
			["a", undefined, "Replicas 0-1, 3-4 placed on a with GPU 0,1,3,4."],
			["b", 2, "Replica 2 placed on b with GPU 2."]
		]);
		expect(ranges([9, 1, 2, 3, 7])).toBe("1-3, 7, 9");
	});

	it("tells of replicas spread over many nodes in one event, each replica naming its node", () => {
		const w = workload(20);
		applyPlacements(
			w,
			wantedPlacements(w).map((o, i) => ({ ...o, spot: { nodeID: `n${i}`, gpus: [] } })),
			null,
			2000
		);
		expect(w.events.slice(1).map(e => [e.type, e.node, e.message])).toEqual([
			["placed", undefined, "Replicas 0-19 placed on 20 nodes."]
		]);
		expect(w.replicas.map(r => r.node)).toEqual(w.replicas.map((_, i) => `n${i}`));
	});

	it("changes nothing when another scheduler applied the same placement first", () => {
		const w = workload(1);
		const outcomes = wantedPlacements(w).map(o => ({ ...o, spot: { nodeID: "a", gpus: [0] } }));
		applyPlacements(w, outcomes, null, 2000);
		expect(applyPlacements(w, outcomes, null, 3000)).toEqual({ changed: false, unused: [] });
	});

	it("gives back a placement the workload no longer wants", () => {
		const w = workload(2);
		const outcomes = wantedPlacements(w).map(o => ({ ...o, spot: { nodeID: "a", gpus: [0] } }));
		w.replicas = w.replicas.slice(0, 1); // scaled down meanwhile
		expect(applyPlacements(w, outcomes, null, 2000)).toEqual({
			changed: true,
			unused: ["w1/1@2"]
		});
	});

	it("does not repeat the reason it already recorded", () => {
		const w = workload(1);
		const outcomes = wantedPlacements(w).map(o => ({ ...o, spot: null }));
		expect(applyPlacements(w, outcomes, "full", 2000).changed).toBe(true);
		expect(applyPlacements(w, outcomes, "full", 3000).changed).toBe(false);
		expect(w.events.filter(e => e.type === "pending")).toHaveLength(1);
	});
});

describe("applyReleases", () => {
	it("pends the released replicas, and leaves one placed again since alone", () => {
		const w = placedOnA(2);
		const placed = placedReplicas(w, [0, 1]);
		expect(placed.map(p => p.key)).toEqual(["w1/0@1", "w1/1@2"]);
		// Replica 1 moved on meanwhile (another fence).
		w.replicas[1] = { ...w.replicas[1], node: "b", fence: 5 };
		expect(applyReleases(w, placed, "node a is down", true, 3000)).toBe(true);
		expect(w.replicas.map(r => [r.node, r.state, r.fence])).toEqual([
			[null, "pending", 1],
			["b", "starting", 5]
		]);
		expect(lastFence(w)).toBe(5);
		expect(applyReleases(w, placed, "node a is down", true, 3000)).toBe(false);
	});

	it("stops them when they are not to be placed again", () => {
		const w = placedOnA(1);
		applyReleases(w, placedReplicas(w, [0]), "deleted", false, 3000);
		expect(w.replicas[0]).toMatchObject({ node: null, state: "stopped", reason: "deleted" });
	});
});

describe("audit", () => {
	it("finds nothing when every placed replica has its reservation", async () => {
		const w = placedOnA(2);
		const records: [string, PlacementRecord][] = [
			["w1/0@1", record("a")],
			["w1/1@2", record("a")]
		];
		expect(await audit([w], records, 100_000, 60_000)).toEqual({ lost: [], orphans: [] });
	});

	it("finds replicas whose reservation is gone", async () => {
		const w = placedOnA(2);
		expect((await audit([w], [["w1/0@1", record("a")]], 100_000, 60_000)).lost).toEqual([
			{ workloadId: "w1", index: 1, fence: 2, node: "a", key: "w1/1@2" }
		]);
	});

	it("finds old reservations no replica names, and spares young ones", async () => {
		const w = placedOnA(2);
		const records: [string, PlacementRecord][] = [
			["w1/0@1", record("a")],
			["w1/1@2", record("a")],
			["w1/1@9", record("b", 0)], // an old fence
			["gone/0@1", record("b", 0)], // a deleted workload
			["w1/5@3", record("b", 0)], // a replica scaled away
			["w1/0@4", record("b", 90_000)] // placed a moment ago: its workload is not written yet
		];
		expect((await audit([w], records, 100_000, 60_000)).orphans).toEqual([
			"w1/1@9",
			"gone/0@1",
			"w1/5@3"
		]);
	});
});
