import { COLLECTIONS } from "../../../services/shared/collections";
import { SqliteStore } from "../../../services/shared/store";
import type { ReplicaSpec, ReplicaStatus } from "../../../services/shared/types";
import { adoptionReads, planAdoption, type AgentReplicas } from "../../../services/scheduler/adopt";
import { audit } from "../../../services/scheduler/assign";
import { PLACEMENTS } from "../../../services/scheduler/reservations";
import type { Workload } from "../../../services/scheduler/workload";

function running(
	nodeID: string,
	workloadId: string,
	replica: number,
	fence: number,
	extra: Partial<ReplicaSpec> = {}
): AgentReplicas["replicas"][number] {
	const spec: ReplicaSpec = {
		workloadId,
		tenant: "acme",
		name: `${workloadId}-name`,
		replica,
		fence,
		kind: "process",
		process: { command: "sleep", args: ["60"], env: {} },
		resources: { cpu: 1, memory: 1024, gpu: 1, gpuMemory: 0 },
		gpus: [replica],
		restart: { policy: "always", maxRestarts: 3 },
		...extra
	};
	const status: ReplicaStatus = {
		workloadId,
		replica,
		fence,
		nodeID,
		state: "running",
		restarts: 2,
		at: 0
	};
	return { spec, status };
}

const empty = {
	workloads: new Set<string>(),
	names: new Map(),
	allocations: new Map(),
	usage: new Map(),
	claims: new Map()
};

describe("planAdoption", () => {
	it("rebuilds each workload where its replicas run, at their fences, with its reservations and usage", async () => {
		const agents: AgentReplicas[] = [
			{ nodeID: "n1", replicas: [running("n1", "w1", 0, 3), running("n1", "w1", 2, 4)] },
			{ nodeID: "n2", replicas: [running("n2", "w1", 0, 1)] }
		];
		const plan = planAdoption(agents, empty, 5000);
		expect(plan.skipped).toEqual([]);
		const [w] = plan.workloads;
		expect(w).toMatchObject({
			id: "w1",
			tenant: "acme",
			name: "w1-name",
			process: { command: "sleep" },
			restart: { policy: "always", maxRestarts: 3 },
			fence: 4,
			createdBy: "system:adopt"
		});
		// Replica 0: the newest placement (n1, fence 3), not the stale copy on n2; 1: pending.
		expect(w.replicas.map(r => [r.index, r.node, r.fence, r.state])).toEqual([
			[0, "n1", 3, "running"],
			[1, null, 0, "pending"],
			[2, "n1", 4, "running"]
		]);
		// Applied to a store, the reconcile's audit finds nothing lost and no orphan.
		const store = new SqliteStore(":memory:");
		expect(await store.transact(plan.checks, plan.writes)).toBe(true);
		const placements = (await store.list<any>(PLACEMENTS)).map(
			d => [d.id, d.value] as [string, any]
		);
		expect(placements.map(([k]) => k)).toEqual(["w1/0@3", "w1/2@4"]);
		const workloads = (await store.list<Workload>(COLLECTIONS.workloads)).map(d => d.value);
		expect(await audit(workloads, placements, 5000, 0)).toEqual({ lost: [], orphans: [] });
		expect((await store.get<any>(COLLECTIONS.allocations, "n1"))?.value).toEqual({
			cpu: 2,
			memory: 2048,
			gpus: { 0: { exclusive: "w1/0@3", memory: 0 }, 2: { exclusive: "w1/2@4", memory: 0 } }
		});
		expect((await store.get<any>(COLLECTIONS.usage, "acme"))?.value).toMatchObject({
			cpu: 3,
			gpu: 3,
			workloads: 1
		});
		expect((await store.get<any>(COLLECTIONS.names, "acme/w1-name"))?.value).toEqual({
			id: "w1"
		});
		// A second adoption of the same finds every document there: its checks fail.
		expect(await store.transact(plan.checks, plan.writes)).toBe(false);
		await store.close();
	});

	it("leaves what the store holds, and skips a workload whose name or service another holds", () => {
		const agents: AgentReplicas[] = [
			{
				nodeID: "n1",
				replicas: [
					running("n1", "kept", 0, 1),
					running("n1", "renamed", 0, 1, { name: "taken" }),
					running("n1", "svc", 0, 1, {
						kind: "service",
						process: undefined,
						service: { module: "m", name: "chat" }
					})
				]
			}
		];
		const plan = planAdoption(
			agents,
			{
				...empty,
				workloads: new Set(["kept"]),
				names: new Map([["acme/taken", "other"]]),
				claims: new Map([
					["chat", { value: { tenant: "beta", workloadIds: ["x"] }, version: 1 }]
				])
			},
			1
		);
		expect(plan.workloads).toEqual([]);
		expect(plan.skipped.map(s => s.workloadId)).toEqual(["kept", "renamed", "svc"]);
		expect(plan.skipped[2].reason).toContain("tenant beta");
	});

	it("claims a service workload's name for its tenant", () => {
		const agents: AgentReplicas[] = [
			{
				nodeID: "n1",
				replicas: [
					running("n1", "svc", 0, 1, {
						kind: "service",
						process: undefined,
						service: { module: "m", name: "chat" }
					})
				]
			}
		];
		const plan = planAdoption(agents, empty, 1);
		expect(plan.writes).toContainEqual({
			collection: COLLECTIONS.serviceClaims,
			id: "chat",
			value: { tenant: "acme", workloadIds: ["svc"] }
		});
		expect(adoptionReads(agents)).toEqual({
			workloadIds: ["svc"],
			names: ["acme/w1-name".replace("w1", "svc")],
			nodes: ["n1"],
			tenants: ["acme"],
			services: ["chat"]
		});
	});
});
