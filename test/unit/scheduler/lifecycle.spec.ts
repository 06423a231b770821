import type { LoggerInstance } from "moleculer";
import { COLLECTIONS } from "../../../services/shared/collections";
import { ConflictError, ERR_CONFLICT } from "../../../services/shared/errors";
import type { Principal } from "../../../services/shared/principal";
import { SqliteStore } from "../../../services/shared/store/sqlite";
import type { ReplicaStatus } from "../../../services/shared/types";
import type { AgentSync } from "../../../services/scheduler/agent-sync";
import {
	applyReplicaStatus,
	LIGHT_SHARE,
	URGENT_BURST,
	WorkloadLifecycle
} from "../../../services/scheduler/lifecycle";
import { Recovery } from "../../../services/scheduler/recovery";
import type { Reserver } from "../../../services/scheduler/reservations";
import { WorkloadRepository } from "../../../services/scheduler/repository";
import type { PlacementRounds } from "../../../services/scheduler/rounds";
import { SerialQueue } from "../../../services/scheduler/serial-queue";
import {
	newWorkload,
	type Workload,
	type WorkloadInput
} from "../../../services/scheduler/workload";

const alice: Principal = { sub: "alice", tenant: "acme", roles: ["operator"], exp: 0 };

const input = (name: string, replicas = 2): WorkloadInput => ({
	name,
	kind: "process",
	process: { command: "sleep" },
	resources: { cpu: 1, memory: "1Gi" },
	replicas
});

/** A workload whose replica 0 runs on n1 at fence 1. */
function running(): Workload {
	const w = newWorkload(input("a", 1), {
		id: "a",
		tenant: "acme",
		createdBy: "alice",
		seq: 1,
		now: 1000
	});
	Object.assign(w.replicas[0], { node: "n1", fence: 1, state: "starting" });
	return w;
}

function status(s: Partial<ReplicaStatus>): ReplicaStatus {
	return {
		workloadId: "a",
		replica: 0,
		fence: 1,
		nodeID: "n1",
		state: "running",
		restarts: 0,
		at: 2000,
		...s
	};
}

describe("applyReplicaStatus", () => {
	it("records a new state with its event", () => {
		const w = running();
		expect(applyReplicaStatus(w, w.replicas[0], status({}))).toBe(true);
		expect(w.replicas[0]).toMatchObject({ state: "running", restarts: 0, since: 2000 });
		expect(w.events.at(-1)).toEqual({
			at: 2000,
			type: "started",
			replica: 0,
			node: "n1",
			message: "Replica 0 running on n1."
		});
	});

	it("names the reason of a failure, and drops it when the replica runs again", () => {
		const w = running();
		const r = w.replicas[0];
		applyReplicaStatus(w, r, status({ state: "failed", reason: "exit 1", restarts: 1 }));
		expect(r).toMatchObject({ state: "failed", reason: "exit 1", restarts: 1 });
		expect(w.events.at(-1)?.message).toBe("Replica 0 failed on n1: exit 1.");
		applyReplicaStatus(w, r, status({ restarts: 1 }));
		expect(r.reason).toBeUndefined();
	});

	it("keeps the last error while the replica runs again after a restart", () => {
		const w = running();
		const r = w.replicas[0];
		const restarting = "exited with code 1; restarting in 1 s (restart 1 of 5)";
		applyReplicaStatus(
			w,
			r,
			status({ state: "starting", reason: restarting, lastError: "exited with code 1" })
		);
		expect(
			applyReplicaStatus(w, r, status({ restarts: 1, lastError: "exited with code 1" }))
		).toBe(true);
		expect(r).toMatchObject({ state: "running", restarts: 1, lastError: "exited with code 1" });
		expect(r.reason).toBeUndefined();
	});

	it("answers false for a report with nothing new, and adds no event without a new state", () => {
		const w = running();
		const r = w.replicas[0];
		expect(applyReplicaStatus(w, r, status({ state: "starting" }))).toBe(false);
		const events = w.events.length;
		applyReplicaStatus(w, r, status({ state: "starting", restarts: 2 }));
		expect(r.restarts).toBe(2);
		expect(w.events).toHaveLength(events);
	});
});

describe("WorkloadLifecycle", () => {
	let store: SqliteStore;
	let repo: WorkloadRepository;
	let lifecycle: WorkloadLifecycle;
	let rounds: { waiting: Set<string>; placeQuietly: jest.Mock; requestPlacement: jest.Mock };
	let released: jest.Mock;
	let synced: jest.Mock;
	const logger = { info: jest.fn(), warn: jest.fn() } as unknown as LoggerInstance;

	beforeEach(() => {
		// No waiting between attempts.
		jest.spyOn(Math, "random").mockReturnValue(0);
		store = new SqliteStore(":memory:");
		repo = new WorkloadRepository(store);
		rounds = {
			waiting: new Set(),
			placeQuietly: jest.fn(async () => undefined),
			requestPlacement: jest.fn(async () => new Map())
		};
		released = jest.fn(async () => undefined);
		synced = jest.fn(async () => undefined);
		lifecycle = new WorkloadLifecycle(
			repo,
			new SerialQueue(),
			rounds as unknown as PlacementRounds,
			{ releaseForgotten: released } as unknown as Recovery,
			{ syncNodes: synced } as unknown as AgentSync,
			logger
		);
	});
	afterEach(async () => {
		jest.restoreAllMocks();
		await store.close();
	});

	const conflict = (err: unknown, message: string, data: object) => {
		expect(err).toBeInstanceOf(ConflictError);
		expect(err).toMatchObject({ message, code: 409, type: ERR_CONFLICT, data });
	};

	it("creates what comes at once in one transaction, and charges the quota", async () => {
		const commit = jest.spyOn(repo, "commitCreates");
		const made = await Promise.all(["a", "b", "c"].map(n => lifecycle.create(input(n), alice)));
		expect(made.map(w => w.name)).toEqual(["a", "b", "c"]);
		expect(commit).toHaveBeenCalledTimes(1);
		expect(made[0].seq).toBeLessThan(made[1].seq);
		expect(await repo.usage("acme")).toMatchObject({ cpu: 6, workloads: 3 });
		expect(rounds.placeQuietly).toHaveBeenCalledTimes(3);
		// Each was handed off to its round: read from the store from now on.
		expect(repo.forRound(made[0].id)).toBeInstanceOf(Promise);
	});

	/** A lifecycle whose queue runs a task that holds it until `release()`. */
	async function heldLifecycle() {
		const queue = new SerialQueue();
		const mixed = new WorkloadLifecycle(
			repo,
			queue,
			rounds as unknown as PlacementRounds,
			{ releaseForgotten: released } as unknown as Recovery,
			{ syncNodes: synced } as unknown as AgentSync,
			logger
		);
		let release!: () => void;
		const gate = new Promise<void>(resolve => (release = resolve));
		const blocked = queue.run(() => gate);
		await new Promise(resolve => setImmediate(resolve));
		return { mixed, release, blocked };
	}

	it("makes and places a light tenant's create in the urgent lane, ahead of a busy tenant's", async () => {
		const { mixed, release, blocked } = await heldLifecycle();
		const names = Array.from({ length: 3 * LIGHT_SHARE }, (_, i) => `busy-${i}`);
		const busy = names.map(n => mixed.create(input(n), alice));
		const bob: Principal = { sub: "bob", tenant: "beta", roles: ["operator"], exp: 0 };
		// Three at once: past LIGHT_CREATES, but with the first one's group.
		const light = Promise.all(["l1", "l2", "l3"].map(n => mixed.create(input(n), bob)));
		const commit = jest.spyOn(repo, "commitCreates");
		release();
		const [made, lone] = await Promise.all([Promise.all(busy), light, blocked]);
		// Made first, though they came last: the busy tenant's group waited in the normal lane.
		const lastLight = Math.max(...lone.map(w => w.seq));
		expect(made.every(w => w.seq > lastLight)).toBe(true);
		expect(commit.mock.calls[0][0].map(m => m.w.name)).toEqual(["l1", "l2", "l3"]);
		const lanes = new Map(
			rounds.placeQuietly.mock.calls.map(([id, lane]: [string, string]) => [id, lane])
		);
		expect(lone.map(w => lanes.get(w.id))).toEqual(["urgent", "urgent", "urgent"]);
		expect(made.map(w => lanes.get(w.id))).toEqual(names.map(() => "normal"));
	});

	it(`goes on in the normal lane past ${URGENT_BURST} creates of a light tenant's burst`, async () => {
		const { mixed, release, blocked } = await heldLifecycle();
		// The busy tenant sent many lately; the other one's burst is bigger than URGENT_BURST.
		const busy = Array.from({ length: 40 * LIGHT_SHARE }, (_, i) =>
			mixed.create(input(`busy-${i}`), alice)
		);
		const bob: Principal = { sub: "bob", tenant: "beta", roles: ["operator"], exp: 0 };
		const burst = Array.from({ length: URGENT_BURST + 4 }, (_, i) =>
			mixed.create(input(`b-${i}`), bob)
		);
		release();
		const [, made] = await Promise.all([Promise.all(busy), Promise.all(burst), blocked]);
		const lanes = new Map(
			rounds.placeQuietly.mock.calls.map(([id, lane]: [string, string]) => [id, lane])
		);
		const urgent = made.filter(w => lanes.get(w.id) === "urgent");
		expect(urgent).toHaveLength(URGENT_BURST);
		expect(made.filter(w => lanes.get(w.id) === "normal")).toHaveLength(4);
	});

	it("refuses a tenant's create past its bound with 503 OVERLOADED, not another tenant's", async () => {
		const bounded = new WorkloadLifecycle(
			repo,
			new SerialQueue(),
			rounds as unknown as PlacementRounds,
			{ releaseForgotten: released } as unknown as Recovery,
			{ syncNodes: synced } as unknown as AgentSync,
			logger,
			{ total: 10, perTenant: 2 }
		);
		let place!: () => void;
		const placing = new Promise<void>(resolve => (place = resolve));
		rounds.placeQuietly.mockImplementation(() => placing.then(() => undefined));
		const held = [bounded.create(input("a"), alice), bounded.create(input("b"), alice)];
		const err = await bounded.create(input("c"), alice).catch((e: unknown) => e);
		expect(err).toMatchObject({
			code: 503,
			type: "OVERLOADED",
			data: { queue: "the scheduler's creates of tenant 'acme'", limit: 2, retryAfter: 1 }
		});
		const bob: Principal = { sub: "bob", tenant: "beta", roles: ["operator"], exp: 0 };
		const other = bounded.create(input("a"), bob);
		place();
		await Promise.all([...held, other]);
		// Nothing of the refused create was made; once the others are answered, it is let in.
		expect(await repo.usage("acme")).toMatchObject({ workloads: 2 });
		await expect(bounded.create(input("c"), alice)).resolves.toMatchObject({ name: "c" });
	});

	it("answers 409 for a taken name", async () => {
		await lifecycle.create(input("a"), alice);
		const err = await lifecycle.create(input("a"), alice).catch((e: unknown) => e);
		conflict(err, "A workload named 'a' exists already.", { name: "a" });
	});

	describe("Moleculer service name claims", () => {
		const bob: Principal = { sub: "bob", tenant: "beta", roles: ["operator"], exp: 0 };
		const svc = (name: string, service: WorkloadInput["service"]): WorkloadInput => ({
			name,
			kind: "service",
			service,
			resources: { cpu: 1, memory: "1Gi" }
		});
		const claim = async (name: string) =>
			(await store.get(COLLECTIONS.serviceClaims, name))?.value ?? null;

		it("claims the name derived from the module, in the create's transaction", async () => {
			const commit = jest.spyOn(repo, "commitCreates");
			const w = await lifecycle.create(svc("chat", { module: "llm/chat.service" }), alice);
			expect(w.service).toEqual({ module: "llm/chat.service", name: "chat" });
			expect(commit).toHaveBeenCalledTimes(1);
			expect(await claim("chat")).toEqual({ tenant: "acme", workloadIds: [w.id] });
		});

		it("lets one tenant run several workloads of a name, and releases it with the last", async () => {
			const [a, b] = await Promise.all([
				lifecycle.create(svc("a", { module: "echo" }), alice),
				lifecycle.create(svc("b", { module: "other", name: "echo" }), alice)
			]);
			expect(await claim("echo")).toEqual({
				tenant: "acme",
				workloadIds: [a.id, b.id].sort()
			});
			await lifecycle.remove(a.id, alice);
			expect(await claim("echo")).toEqual({ tenant: "acme", workloadIds: [b.id] });
			await lifecycle.remove(b.id, alice);
			expect(await claim("echo")).toBeNull();
			// Free again: another tenant may take it now.
			await expect(
				lifecycle.create(svc("e", { module: "echo" }), bob)
			).resolves.toMatchObject({
				tenant: "beta"
			});
		});

		it("answers 409 to another tenant, without naming the tenant that holds it", async () => {
			await lifecycle.create(svc("a", { module: "echo" }), alice);
			const err = await lifecycle
				.create(svc("b", { module: "mine", name: "echo" }), bob)
				.catch((e: unknown) => e);
			conflict(
				err,
				"Moleculer service 'echo' is already run by another tenant; choose another service name.",
				{ service: "echo" }
			);
			expect(await repo.nameTaken("beta", "b")).toBe(false);
			expect(await repo.usage("beta")).toMatchObject({ workloads: 0 });
		});

		it("answers 409 to two tenants asking at once for a free name, to all but one", async () => {
			const results = await Promise.allSettled([
				lifecycle.create(svc("a", { module: "echo" }), alice),
				lifecycle.create(svc("b", { module: "echo" }), bob)
			]);
			expect(results.map(r => r.status).sort()).toEqual(["fulfilled", "rejected"]);
			const winner = (
				results.find(r => r.status === "fulfilled") as PromiseFulfilledResult<Workload>
			).value;
			expect(await claim("echo")).toEqual({
				tenant: winner.tenant,
				workloadIds: [winner.id]
			});
		});

		it("refuses the name of one of the cluster's own services", async () => {
			const err = await lifecycle
				.create(svc("a", { module: "x", name: "scheduler" }), alice)
				.catch((e: unknown) => e);
			conflict(
				err,
				"Moleculer service 'scheduler' is one of the cluster's own services; choose another service name.",
				{ service: "scheduler" }
			);
		});
	});

	it("answers the earlier workload for a create with a used Idempotency-Key", async () => {
		const first = await lifecycle.create(input("a"), alice, "k1");
		expect((await lifecycle.create(input("a"), alice, "k1")).id).toBe(first.id);
	});

	it("gives up a create whose tenant's usage keeps changing, with 409", async () => {
		const commit = jest.spyOn(repo, "commitCreates").mockResolvedValue(false);
		const err = await lifecycle.create(input("a"), alice).catch((e: unknown) => e);
		conflict(err, "Too many concurrent changes for this tenant; try again.", {
			tenant: "acme"
		});
		expect(commit).toHaveBeenCalledTimes(20);
	});

	it("scales down: refunds, takes the replicas off their nodes, and places again", async () => {
		const w = await lifecycle.create(input("a", 3), alice);
		const doc = (await repo.get(w.id))!;
		Object.assign(doc.value.replicas[2], { node: "n2", fence: 1, state: "running" });
		await repo.write(doc.value, doc.version);
		const scaled = await lifecycle.scale(w.id, 1, alice);
		expect(scaled.replicas).toHaveLength(1);
		expect(scaled.events.at(-1)?.message).toBe("Scaled from 3 to 1 replicas.");
		expect(await repo.usage("acme")).toMatchObject({ cpu: 1, workloads: 1 });
		expect(released).toHaveBeenCalledWith([
			{ key: `${w.id}/2@1`, index: 2, fence: 1, node: "n2" }
		]);
		expect(synced).toHaveBeenCalledWith(["n2"]);
		expect(rounds.placeQuietly).toHaveBeenLastCalledWith(w.id);
	});

	it("gives up a scale whose workload keeps changing, with 409", async () => {
		const w = await lifecycle.create(input("a"), alice);
		const commit = jest.spyOn(repo, "commitWorkloads").mockResolvedValue(false);
		const err = await lifecycle.scale(w.id, 3, alice).catch((e: unknown) => e);
		conflict(err, "The workload kept changing; try again.", { id: w.id });
		expect(commit).toHaveBeenCalledTimes(20);
	});

	it("removes: refunds, frees the name, and asks for a round that stops its replicas", async () => {
		const w = await lifecycle.create(input("a"), alice);
		rounds.waiting.add(w.id);
		expect((await lifecycle.remove(w.id, alice)).id).toBe(w.id);
		expect(await repo.get(w.id)).toBeNull();
		expect(await repo.nameTaken("acme", "a")).toBe(false);
		expect(await repo.usage("acme")).toMatchObject({ cpu: 0, workloads: 0 });
		expect(rounds.waiting.has(w.id)).toBe(false);
		expect(rounds.requestPlacement).toHaveBeenCalledWith(undefined, []);
	});

	it("gives up a remove whose workload keeps changing, with 409", async () => {
		const w = await lifecycle.create(input("a"), alice);
		jest.spyOn(repo, "commitRemoves").mockResolvedValue(false);
		const err = await lifecycle.remove(w.id, alice).catch((e: unknown) => e);
		conflict(err, "The workload kept changing; try again.", { id: w.id });
	});

	describe("retry", () => {
		let retrying: WorkloadLifecycle;
		const bob: Principal = { sub: "bob", tenant: "beta", roles: ["operator"], exp: 0 };

		beforeEach(() => {
			// A real Recovery, so that the release is the one evacuations use.
			const queue = new SerialQueue();
			const recovery = new Recovery(
				repo,
				{ release: released } as unknown as Reserver,
				queue,
				rounds as unknown as PlacementRounds,
				{ syncNodes: synced } as unknown as AgentSync,
				{ auditInterval: 30_000, auditGrace: 60_000 },
				logger
			);
			retrying = new WorkloadLifecycle(
				repo,
				queue,
				rounds as unknown as PlacementRounds,
				recovery,
				{ syncNodes: synced } as unknown as AgentSync,
				logger
			);
		});

		/** A workload of three replicas on n1 and n2: 0 runs, 1 and 2 failed. */
		async function degraded(): Promise<Workload> {
			const w = await lifecycle.create(input("d", 3), alice);
			const doc = (await repo.get(w.id))!;
			const placed = [
				{ node: "n1", fence: 1, state: "running" },
				{
					node: "n1",
					fence: 2,
					state: "failed",
					restarts: 5,
					reason: "exited with code 1; gave up after 5 restarts"
				},
				{ node: "n2", fence: 3, state: "failed", reason: "command 'x' is not allowed" }
			];
			placed.forEach((p, i) => Object.assign(doc.value.replicas[i], p));
			await repo.write(doc.value, doc.version);
			return doc.value;
		}

		it("places the failed replicas anew with no restarts counted, and leaves the others", async () => {
			const w = await degraded();
			rounds.placeQuietly.mockClear();
			const after = await retrying.retry(w.id, alice);
			expect(after.replicas.map(r => [r.state, r.node, r.restarts])).toEqual([
				["running", "n1", 0],
				["pending", null, 0],
				["pending", null, 0]
			]);
			expect(after.replicas[1].reason).toBe("retried by alice");
			expect(after.events.at(-1)?.message).toBe(
				"Replica 2 left n2 (retried by alice); placing it again."
			);
			// The failed placements' reservations go back, their nodes forget them, and a round
			// places them (with new fences).
			expect(released.mock.calls.map(c => c[0])).toEqual([`${w.id}/1@2`, `${w.id}/2@3`]);
			expect([...synced.mock.calls.at(-1)![0]].sort()).toEqual(["n1", "n2"]);
			expect(rounds.waiting.has(w.id)).toBe(true);
			expect(rounds.placeQuietly).toHaveBeenCalledWith(w.id);
		});

		it("answers 409 when no replica failed, and changes nothing", async () => {
			const w = await lifecycle.create(input("ok", 1), alice);
			const version = (await repo.get(w.id))!.version;
			const err = await retrying.retry(w.id, alice).catch((e: unknown) => e);
			conflict(err, "Workload 'ok' has no failed replica to retry; it is pending.", {
				id: w.id,
				status: "pending"
			});
			expect((await repo.get(w.id))!.version).toBe(version);
		});

		it("does not find another tenant's workload", async () => {
			const w = await degraded();
			const err = await retrying.retry(w.id, bob).catch((e: unknown) => e);
			expect(err).toMatchObject({ code: 404 });
			expect((await repo.get(w.id))!.value.replicas[1].state).toBe("failed");
		});
	});

	it("records a replica's reported state, and ignores news of another placement", async () => {
		const w = running();
		await store.put(COLLECTIONS.workloads, w.id, w);
		await lifecycle.recordState(status({ fence: 0 }));
		await lifecycle.recordState(status({ nodeID: "n2" }));
		await lifecycle.recordState(status({ workloadId: "gone" }));
		expect((await repo.get(w.id))?.version).toBe(1);
		await lifecycle.recordState(status({}));
		expect((await repo.get(w.id))?.value.replicas[0].state).toBe("running");
	});

	it("decides a report that confirms the stored state on the cached copy, reading its version alone", async () => {
		const w = running();
		w.replicas[0].state = "running";
		await store.put(COLLECTIONS.workloads, w.id, w);
		await repo.allCached();
		const get = jest.spyOn(store, "get");
		await lifecycle.recordState(status({}));
		await lifecycle.recordState(status({ fence: 0 }));
		expect(get).not.toHaveBeenCalled();
		// Changed meanwhile (the copy is stale): read and written as before.
		w.replicas[0].state = "starting";
		await store.put(COLLECTIONS.workloads, w.id, w);
		await lifecycle.recordState(status({}));
		expect(get).toHaveBeenCalled();
		expect((await repo.get(w.id))?.value.replicas[0].state).toBe("running");
	});

	it("gives up quietly on a state whose workload keeps changing", async () => {
		const w = running();
		await store.put(COLLECTIONS.workloads, w.id, w);
		const write = jest.spyOn(repo, "write").mockResolvedValue(null);
		await expect(lifecycle.recordState(status({}))).resolves.toBeUndefined();
		expect(write).toHaveBeenCalledTimes(20);
	});
});
