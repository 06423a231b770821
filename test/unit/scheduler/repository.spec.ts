import { replicaDigest } from "../../../services/shared/replica-digest";
import { placedWorkload } from "../../helpers/workloads";
import { COLLECTIONS } from "../../../services/shared/collections";
import { NotFoundError } from "../../../services/shared/errors";
import type { Principal } from "../../../services/shared/principal";
import { SqliteStore } from "../../../services/shared/store/sqlite";
import { WorkloadRepository } from "../../../services/scheduler/repository";
import { newWorkload, totalRequest, type Workload } from "../../../services/scheduler/workload";
import { addUsage } from "../../../services/scheduler/quota";

const alice: Principal = { sub: "alice", tenant: "acme", roles: ["operator"], exp: 0 };
const bob: Principal = { sub: "bob", tenant: "other", roles: ["operator"], exp: 0 };
const admin: Principal = { sub: "root", tenant: "ops", roles: ["admin"], exp: 0 };

let seq = 0;
function workload(name: string, tenant = "acme", replicas = 2): Workload {
	seq++;
	return newWorkload(
		{
			name,
			kind: "process",
			process: { command: "sleep" },
			resources: { cpu: 1, memory: "1Gi" },
			replicas
		},
		{ id: `id-${name}-${seq}`, tenant, createdBy: "alice", seq, now: 1000 + seq }
	);
}

describe("WorkloadRepository", () => {
	let store: SqliteStore;
	let repo: WorkloadRepository;
	beforeEach(() => {
		store = new SqliteStore(":memory:");
		repo = new WorkloadRepository(store);
	});
	afterEach(() => store.close());

	/** Creates workloads of one tenant as the scheduler does: charged, with names (and keys). */
	async function create(ws: Workload[], key?: string) {
		const t = await repo.tenantState(ws[0].tenant);
		for (const w of ws) t.next = addUsage(t.next, totalRequest(w.resources, 2), 1, 1);
		return repo.commitCreates(
			ws.map(w => ({ w, key, keyVersion: 0 })),
			new Map([[ws[0].tenant, t]])
		);
	}

	it("creates workloads with their names, keys and usage in one transaction", async () => {
		const a = workload("a");
		expect(await create([a], "k1")).toBe(true);
		expect((await repo.get(a.id))?.value).toEqual(a);
		expect(await repo.nameTaken("acme", "a")).toBe(true);
		expect(await repo.nameTaken("other", "a")).toBe(false);
		expect(await repo.usage("acme")).toMatchObject({ cpu: 2, workloads: 1 });
		expect(await repo.byIdempotencyKey("acme", "k1")).toEqual({ earlier: a, keyVersion: 1 });
		expect(await repo.byIdempotencyKey("acme", "k2")).toEqual({ earlier: null, keyVersion: 0 });
		expect(await repo.byIdempotencyKey("acme")).toEqual({ earlier: null, keyVersion: 0 });
		// A second workload of that name, or a second use of the key, does not commit.
		expect(await create([workload("a")])).toBe(false);
		expect(await create([workload("b")], "k1")).toBe(false);
		expect(await repo.usage("acme")).toMatchObject({ cpu: 2, workloads: 1 });
	});

	it("hands a created workload to its first round once, then reads the store", async () => {
		const a = workload("a");
		await create([a]);
		const handed = repo.forRound(a.id);
		expect(handed).not.toBeInstanceOf(Promise);
		expect(handed).toEqual({ value: a, version: 1 });
		await expect(repo.forRound(a.id)).resolves.toEqual({ value: a, version: 1 });
		const b = workload("b");
		await create([b]);
		repo.handedOff(b.id);
		expect(repo.forRound(b.id)).toBeInstanceOf(Promise);
	});

	it("answers 404 for a missing workload and another tenant's; an admin sees all", async () => {
		const a = workload("a");
		await create([a]);
		await expect(repo.load(a.id, alice)).resolves.toMatchObject({ value: { id: a.id } });
		await expect(repo.load(a.id, admin)).resolves.toMatchObject({ value: { id: a.id } });
		await expect(repo.load(a.id, undefined)).resolves.toMatchObject({ value: { id: a.id } });
		for (const [id, user] of [
			[a.id, bob],
			["nope", alice]
		] as const) {
			const err = await repo.load(id, user).catch((e: unknown) => e);
			expect(err).toBeInstanceOf(NotFoundError);
			expect(err).toMatchObject({ code: 404, data: { kind: "Workload", id } });
		}
	});

	it("lists one tenant's workloads or all, first created first", async () => {
		const [b, a, c] = [workload("b"), workload("a"), workload("c", "other")];
		await create([b, a]);
		await create([c]);
		expect((await repo.list("acme")).map(w => w.name)).toEqual(["b", "a"]);
		expect((await repo.list(undefined)).map(w => w.name)).toEqual(["b", "a", "c"]);
		expect((await repo.all()).map(d => d.id).sort()).toEqual([a.id, b.id, c.id].sort());
	});

	it("writes a workload only at the version read", async () => {
		const a = workload("a");
		await create([a]);
		a.priority = 5;
		expect(await repo.write(a, 1)).toBe(2);
		expect(await repo.write(a, 1)).toBeNull();
		expect((await repo.get(a.id))?.value.priority).toBe(5);
	});

	it("removes workloads, refunds their tenants and frees their names, or nothing when one moved", async () => {
		const [a, b] = [workload("a"), workload("b")];
		await create([a, b]);
		const docs = await Promise.all([a.id, b.id].map(async id => (await repo.get(id))!));
		await repo.write(b, 1);
		expect(await repo.commitRemoves(docs)).toBe(false);
		expect(await repo.nameTaken("acme", "a")).toBe(true);
		docs[1] = (await repo.get(b.id))!;
		expect(await repo.commitRemoves(docs)).toBe(true);
		expect(await repo.get(a.id)).toBeNull();
		expect(await repo.nameTaken("acme", "a")).toBe(false);
		expect(await repo.usage("acme")).toMatchObject({ cpu: 0, memory: 0, workloads: 0 });
	});

	it("reads a tenant's quota and usage with the usage's version", async () => {
		expect(await repo.tenantState("acme")).toEqual({
			quota: undefined,
			version: 0,
			next: await repo.usage("acme")
		});
		await store.put(COLLECTIONS.tenants, "acme", { quota: { workloads: 3 } });
		await create([workload("a")]);
		expect(await repo.tenantState("acme")).toMatchObject({
			quota: { workloads: 3 },
			version: 1,
			next: { workloads: 1 }
		});
	});

	it("reads a cached workload again only when its version moved", async () => {
		const [a, b] = [workload("a"), workload("b")];
		await create([a, b]);
		const get = jest.spyOn(store, "get");
		expect(await repo.readCached([a.id, b.id, "gone"])).toEqual([a, b, null]);
		expect(get.mock.calls.map(c => c[1])).toEqual([a.id, b.id, "gone"]);
		// Written by another scheduler: read again.
		await store.cas(COLLECTIONS.workloads, a.id, { ...a, priority: 7 }, 1);
		get.mockClear();
		const [again] = await repo.readCached([a.id, b.id]);
		expect(again?.priority).toBe(7);
		expect(get.mock.calls).toEqual([[COLLECTIONS.workloads, a.id]]);
		// Written by this one: what it wrote is the copy, nothing is read.
		const b2 = { ...b, priority: 3 };
		await repo.write(b2, 1);
		get.mockClear();
		expect(await repo.readCached([a.id, b.id])).toEqual([again, b2]);
		expect(get).not.toHaveBeenCalled();
		// Forgotten when no longer listed: read again.
		repo.uncache(new Set([a.id]));
		get.mockClear();
		await repo.readCached([a.id, b.id]);
		expect(get.mock.calls).toEqual([[COLLECTIONS.workloads, b.id]]);
	});

	it("lists every workload from its copies, reading again only what moved or is new", async () => {
		const [a, b] = [workload("a"), workload("b")];
		await create([a, b]);
		const get = jest.spyOn(store, "get");
		const sorted = (...ws: Workload[]) =>
			ws
				.map(w => ({ id: w.id, value: w, version: 1 }))
				.sort((x, y) => (x.id < y.id ? -1 : 1));
		expect(await repo.allCached()).toEqual(sorted(a, b));
		expect(get.mock.calls.map(c => c[1]).sort()).toEqual([a.id, b.id].sort());
		get.mockClear();
		expect(await repo.allCached()).toEqual(sorted(a, b));
		expect(get).not.toHaveBeenCalled();
		// Another scheduler's write, a new workload and a delete: the two that moved are read,
		// the gone one left.
		a.priority = 7;
		await store.cas(COLLECTIONS.workloads, a.id, a, 1);
		const c = workload("c");
		await create([c]);
		await store.delete(COLLECTIONS.workloads, b.id);
		get.mockClear();
		const docs = await repo.allCached();
		expect(docs.map(d => d.id)).toEqual([a.id, c.id].sort());
		expect(docs.find(d => d.id === a.id)).toMatchObject({ version: 2, value: { priority: 7 } });
		expect(get.mock.calls.map(c => c[1]).sort()).toEqual([a.id, c.id].sort());
		expect(docs).toEqual(await repo.all());
		// readCached shares the copies: b is forgotten, a and c are not read again.
		get.mockClear();
		expect(await repo.readCached([a.id, b.id, c.id])).toEqual([
			expect.objectContaining({ priority: 7 }),
			null,
			c
		]);
		expect(get.mock.calls).toEqual([[COLLECTIONS.workloads, b.id]]);
	});

	it("reads the allocations as the Reserver committed them", async () => {
		expect(await repo.allocation("n1")).toBeNull();
		const allocation = { cpu: 1, memory: 2, gpus: { 0: { exclusive: "w/0@1", memory: 0 } } };
		await store.put(COLLECTIONS.allocations, "n1", allocation);
		expect(await repo.allocation("n1")).toEqual(allocation);
		expect(await repo.allocations()).toEqual([{ id: "n1", value: allocation, version: 1 }]);
	});

	it("keeps each node's digest as its copies change: reads, its own writes, deletes", async () => {
		const expected = (nodeID: string, ws: Workload[]) =>
			replicaDigest(
				ws.flatMap(w =>
					w.replicas
						.filter(r => r.node === nodeID)
						.map(r => ({ workloadId: w.id, replica: r.index, fence: r.fence }))
				)
			);
		const a = placedWorkload("a", ["n1", "n2"]);
		const b = placedWorkload("b", ["n1", null]);
		await store.put(COLLECTIONS.workloads, a.id, a);
		await store.put(COLLECTIONS.workloads, b.id, b);
		expect(repo.nodeDigest("n1", [])).toBe(expected("n1", []));
		await repo.allCached();
		expect(repo.nodeDigest("n1", [])).toBe(expected("n1", [a, b]));
		expect(repo.nodeDigest("n2", [])).toBe(expected("n2", [a]));
		// Its own write moves a replica: both nodes follow without a read.
		const moved = structuredClone(a);
		moved.replicas[1] = { ...moved.replicas[1], node: "n3", fence: 2 };
		await repo.write(moved, 1);
		expect(repo.nodeDigest("n2", [])).toBe(expected("n2", []));
		expect(repo.nodeDigest("n3", [])).toBe(expected("n3", [moved]));
		// Skipped workloads are left out; a deleted one is gone at the next listing.
		expect(repo.nodeDigest("n1", ["b"])).toBe(expected("n1", [moved]));
		await store.delete(COLLECTIONS.workloads, b.id);
		await repo.allCached();
		expect(repo.nodeDigest("n1", [])).toBe(expected("n1", [moved]));
		// An older read kept after a newer write does not take the copy back.
		const older = structuredClone(a);
		await repo.write(structuredClone(moved), 2);
		jest.spyOn(store, "get").mockResolvedValueOnce({ value: older, version: 1 });
		jest.spyOn(store, "versions").mockResolvedValueOnce([1]);
		await repo.readCached([a.id]);
		expect(repo.nodeDigest("n3", [])).toBe(expected("n3", [moved]));
	});
});
