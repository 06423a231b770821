/**
 * scheduler: workloads. Charges a tenant's quota, places each replica on a node by its
 * resources (services/scheduler/placement.ts), reserves atomically in the store, tells the
 * node's agent what to run, follows the replicas' states, and places again what a lost or
 * drained node held.
 *
 * Replicas are placed in rounds (like Kubernetes' scheduling loop): requests that arrive while a
 * round waits join it, and its replicas go to the Reserver (scheduler/reservations.ts) together,
 * which commits hundreds of reservations per store transaction, each node's allocation checked
 * by version: two schedulers (two processes on one Redis) can race, but only one of them can
 * win a GPU. Each workload is then written once per round (scheduler/assign.ts says in which
 * order, and what a crash between the two leaves). Within one process, changes run one at a
 * time, so that concurrent requests queue instead of retrying against each other.
 */
import crypto from "crypto";
import type { Context, Service, ServiceSchema } from "moleculer";
import PeriodicMixin, { PeriodicMethods } from "../mixins/periodic.mixin";
import StoreMixin from "../mixins/store.mixin";
import { ConflictError, NotFoundError } from "./shared/errors";
import { COLLECTIONS } from "./shared/collections";
import { EVENTS } from "./shared/events";
import type { DocWrite, Store, VersionCheck, Versioned } from "./shared/store";
import type { NodeInfo, ReplicaSpec, ReplicaStatus } from "./shared/types";
import { canSeeTenant, tenantFilter, type Principal } from "./shared/principal";
import {
	Allocation,
	allocationSummary,
	describeShortfall,
	emptyAllocation,
	PlacementRequest
} from "./scheduler/placement";
import {
	addEvent,
	newWorkload,
	lastFence,
	pendingReplica,
	workloadOf,
	replicasOn,
	replicaSpec,
	totalRequest,
	Workload,
	WorkloadInput,
	workloadView
} from "./scheduler/workload";
import {
	applyPlacements,
	applyReleases,
	audit,
	Outcome,
	Placed,
	placedReplicas,
	Wanted,
	wantedPlacements
} from "./scheduler/assign";
import { Reserver } from "./scheduler/reservations";
import { Gathered, Gatherer } from "./scheduler/gather";
import { addUsage, checkQuota, emptyUsage, Quota, TenantUsage } from "./scheduler/quota";
import { page, pageParams, quantity } from "./shared/params";

/** Retries of a transaction that lost a race with another scheduler. */
const MAX_CONFLICTS = 20;

/** ms a shape's shortfall reason is reused (see the shortfall method). */
const SHORTFALL_TTL = 1000;

/** Placements of one round in flight at once: enough for two of the Reserver's full batches. */
const PLACE_WINDOW = 8192;

interface Round {
	ids: Set<string>;
	/** Every waiting workload, not only `ids`. */
	all: boolean;
	/** What to sync besides the round's own placements: replicas removed from nodes. */
	changes: Changes;
	/** Resolves to the workloads the round wrote, as written. */
	done: Promise<Map<string, Workload>>;
}

interface SchedulerSettings {
	/** ms between two reconcile rounds (pending placement, agent sync). */
	reconcileInterval: number;
	/** ms between two audits of the reservations against the workloads (see assign.ts). */
	auditInterval: number;
	/**
	 * A reservation no replica names is given back only when older than this (ms): a placement
	 * round writes its workloads well within it.
	 */
	auditGrace: number;
	/**
	 * ms a placement round's syncs wait, to go out with those of the rounds that follow: under
	 * churn a busy node is sent one list per while, not one per round.
	 */
	syncDelay: number;
	/**
	 * ms between two announcements of a node's allocation (node.allocated): a busy node's
	 * allocation changes with every group commit, and the cluster hears its latest once per while.
	 */
	announceDelay: number;
}

interface Meta {
	user?: Principal;
	idempotencyKey?: string;
	/** moleculer-web answers with this HTTP status. */
	$statusCode?: number;
	/** With 201: where the new resource is (the Location header). */
	$location?: string;
}

interface CreateRequest {
	input: WorkloadInput;
	user: Principal;
	/** The request's Idempotency-Key. */
	key?: string;
}

interface RemoveRequest {
	id: string;
	/** Who asks: another tenant's workload is not found. */
	user?: Principal;
}

/** A deleted workload, its placements to take off their nodes, and their release. */
interface Removed {
	w: Workload;
	gone: Placed[];
	released: Promise<void>;
}

/** A workload to create, with its Idempotency-Key and the version that key's record must have. */
interface Made {
	w: Workload;
	key?: string;
	keyVersion: number;
}

/** A tenant's quota, and its usage with the changes planned so far (`next`). */
interface TenantState {
	quota?: Quota;
	/** The usage document's version as read (0: none yet). */
	version: number;
	next: TenantUsage;
}

interface SchedulerThis extends Service<SchedulerSettings>, PeriodicMethods {
	store: Store;
	reserver: Reserver;
	queue: Promise<unknown>;
	/** The placement round that still takes requests (see requestPlacement). */
	round: Round | null;
	/** Workloads with pending replicas, as far as this scheduler knows (all: at reconcile). */
	waiting: Set<string>;
	serial<T>(fn: () => Promise<T>): Promise<T>;
	byIdempotencyKey(
		tenant: string,
		key?: string
	): Promise<{ earlier: Workload | null; keyVersion: number }>;
	/** A workload's place in the FIFO order: the clock in µs, and never the same twice. */
	nextSeq(now: number): number;
	draftWorkload(input: WorkloadInput, user: Principal, now: number): Workload;
	lastSeq: number;
	commitWorkloads(
		changes: Array<{ doc: Versioned<Workload>; next: Workload | null }>,
		tenants: Map<string, TenantState>
	): Promise<boolean>;
	commitRemoves(docs: Versioned<Workload>[]): Promise<boolean>;
	load(id: string, user: Principal | undefined): Promise<Versioned<Workload>>;
	createWorkload(input: WorkloadInput, user: Principal, key?: string): Promise<Workload>;
	/** Creates waiting to be made together (createTogether). */
	creates: Gatherer<CreateRequest, Workload>;
	createTogether(
		group: Gathered<CreateRequest, Workload>[]
	): Promise<Gathered<CreateRequest, Workload>[]>;
	createOne(req: CreateRequest): Promise<Workload>;
	commitCreates(made: Made[], tenants: Map<string, TenantState>): Promise<boolean>;
	tenantState(tenant: string): Promise<TenantState>;
	/** Deletes waiting to be made together (removeTogether). */
	removes: Gatherer<RemoveRequest, Removed>;
	removeTogether(
		group: Gathered<RemoveRequest, Removed>[]
	): Promise<Gathered<RemoveRequest, Removed>[]>;
	removeOne(req: RemoveRequest): Promise<Removed>;
	forget(w: Workload): Removed;
	requestPlacement(ids?: string[], gone?: Placed[]): Promise<Map<string, Workload>>;
	quietly(what: string, fn: () => Promise<unknown>): Promise<void>;
	placeQuietly(id: string): Promise<Workload | undefined>;
	releaseForgotten(placed: Placed[]): Promise<void>;
	syncSoon(changes: Changes): void;
	syncWorkloads(changes: Changes): Promise<void>;
	tellAgent(
		nodeID: string,
		action: "agent.sync" | "agent.syncWorkloads",
		params: Record<string, unknown>
	): void;
	toSync: Changes;
	syncTimer: NodeJS.Timeout | null;
	loadInventory(): Promise<void>;
	placePending(ids: string[], written?: Map<string, Workload>): Promise<Changes>;
	roundWriter(changes: Changes, written?: Map<string, Workload>): (plan: Plan) => Promise<void>;
	readCached(ids: string[]): Promise<Array<Workload | null>>;
	/** What readCached read last, by workload id; never handed out to be changed. */
	cache: Map<string, Versioned<Workload>>;
	/** Node events came since the Reserver was told the inventory (and at every reconcile). */
	inventoryStale: boolean;
	/** When the last audit ran (0: never, so the first reconcile audits). */
	auditedAt: number;
	/** Every node's allocation was announced once, after the first reconcile. */
	announcedAll: boolean;
	releaseReplicas(
		w: Workload,
		pick: (w: Workload) => Placed[],
		reason: string,
		pend: boolean
	): Promise<Set<string>>;
	evacuate(nodeID: string, reason: string, lost: boolean): Promise<void>;
	syncNodes(nodeIDs: Iterable<string>): Promise<void>;
	reconcile(): Promise<void>;
	announceAllocation(nodeID: string, a: Allocation): void;
	/** Allocations committed since the last announcement, by node (see announceDelay). */
	toAnnounce: Map<string, Allocation>;
	announceTimer: NodeJS.Timeout | null;
	/** Why a request of a shape does not fit, and when that was found (see shortfall). */
	shortfalls: Map<string, { reason: string; at: number }>;
	shortfall(w: Workload): string;
	/**
	 * Workloads this scheduler has just created, as written: their first placement round takes
	 * them from here instead of reading them back (a version check still guards the write).
	 */
	created: Map<string, Versioned<Workload>>;
	nextGeneration(): number;
	generation: number;
}

const resourcesSchema = {
	type: "object",
	strict: true,
	props: {
		cpu: quantity(),
		memory: quantity(),
		gpu: { type: "number", integer: true, min: 0, max: 64, optional: true },
		gpuMemory: quantity(true)
	}
};

const labelMap = {
	type: "record",
	key: { type: "string", max: 128 },
	value: { type: "string", max: 256 }
};

const SchedulerService: ServiceSchema<SchedulerSettings, SchedulerThis> = {
	name: "scheduler",
	mixins: [StoreMixin(), PeriodicMixin()],

	settings: {
		reconcileInterval: 2000,
		auditInterval: 30_000,
		auditGrace: 60_000,
		syncDelay: 50,
		announceDelay: 200
	},

	actions: {
		/** Creates a workload and places its replicas now where they fit. */
		create: {
			params: {
				$$strict: true,
				name: {
					type: "string",
					min: 1,
					max: 128,
					pattern: /^[a-z0-9]([a-z0-9._-]*[a-z0-9])?$/i
				},
				kind: { type: "enum", values: ["service", "process"] },
				service: {
					type: "object",
					optional: true,
					strict: true,
					props: { module: { type: "string", min: 1, max: 256 } }
				},
				process: {
					type: "object",
					optional: true,
					strict: true,
					props: {
						command: { type: "string", min: 1, max: 1024 },
						args: {
							type: "array",
							items: { type: "string", max: 4096 },
							max: 256,
							optional: true
						},
						env: { ...labelMap, optional: true }
					}
				},
				resources: resourcesSchema,
				replicas: { type: "number", integer: true, min: 0, max: 1000, optional: true },
				priority: { type: "number", integer: true, min: -1000, max: 1000, optional: true },
				placement: {
					type: "object",
					optional: true,
					strict: true,
					props: {
						strategy: { type: "enum", values: ["binpack", "spread"], optional: true },
						nodeSelector: { ...labelMap, optional: true },
						antiAffinity: { type: "boolean", optional: true }
					}
				},
				restart: {
					type: "object",
					optional: true,
					strict: true,
					props: {
						policy: {
							type: "enum",
							values: ["always", "on-failure", "never"],
							optional: true
						},
						maxRestarts: {
							type: "number",
							integer: true,
							min: 0,
							max: 1000,
							optional: true
						}
					}
				}
			},
			async handler(this: SchedulerThis, ctx: Context<WorkloadInput, Meta>) {
				const w = await this.createWorkload(
					ctx.params,
					ctx.meta.user!,
					ctx.meta.idempotencyKey
				);
				ctx.meta.$statusCode = 201;
				ctx.meta.$location = `/api/v1/workloads/${w.id}`;
				return workloadView(w, true);
			}
		},

		/** The caller's tenant's workloads; an admin sees all, or one tenant's with ?tenant=. */
		list: {
			params: {
				$$strict: true,
				tenant: { type: "string", max: 128, optional: true },
				...pageParams(10000)
			},
			async handler(
				this: SchedulerThis,
				ctx: Context<{ tenant?: string; limit?: number; offset?: number }, Meta>
			) {
				const tenant = tenantFilter(ctx.meta.user!, ctx.params.tenant);
				const all = (await this.store.list<Workload>(COLLECTIONS.workloads))
					.map(d => d.value)
					.filter(w => !tenant || w.tenant === tenant)
					.sort((a, b) => a.seq - b.seq);
				const { items, total } = page(all, ctx.params);
				return { items: items.map(w => workloadView(w)), total };
			}
		},

		/** One workload with its replicas and events. */
		get: {
			params: { $$strict: true, id: { type: "string", min: 1, max: 64 } },
			async handler(this: SchedulerThis, ctx: Context<{ id: string }, Meta>) {
				return workloadView((await this.load(ctx.params.id, ctx.meta.user)).value, true);
			}
		},

		/** Changes the number of replicas; the quota is charged or refunded. */
		scale: {
			params: {
				$$strict: true,
				id: { type: "string", min: 1, max: 64 },
				replicas: { type: "number", integer: true, min: 0, max: 1000 }
			},
			async handler(
				this: SchedulerThis,
				ctx: Context<{ id: string; replicas: number }, Meta>
			) {
				await this.load(ctx.params.id, ctx.meta.user);
				await this.serial(async () => {
					for (let attempt = 0; attempt < MAX_CONFLICTS; attempt++) {
						const doc = await this.load(ctx.params.id, ctx.meta.user);
						const from = doc.value.replicas.length;
						const to = ctx.params.replicas;
						if (from === to) return;
						const now = Date.now();
						let gone: Placed[] = [];
						const tenant = doc.value.tenant;
						const t = await this.tenantState(tenant);
						if (to < from) {
							gone = placedReplicas(doc.value, range(to, from));
							doc.value.fence = lastFence(doc.value);
							doc.value.replicas = doc.value.replicas.slice(0, to);
						} else {
							const more = totalRequest(doc.value.resources, to - from);
							checkQuota(tenant, t.quota, t.next, more, 0);
							for (let i = from; i < to; i++)
								doc.value.replicas.push(
									pendingReplica(i, lastFence(doc.value), now)
								);
						}
						addEvent(doc.value, {
							at: now,
							type: "scaled",
							message: `Scaled from ${from} to ${to} replicas.`
						});
						const change = to > from ? 1 : -1;
						const charge = totalRequest(doc.value.resources, Math.abs(to - from));
						t.next = addUsage(t.next, charge, change, 0);
						const changes = [{ doc, next: doc.value }];
						if (!(await this.commitWorkloads(changes, new Map([[tenant, t]])))) {
							await backoff(attempt);
							continue;
						}
						await this.releaseForgotten(gone);
						await this.syncNodes(gone.map(p => p.node));
						return;
					}
					throw new ConflictError("The workload kept changing; try again.", {
						id: ctx.params.id
					});
				});
				await this.placeQuietly(ctx.params.id);
				return workloadView((await this.load(ctx.params.id, ctx.meta.user)).value, true);
			}
		},

		/** Stops every replica, gives back their resources and the quota, and forgets it. */
		remove: {
			params: { $$strict: true, id: { type: "string", min: 1, max: 64 } },
			async handler(this: SchedulerThis, ctx: Context<{ id: string }, Meta>) {
				const { w, gone, released } = await this.removes.add({
					id: ctx.params.id,
					user: ctx.meta.user
				});
				// Deleted already: a release that fails is left to the audit, not answered as an error.
				await released.catch((err: Error) =>
					this.logger.warn(
						`Workload '${w.name}' deleted; its reservations go back at the next audit:`,
						err.message
					)
				);
				// Its nodes stop its replicas, and freed capacity may fit what waits: both in the
				// next round, with whatever else comes meanwhile.
				this.requestPlacement(undefined, gone).catch((err: Error) =>
					this.logger.warn("Placing what waits failed:", err.message)
				);
				return { ...workloadView(w), status: "stopped" };
			}
		},

		/** Recent output of a process workload's replicas, from their agents. */
		logs: {
			params: {
				$$strict: true,
				id: { type: "string", min: 1, max: 64 },
				replica: { type: "number", integer: true, min: 0, optional: true, convert: true },
				limit: {
					type: "number",
					integer: true,
					min: 1,
					max: 1000,
					optional: true,
					convert: true
				}
			},
			async handler(
				this: SchedulerThis,
				ctx: Context<{ id: string; replica?: number; limit?: number }, Meta>
			) {
				const w = (await this.load(ctx.params.id, ctx.meta.user)).value;
				const replicas = w.replicas.filter(
					r =>
						r.node &&
						(ctx.params.replica === undefined || r.index === ctx.params.replica)
				);
				const items = await Promise.all(
					replicas.map(async r => {
						try {
							const lines: unknown[] = await ctx.call(
								"agent.logs",
								{
									workloadId: w.id,
									replica: r.index,
									limit: ctx.params.limit ?? 200
								},
								{ nodeID: r.node! }
							);
							return { replica: r.index, node: r.node, lines };
						} catch (err) {
							return {
								replica: r.index,
								node: r.node,
								lines: [],
								error: (err as Error).message
							};
						}
					})
				);
				return { items, total: items.length };
			}
		},

		/** Quota use of a tenant (for the tenants API). */
		usage: {
			visibility: "public",
			params: { tenant: { type: "string", min: 1 } },
			async handler(this: SchedulerThis, ctx: Context<{ tenant: string }>) {
				return (
					(await this.store.get<TenantUsage>(COLLECTIONS.usage, ctx.params.tenant))
						?.value ?? emptyUsage()
				);
			}
		},

		/** The replicas placed on a node and the node's allocation, exact (for nodes.get). */
		placedOn: {
			visibility: "public",
			params: { node: { type: "string", min: 1 } },
			async handler(this: SchedulerThis, ctx: Context<{ node: string }>) {
				const node = ctx.params.node;
				const [docs, allocation] = await Promise.all([
					this.store.list<Workload>(COLLECTIONS.workloads),
					this.store.get<Allocation>(COLLECTIONS.allocations, node)
				]);
				return {
					workloads: docs.flatMap(({ value: w }) => replicasOn(w, node)),
					allocated: allocationSummary(allocation?.value ?? emptyAllocation())
				};
			}
		},

		/** Every node's allocation as committed (for an inventory that starts after us). */
		allocations: {
			visibility: "public",
			async handler(this: SchedulerThis) {
				const docs = await this.store.list<Allocation>(COLLECTIONS.allocations);
				return {
					items: docs.map(d => ({ nodeID: d.id, allocated: allocationSummary(d.value) }))
				};
			}
		},

		/** Every tenant's workloads with their status, without events (for the monitor). */
		states: {
			visibility: "public",
			async handler(this: SchedulerThis) {
				const docs = await this.store.list<Workload>(COLLECTIONS.workloads);
				return { items: docs.map(d => workloadView(d.value)) };
			}
		}
	},

	events: {
		[EVENTS.nodeDown]: {
			async handler(this: SchedulerThis, ctx: Context<NodeInfo>) {
				this.inventoryStale = true;
				await this.quietly(`Moving replicas off ${ctx.params.id}`, () =>
					this.evacuate(ctx.params.id, `node ${ctx.params.id} is down`, true)
				);
			}
		},
		[EVENTS.nodeUp]: {
			async handler(this: SchedulerThis, ctx: Context<NodeInfo>) {
				this.inventoryStale = true;
				// A returning node is told what it should run: replicas moved away meanwhile stop.
				await this.quietly(`Syncing returning node ${ctx.params.id}`, async () => {
					await this.serial(async () => this.syncNodes([ctx.params.id]));
					await this.requestPlacement();
				});
			}
		},
		[EVENTS.nodeUpdated]: {
			async handler(this: SchedulerThis, ctx: Context<NodeInfo>) {
				this.inventoryStale = true;
				await this.quietly(`Following node ${ctx.params.id}`, () =>
					ctx.params.status === "draining"
						? this.evacuate(ctx.params.id, `node ${ctx.params.id} is draining`, false)
						: this.requestPlacement()
				);
			}
		},
		[EVENTS.replicaState]: {
			async handler(this: SchedulerThis, ctx: Context<ReplicaStatus>) {
				const s = ctx.params;
				for (let attempt = 0; attempt < MAX_CONFLICTS; attempt++) {
					const doc = await this.store.get<Workload>(COLLECTIONS.workloads, s.workloadId);
					const r = doc?.value.replicas[s.replica];
					// News of an older placement, or from a node the replica has left: ignore.
					if (!doc || !r || r.fence !== s.fence || r.node !== s.nodeID) return;
					if (r.state === s.state && r.restarts === s.restarts && r.reason === s.reason)
						return;
					const w = doc.value;
					const changed = r.state !== s.state;
					Object.assign(r, { state: s.state, restarts: s.restarts, since: s.at });
					if (s.reason) r.reason = s.reason;
					else delete r.reason;
					if (changed) {
						const type =
							s.state === "running"
								? "started"
								: s.state === "failed"
									? "failed"
									: s.state === "stopped"
										? "stopped"
										: null;
						if (type)
							addEvent(w, {
								at: s.at,
								type,
								replica: s.replica,
								node: s.nodeID,
								message: `Replica ${s.replica} ${s.state} on ${s.nodeID}${s.reason ? `: ${s.reason}` : ""}.`
							});
					}
					if (
						(await this.store.cas(COLLECTIONS.workloads, w.id, w, doc.version)) !== null
					)
						return;
					await backoff(attempt);
				}
			}
		}
	},

	methods: {
		/**
		 * Writes workloads (null: deletes one, and frees its name) and their tenants' usage in
		 * one transaction, each checked at the version read: false when any changed meanwhile.
		 */
		async commitWorkloads(
			this: SchedulerThis,
			changes: Array<{ doc: Versioned<Workload>; next: Workload | null }>,
			tenants: Map<string, TenantState>
		) {
			const checks: VersionCheck[] = [];
			const writes: DocWrite[] = [];
			for (const { doc, next } of changes) {
				const w = doc.value;
				checks.push({ collection: COLLECTIONS.workloads, id: w.id, version: doc.version });
				writes.push({ collection: COLLECTIONS.workloads, id: w.id, value: next });
				if (!next)
					writes.push({
						collection: COLLECTIONS.names,
						id: `${w.tenant}/${w.name}`,
						value: null
					});
			}
			addUsageWrites(tenants, checks, writes);
			return this.store.transact(checks, writes);
		},

		/** Deletes workloads and refunds their tenants, in one transaction (commitWorkloads). */
		async commitRemoves(this: SchedulerThis, docs: Versioned<Workload>[]) {
			const tenants = new Map<string, TenantState>();
			for (const { value: w } of docs) {
				const t = tenants.get(w.tenant) ?? (await this.tenantState(w.tenant));
				tenants.set(w.tenant, t);
				t.next = addUsage(t.next, totalRequest(w.resources, w.replicas.length), -1, -1);
			}
			return this.commitWorkloads(
				docs.map(doc => ({ doc, next: null })),
				tenants
			);
		},

		/**
		 * The workload an earlier create with this Idempotency-Key made, if it is still there,
		 * and the version of the key's record (0: none). A key whose workload was deleted since
		 * is taken again by the next create with it (checked at that version).
		 */
		async byIdempotencyKey(this: SchedulerThis, tenant: string, key?: string) {
			if (!key) return { earlier: null, keyVersion: 0 };
			const seen = await this.store.get<{ id: string }>(
				COLLECTIONS.idempotency,
				`${tenant}/${key}`
			);
			const existing =
				seen && (await this.store.get<Workload>(COLLECTIONS.workloads, seen.value.id));
			return { earlier: existing ? existing.value : null, keyVersion: seen?.version ?? 0 };
		},

		/** Runs changes of this process one after another. */
		serial<T>(this: SchedulerThis, fn: () => Promise<T>): Promise<T> {
			const run = this.queue.then(fn, fn);
			this.queue = run.catch(() => undefined);
			return run;
		},

		/** A workload the caller may see: 404 for another tenant's, as for a missing one. */
		async load(this: SchedulerThis, id: string, user: Principal | undefined) {
			const doc = await this.store.get<Workload>(COLLECTIONS.workloads, id);
			if (!doc || (user && !canSeeTenant(user, doc.value.tenant)))
				throw new NotFoundError("Workload", id);
			return doc;
		},

		async createWorkload(
			this: SchedulerThis,
			input: WorkloadInput,
			user: Principal,
			key?: string
		) {
			const created = await this.creates.add({ input, user, key });
			// Nothing else changed, so only the new workload can have become placeable. What the
			// round wrote of it is what the store holds (another round may have written it).
			const written = await this.placeQuietly(created.id);
			// Its round took it, unless the round failed first.
			this.created.delete(created.id);
			if (written) return written;
			return (
				(await this.store.get<Workload>(COLLECTIONS.workloads, created.id))?.value ??
				created
			);
		},

		/**
		 * Creates a group of workloads (see gather.ts) in one transaction. A request that needs
		 * more than that (a twin in the group by name or key, a taken name) and every request
		 * of a group whose transaction lost a race are left to createOne, after it.
		 */
		async createTogether(this: SchedulerThis, group: Gathered<CreateRequest, Workload>[]) {
			const now = Date.now();
			const later: Gathered<CreateRequest, Workload>[] = [];
			const seen = new Set<string>();
			/** Tenants as read; `tenants`: those the group creates for, to commit. */
			const read = new Map<string, TenantState>();
			const tenants = new Map<string, TenantState>();
			const plan: Array<{ g: Gathered<CreateRequest, Workload>; made: Made }> = [];
			for (const g of group) {
				const { input, user, key } = g.item;
				const tenant = user.tenant;
				const name = `${tenant}/${input.name}`;
				const idem = key && `key:${tenant}/${key}`;
				if (seen.has(name) || (idem && seen.has(idem))) {
					later.push(g);
					continue;
				}
				seen.add(name);
				if (idem) seen.add(idem);
				try {
					const { earlier, keyVersion } = await this.byIdempotencyKey(tenant, key);
					if (earlier) {
						g.resolve(earlier);
						continue;
					}
					if (await this.store.get(COLLECTIONS.names, name)) {
						later.push(g);
						continue;
					}
					const t = read.get(tenant) ?? (await this.tenantState(tenant));
					read.set(tenant, t);
					const w = this.draftWorkload(input, user, now);
					const charge = totalRequest(w.resources, w.replicas.length);
					try {
						checkQuota(tenant, t.quota, t.next, charge, 1);
					} catch (err) {
						// Over quota only with the group's own creates, which may not commit: asked
						// again after them.
						if (tenants.has(tenant)) {
							later.push(g);
							continue;
						}
						throw err;
					}
					t.next = addUsage(t.next, charge, 1, 1);
					tenants.set(tenant, t);
					plan.push({ g, made: { w, key, keyVersion } });
				} catch (err) {
					g.reject(err);
				}
			}
			if (plan.length === 0) return later;
			const committed = await this.commitCreates(
				plan.map(p => p.made),
				tenants
			);
			if (!committed)
				return [...plan.map(p => p.g), ...later].sort((a, b) => a.index - b.index);
			for (const { g, made } of plan) g.resolve(made.w);
			return later;
		},

		/**
		 * Writes new workloads with their names (and idempotency keys) and their tenants' usage
		 * in one transaction: false when a name or key was taken, or a usage changed, meanwhile.
		 */
		async commitCreates(this: SchedulerThis, made: Made[], tenants: Map<string, TenantState>) {
			const checks: VersionCheck[] = [];
			const writes: DocWrite[] = [];
			for (const { w, key, keyVersion } of made) {
				const name = `${w.tenant}/${w.name}`;
				checks.push({ collection: COLLECTIONS.names, id: name, version: 0 });
				writes.push(
					{ collection: COLLECTIONS.workloads, id: w.id, value: w },
					{ collection: COLLECTIONS.names, id: name, value: { id: w.id } }
				);
				if (key) {
					const id = `${w.tenant}/${key}`;
					checks.push({ collection: COLLECTIONS.idempotency, id, version: keyVersion });
					writes.push({ collection: COLLECTIONS.idempotency, id, value: { id: w.id } });
				}
			}
			addUsageWrites(tenants, checks, writes);
			if (!(await this.store.transact(checks, writes))) return false;
			for (const { w } of made) {
				this.logger.info(`Workload '${w.name}' (${w.id}) of tenant '${w.tenant}' created.`);
				this.created.set(w.id, { value: w, version: 1 });
			}
			return true;
		},

		/** Deletes a group of workloads in one transaction, as createTogether creates. */
		async removeTogether(this: SchedulerThis, group: Gathered<RemoveRequest, Removed>[]) {
			const later: Gathered<RemoveRequest, Removed>[] = [];
			const seen = new Set<string>();
			const plan: Array<{ g: Gathered<RemoveRequest, Removed>; doc: Versioned<Workload> }> =
				[];
			for (const g of group) {
				// A second delete of one workload answers after the first: 404.
				if (seen.has(g.item.id)) {
					later.push(g);
					continue;
				}
				seen.add(g.item.id);
				try {
					plan.push({ g, doc: await this.load(g.item.id, g.item.user) });
				} catch (err) {
					g.reject(err);
				}
			}
			if (plan.length === 0) return later;
			if (!(await this.commitRemoves(plan.map(p => p.doc))))
				return [...plan.map(p => p.g), ...later].sort((a, b) => a.index - b.index);
			for (const { g, doc } of plan) g.resolve(this.forget(doc.value));
			return later;
		},

		/** Deletes one workload, trying again while it or its tenant's usage changes. */
		async removeOne(this: SchedulerThis, { id, user }: RemoveRequest) {
			for (let attempt = 0; attempt < MAX_CONFLICTS; attempt++) {
				const doc = await this.load(id, user);
				if (await this.commitRemoves([doc])) return this.forget(doc.value);
				await backoff(attempt);
			}
			throw new ConflictError("The workload kept changing; try again.", { id });
		},

		/** After a workload's delete: its replicas to take off their nodes, and their release. */
		forget(this: SchedulerThis, w: Workload): Removed {
			const gone = placedReplicas(w, range(0, w.replicas.length));
			this.waiting.delete(w.id);
			// Not awaited in the queue: the releases of the deletes that follow join the same
			// group commit.
			return { w, gone, released: this.releaseForgotten(gone) };
		},

		/** A tenant's quota and usage as the store has them now. */
		async tenantState(this: SchedulerThis, tenant: string): Promise<TenantState> {
			const [usage, doc] = await Promise.all([
				this.store.get<TenantUsage>(COLLECTIONS.usage, tenant),
				this.store.get<{ quota?: Quota }>(COLLECTIONS.tenants, tenant)
			]);
			return {
				quota: doc?.value.quota,
				version: usage?.version ?? 0,
				next: usage?.value ?? emptyUsage()
			};
		},

		/** Creates one workload, trying again while other schedulers change its tenant's usage. */
		async createOne(this: SchedulerThis, { input, user, key }: CreateRequest) {
			const tenant = user.tenant;
			for (let attempt = 0; attempt < MAX_CONFLICTS; attempt++) {
				const { earlier, keyVersion } = await this.byIdempotencyKey(tenant, key);
				if (earlier) return earlier;
				const now = Date.now();
				const w = this.draftWorkload(input, user, now);
				const name = `${tenant}/${w.name}`;
				if (await this.store.get(COLLECTIONS.names, name)) {
					// A twin request with this key (sent to another scheduler) may have just made it.
					const twin = (await this.byIdempotencyKey(tenant, key)).earlier;
					if (twin) return twin;
					throw new ConflictError(`A workload named '${w.name}' exists already.`, {
						name: w.name
					});
				}
				const t = await this.tenantState(tenant);
				const charge = totalRequest(w.resources, w.replicas.length);
				checkQuota(tenant, t.quota, t.next, charge, 1);
				t.next = addUsage(t.next, charge, 1, 1);
				if (await this.commitCreates([{ w, key, keyVersion }], new Map([[tenant, t]])))
					return w;
				// Another scheduler wrote the tenant's usage first: back off a random while,
				// so that two busy schedulers take turns instead of colliding again.
				await backoff(attempt);
			}
			throw new ConflictError("Too many concurrent changes for this tenant; try again.", {
				tenant
			});
		},

		/**
		 * Runs an event's work: a failure is logged, because nobody waits for an event handler's
		 * answer (and an emitter that does not catch would leave the rejection unhandled).
		 */
		async quietly(this: SchedulerThis, what: string, fn: () => Promise<unknown>) {
			try {
				await fn();
			} catch (err) {
				this.logger.warn(`${what} failed; reconcile tries again:`, (err as Error).message);
			}
		},

		/**
		 * Places a workload whose change is committed already: a failure is logged, not answered
		 * (the change stands, and reconcile places it). Resolves to the workload as the round
		 * wrote it, if it did.
		 */
		async placeQuietly(this: SchedulerThis, id: string) {
			try {
				return (await this.requestPlacement([id])).get(id);
			} catch (err) {
				this.logger.warn(
					`Placing workload ${id} failed; reconcile tries again:`,
					(err as Error).message
				);
				return undefined;
			}
		},

		/**
		 * Asks for a placement round: of these workloads, or (none given) of every workload this
		 * scheduler knows to wait. Requests that come while a round waits in the queue join it,
		 * so that concurrent creates are placed together, in the Reserver's group commits.
		 * Resolves when the round that took the request is done.
		 */
		requestPlacement(this: SchedulerThis, ids?: string[], gone: Placed[] = []) {
			let round = this.round;
			if (!round) {
				const next: Round = {
					ids: new Set(),
					all: false,
					changes: new Map(),
					done: Promise.resolve(new Map())
				};
				next.done = this.serial(async () => {
					if (this.round === next) this.round = null;
					const wanted = next.all ? [...this.waiting, ...next.ids] : [...next.ids];
					const written = new Map<string, Workload>();
					// What removes took off nodes is told even when placing fails.
					const changes: Changes = new Map();
					try {
						for (const [nodeID, ids] of await this.placePending(wanted, written))
							for (const id of ids) addChange(changes, nodeID, id);
					} finally {
						for (const [nodeID, ids] of next.changes)
							for (const id of ids) addChange(changes, nodeID, id);
						this.syncSoon(changes);
					}
					return written;
				});
				round = this.round = next;
			}
			if (ids) for (const id of ids) round.ids.add(id);
			else round.all = true;
			for (const p of gone) addChange(round.changes, p.node, workloadOf(p.key));
			return round.done;
		},

		/**
		 * Tells the nodes the new lists of these workloads in syncDelay ms, with every other
		 * change made meanwhile.
		 */
		syncSoon(this: SchedulerThis, changes: Changes) {
			for (const [nodeID, ids] of changes)
				for (const id of ids) addChange(this.toSync, nodeID, id);
			if (this.syncTimer || this.toSync.size === 0) return;
			this.syncTimer = setTimeout(() => {
				this.syncTimer = null;
				const due = this.toSync;
				this.toSync = new Map();
				this.serial(() => this.syncWorkloads(due)).catch((err: Error) =>
					this.logger.warn("Syncing nodes failed:", err.message)
				);
			}, this.settings.syncDelay);
		},

		/** Sends each node its replicas of the workloads that changed there (sync-order.ts). */
		async syncWorkloads(this: SchedulerThis, changes: Changes) {
			// Only nodes connected now: one that is away gets its whole list when it is back.
			const nodes = [...changes.keys()].filter(
				id => this.broker.registry.nodes.get(id)?.available
			);
			const ids = [...new Set(nodes.flatMap(n => [...changes.get(n)!]))];
			if (ids.length === 0) return;
			// Numbered before reading: a list never holds less than its number promises.
			const generation = this.nextGeneration();
			const docs = await this.readCached(ids);
			const byId = new Map(ids.map((id, i) => [id, docs[i]]));
			for (const nodeID of nodes) {
				const workloads = [...changes.get(nodeID)!].map(workloadId => {
					const w = byId.get(workloadId);
					return {
						workloadId,
						replicas: w
							? w.replicas.filter(r => r.node === nodeID).map(r => replicaSpec(w, r))
							: []
					};
				});
				this.tellAgent(nodeID, "agent.syncWorkloads", { workloads, generation });
			}
		},

		/**
		 * Sends a node's agent a list, not awaited: a node that died a moment ago answers only at
		 * the timeout, and the scheduling queue must not wait for it. A node that is away gets
		 * its list when it comes back (node.up), and the reconcile loop repeats every list.
		 */
		tellAgent(
			this: SchedulerThis,
			nodeID: string,
			action: "agent.sync" | "agent.syncWorkloads",
			params: Record<string, unknown>
		) {
			this.broker
				.call(action, params, { nodeID, retries: 0, timeout: 5000 })
				.catch((err: Error) =>
					this.logger.debug(`Could not sync node '${nodeID}':`, err.message)
				);
		},

		/** Tells the Reserver the inventory's nodes: their status, capacity and labels. */
		async loadInventory(this: SchedulerThis) {
			const { items } = (await this.broker.call("nodes.list", { limit: 10000 })) as {
				items: NodeInfo[];
			};
			this.inventoryStale = false;
			this.shortfalls.clear();
			const seen = new Set<string>();
			for (const n of items) {
				seen.add(n.id);
				this.reserver.setNode({
					id: n.id,
					status: n.status,
					labels: n.labels,
					capacity: n.capacity
				});
			}
			for (const n of [...this.reserver.index.values()])
				if (!seen.has(n.id)) this.reserver.removeNode(n.id);
		},

		/**
		 * Places every pending replica of these workloads that fits now, highest priority first
		 * and FIFO within a priority, and records the reason on those that do not fit. The
		 * replicas go to the Reserver together (many per store transaction); each workload is
		 * then written once. Resolves to the nodes to sync.
		 */
		async placePending(this: SchedulerThis, ids: string[], written?: Map<string, Workload>) {
			const changes: Changes = new Map();
			const docs: Versioned<Workload>[] = [];
			const read = await Promise.all(
				ids.map(id => {
					const doc = this.created.get(id);
					this.created.delete(id);
					return doc ?? this.store.get<Workload>(COLLECTIONS.workloads, id);
				})
			);
			for (const [i, doc] of read.entries()) {
				if (doc?.value.replicas.some(r => r.state === "pending")) docs.push(doc);
				else this.waiting.delete(ids[i]);
			}
			if (docs.length === 0) return changes;
			docs.sort((a, b) => b.value.priority - a.value.priority || a.value.seq - b.value.seq);
			if (this.inventoryStale) await this.loadInventory();
			const plans: Plan[] = docs.map(doc => ({ doc, outcomes: [] }));
			const writer = this.roundWriter(changes, written);
			// A bounded number of placements in flight: each waits for about one batch, not for
			// the whole round.
			let inFlight: Promise<void>[] = [];
			// Each workload is written as soon as its own placements are committed, not at the
			// end of the round: a reservation is named within moments (see the audit's grace).
			const writes: Promise<void>[] = [];
			const ask = (plan: Plan, want: Wanted, req: PlacementRequest) =>
				this.reserver.reserve(want.key, req).then(
					spot =>
						void plan.outcomes.push({
							index: want.index,
							fence: want.fence,
							key: want.key,
							spot
						}),
					(err: Error) =>
						this.logger.warn(`Replica ${want.key} was not placed:`, err.message)
				);
			for (const plan of plans) {
				const w = plan.doc.value;
				const req = placementRequest(w);
				if (!w.placement.antiAffinity) {
					const own: Promise<void>[] = [];
					for (const want of wantedPlacements(w)) {
						const asked = ask(plan, want, req);
						own.push(asked);
						inFlight.push(asked);
						if (inFlight.length >= PLACE_WINDOW)
							await Promise.all(inFlight.splice(0, PLACE_WINDOW / 2));
					}
					writes.push(Promise.all(own).then(() => writer(plan)));
					continue;
				}
				// Each replica must know where its siblings went: one at a time, after what came
				// before it in the round (FIFO).
				await Promise.all(inFlight);
				inFlight = [];
				const avoid = new Set(w.replicas.filter(r => r.node).map(r => r.node!));
				for (const want of wantedPlacements(w)) {
					await ask(plan, want, { ...req, avoid });
					const spot = plan.outcomes[plan.outcomes.length - 1]?.spot;
					if (!spot) break;
					avoid.add(spot.nodeID);
				}
				writes.push(writer(plan));
			}
			await Promise.all(writes);
			return changes;
		},

		/**
		 * The writer of a round's workloads, each once: its placed replicas, and the reason on
		 * those that did not fit. A placement the workload no longer wants (deleted, scaled down
		 * or placed otherwise meanwhile) is given back.
		 */
		roundWriter(this: SchedulerThis, changes: Changes, written?: Map<string, Workload>) {
			return async ({ doc, outcomes }: Plan) => {
				if (outcomes.length === 0) return;
				const id = doc.value.id;
				const reason = outcomes.some(o => !o.spot) ? this.shortfall(doc.value) : null;
				let current: Versioned<Workload> | null = doc;
				let unused: string[] = [];
				for (let attempt = 0; current && attempt < MAX_CONFLICTS; attempt++) {
					const w: Workload = current.value;
					const applied = applyPlacements(w, outcomes, reason, Date.now());
					unused = applied.unused;
					if (
						!applied.changed ||
						(await this.store.cas(COLLECTIONS.workloads, id, w, current.version))
					) {
						if (applied.changed) written?.set(id, w);
						if (w.replicas.some(r => r.state === "pending")) this.waiting.add(id);
						else this.waiting.delete(id);
						break;
					}
					await backoff(attempt);
					current = await this.store.get<Workload>(COLLECTIONS.workloads, id);
				}
				// Deleted meanwhile: all it took goes back. (Unwritten after every try, what no
				// replica names goes back at the next audit.)
				if (!current) unused = outcomes.filter(o => o.spot).map(o => o.key);
				await Promise.all(unused.map(key => this.reserver.release(key))).catch(
					(err: Error) =>
						this.logger.warn(`Left to the audit to give back (${id}):`, err.message)
				);
				for (const o of outcomes) if (o.spot) addChange(changes, o.spot.nodeID, id);
			};
		},

		/**
		 * Workloads by id (null: gone) as the store has them now, for reading only: a document
		 * is read again only when its version moved. A busy node holds replicas of many
		 * workloads, and every sync of it needs them all.
		 */
		async readCached(this: SchedulerThis, ids: string[]) {
			const versions = await this.store.versions(COLLECTIONS.workloads, ids);
			const stale = ids.filter((id, i) => this.cache.get(id)?.version !== versions[i]);
			const read = await Promise.all(
				stale.map(id => this.store.get<Workload>(COLLECTIONS.workloads, id))
			);
			for (const [i, doc] of read.entries()) {
				if (doc) this.cache.set(stale[i], doc);
				else this.cache.delete(stale[i]);
			}
			return ids.map((id, i) => (versions[i] ? (this.cache.get(id)?.value ?? null) : null));
		},

		/**
		 * Takes the placements `pick` chooses (from the workload as it is at each try) off their
		 * nodes; with `pend`, they wait to be placed again. The workload forgets them first and
		 * their reservations go after (see assign.ts). Resolves to the nodes that lost replicas.
		 */
		async releaseReplicas(
			this: SchedulerThis,
			w0: Workload,
			pick: (w: Workload) => Placed[],
			reason: string,
			pend: boolean
		) {
			let doc = await this.store.get<Workload>(COLLECTIONS.workloads, w0.id);
			let gone: Placed[] = [];
			for (let attempt = 0; doc && attempt < MAX_CONFLICTS; attempt++) {
				const w: Workload = doc.value;
				gone = pick(w);
				if (!applyReleases(w, gone, reason, pend, Date.now())) {
					gone = [];
					break;
				}
				if (await this.store.cas(COLLECTIONS.workloads, w.id, w, doc.version)) {
					if (pend) this.waiting.add(w.id);
					break;
				}
				gone = [];
				await backoff(attempt);
				doc = await this.store.get<Workload>(COLLECTIONS.workloads, w0.id);
			}
			await this.releaseForgotten(gone);
			return new Set(gone.map(p => p.node));
		},

		/** Gives back the reservations of replicas their workload no longer names. */
		async releaseForgotten(this: SchedulerThis, placed: Placed[]) {
			await Promise.all(placed.map(p => this.reserver.release(p.key)));
		},

		/**
		 * Moves every replica off a lost or drained node; each moves once (versions decide). A
		 * drained node is told to stop them; a lost one hears it when it returns (node.up).
		 */
		async evacuate(this: SchedulerThis, nodeID: string, reason: string, lost: boolean) {
			await this.serial(async () => {
				const docs = await this.store.list<Workload>(COLLECTIONS.workloads);
				const touched = new Set<string>(lost ? [] : [nodeID]);
				for (const d of docs) {
					const on = d.value.replicas.filter(r => r.node === nodeID).map(r => r.index);
					if (on.length) {
						this.logger.info(
							`Moving ${on.length} replica(s) of '${d.value.name}' off ${nodeID}: ${reason}.`
						);
						// What is still on the node when the workload is written: a replica that
						// moved meanwhile stays where it went.
						const still = (w: Workload) =>
							placedReplicas(w, on).filter(p => p.node === nodeID);
						for (const n of await this.releaseReplicas(d.value, still, reason, true))
							touched.add(n);
					}
				}
				for (const n of (await this.placePending([...this.waiting])).keys()) touched.add(n);
				await this.syncNodes(touched);
			});
		},

		/** Tells each node's agent the complete set of replicas it should run now. */
		async syncNodes(this: SchedulerThis, nodeIDs: Iterable<string>) {
			// Only nodes connected now: one that is away gets its list when it is back (node.up).
			const ids = [...new Set(nodeIDs)].filter(
				id => this.broker.registry.nodes.get(id)?.available
			);
			if (ids.length === 0) return;
			// Numbered before reading, as in syncWorkloads.
			const generation = this.nextGeneration();
			const docs = await this.store.list<Workload>(COLLECTIONS.workloads);
			const lists = new Map<string, ReplicaSpec[]>(ids.map(id => [id, []]));
			for (const { value: w } of docs)
				for (const r of w.replicas) if (r.node) lists.get(r.node)?.push(replicaSpec(w, r));
			for (const [nodeID, replicas] of lists)
				this.tellAgent(nodeID, "agent.sync", { replicas, generation });
		},

		/**
		 * The periodic safety net: catch up with other schedulers, repair what a crash between a
		 * reservation and its workload's write left, place what waits, and re-tell every live
		 * node its replicas.
		 */
		async reconcile(this: SchedulerThis) {
			await this.serial(async () => {
				// Workloads before placements: see audit().
				const docs = await this.store.list<Workload>(COLLECTIONS.workloads);
				// Reading every placement costs what the audit is worth only now and then.
				const auditNow = Date.now() - this.auditedAt >= this.settings.auditInterval;
				await this.reserver.refresh({ placements: auditNow });
				// The syncs below go to the nodes the inventory has now.
				await this.loadInventory();
				const listed = new Set(docs.map(d => d.id));
				for (const id of this.cache.keys()) if (!listed.has(id)) this.cache.delete(id);
				const { lost, orphans } = auditNow
					? audit(
							docs.map(d => d.value),
							this.reserver.placementEntries(),
							Date.now(),
							this.settings.auditGrace
						)
					: { lost: [], orphans: [] };
				if (auditNow) this.auditedAt = Date.now();
				if (orphans.length) {
					this.logger.warn(
						`Releasing ${orphans.length} reservation(s) that no replica holds.`
					);
					await Promise.all(orphans.map(key => this.reserver.release(key)));
				}
				const touched = new Set<string>();
				for (const d of docs) {
					const gone = lost.filter(l => l.workloadId === d.id);
					if (gone.length === 0) continue;
					this.logger.warn(
						`Placing ${gone.length} replica(s) of '${d.value.name}' again: their reservation is gone.`
					);
					// Exactly the placements found lost: one placed anew meanwhile is left alone.
					for (const n of await this.releaseReplicas(
						d.value,
						() => gone,
						"its reservation was lost",
						true
					))
						touched.add(n);
				}
				this.waiting = new Set(
					docs
						.filter(d => d.value.replicas.some(r => r.state === "pending"))
						.map(d => d.id)
				);
				for (const l of lost) this.waiting.add(l.workloadId);
				for (const n of (await this.placePending([...this.waiting])).keys()) touched.add(n);
				// Every live node, the idle ones too: one may still run what a lost sync should
				// have stopped.
				for (const n of this.reserver.index.values())
					if (n.status !== "down") touched.add(n.id);
				await this.syncNodes(touched);
				// The inventory may have started before this scheduler: it hears every
				// allocation once, then only their changes.
				if (!this.announcedAll) {
					this.announcedAll = true;
					for (const n of this.reserver.index.values())
						this.announceAllocation(n.id, n.allocated);
				}
			});
		},

		/**
		 * Orders the lists sent to agents: a later list always has a larger number. Numbers are
		 * the clock in µs, so that two schedulers' lists order by time too (as far as their
		 * clocks agree); the random part keeps two from the same millisecond apart.
		 */
		nextGeneration(this: SchedulerThis): number {
			this.generation = Math.max(
				this.generation + 1,
				Date.now() * 1000 + Math.floor(Math.random() * 1000)
			);
			return this.generation;
		},

		/** A new workload of the user's tenant, after every other in FIFO order. */
		draftWorkload(this: SchedulerThis, input: WorkloadInput, user: Principal, now: number) {
			return newWorkload(input, {
				id: crypto.randomUUID(),
				tenant: user.tenant,
				createdBy: user.sub,
				seq: this.nextSeq(now),
				now
			});
		},

		nextSeq(this: SchedulerThis, now: number) {
			this.lastSeq = Math.max(this.lastSeq + 1, now * 1000);
			return this.lastSeq;
		},

		/** Announces a node's allocation within announceDelay ms, with the others due then. */
		announceAllocation(this: SchedulerThis, nodeID: string, a: Allocation) {
			this.toAnnounce.set(nodeID, a);
			if (this.announceTimer) return;
			this.announceTimer = setTimeout(() => {
				this.announceTimer = null;
				const due = this.toAnnounce;
				this.toAnnounce = new Map();
				for (const [id, allocated] of due)
					this.broker.broadcast(EVENTS.nodeAllocated, {
						nodeID: id,
						allocated: allocationSummary(allocated)
					});
			}, this.settings.announceDelay);
		},

		/**
		 * Why a workload's request fits no node, for its pending replicas. Finding out scans every
		 * node, so a shape's reason is kept for SHORTFALL_TTL ms (and until the inventory changes):
		 * under churn, scanning for every placement round took a twentieth of the scheduler's CPU.
		 */
		shortfall(this: SchedulerThis, w: Workload) {
			const req = placementRequest(w);
			const shape = JSON.stringify([req.resources, req.strategy, req.nodeSelector]);
			const now = Date.now();
			const known = this.shortfalls.get(shape);
			if (known && now - known.at < SHORTFALL_TTL) return known.reason;
			const reason = describeShortfall([...this.reserver.index.values()], req);
			for (const [old, { at }] of this.shortfalls)
				if (now - at >= SHORTFALL_TTL) this.shortfalls.delete(old);
			this.shortfalls.set(shape, { reason, at: now });
			return reason;
		}
	},

	created(this: SchedulerThis) {
		this.queue = Promise.resolve();
		this.round = null;
		this.waiting = new Set();
		this.cache = new Map();
		this.toSync = new Map();
		this.syncTimer = null;
		this.inventoryStale = true;
		this.auditedAt = 0;
		this.announcedAll = false;
		this.generation = 0;
		this.lastSeq = 0;
		this.toAnnounce = new Map();
		this.announceTimer = null;
		this.shortfalls = new Map();
		this.created = new Map();
		this.creates = new Gatherer(
			task => this.serial(task),
			group => this.createTogether(group),
			req => this.createOne(req)
		);
		this.removes = new Gatherer(
			task => this.serial(task),
			group => this.removeTogether(group),
			req => this.removeOne(req)
		);
	},

	started(this: SchedulerThis) {
		this.reserver = new Reserver(this.store, {
			onAllocation: (nodeID, a) => this.announceAllocation(nodeID, a)
		});
		// The first reconcile places what waited while no scheduler ran.
		this.every("reconcile", this.settings.reconcileInterval, () => this.reconcile());
	},

	// Runs before the store mixin's stopped(): queued placements finish while the store is open.
	async stopped(this: SchedulerThis) {
		this.cancel("reconcile");
		if (this.syncTimer) clearTimeout(this.syncTimer);
		if (this.announceTimer) clearTimeout(this.announceTimer);
		await this.queue;
	}
};

/** A random wait, growing with the attempt (up to about 50 ms). */
function backoff(attempt: number): Promise<void> {
	const ms = Math.random() * Math.min(50, 2 ** attempt);
	return new Promise(resolve => setTimeout(resolve, ms));
}

/** A workload of a placement round, and where its pending replicas went. */
interface Plan {
	doc: Versioned<Workload>;
	outcomes: Outcome[];
}

/** Per node, the workloads whose replicas there changed. */
type Changes = Map<string, Set<string>>;

/** Each tenant's usage as planned, checked at the version read, into a transaction. */
function addUsageWrites(
	tenants: Map<string, TenantState>,
	checks: VersionCheck[],
	writes: DocWrite[]
): void {
	for (const [tenant, t] of tenants) {
		checks.push({ collection: COLLECTIONS.usage, id: tenant, version: t.version });
		writes.push({ collection: COLLECTIONS.usage, id: tenant, value: t.next });
	}
}

function addChange(changes: Changes, nodeID: string, workloadId: string): void {
	let ids = changes.get(nodeID);
	if (!ids) changes.set(nodeID, (ids = new Set()));
	ids.add(workloadId);
}

function placementRequest(w: Workload): PlacementRequest {
	return {
		resources: w.resources,
		strategy: w.placement.strategy,
		nodeSelector: w.placement.nodeSelector,
		avoid: NO_NODES
	};
}

const NO_NODES: ReadonlySet<string> = new Set();

function range(from: number, to: number): number[] {
	return Array.from({ length: Math.max(0, to - from) }, (_, i) => from + i);
}

export default SchedulerService;
