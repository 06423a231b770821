/**
 * scheduler: workloads. Charges a tenant's quota, places each replica on a node by its
 * resources (scheduler/placement.ts), reserves atomically in the store (scheduler/reservations.ts),
 * tells the node's agent what to run, follows the replicas' states, and places again what a lost
 * or drained node held. This file is the list of what the service offers; the work is in
 * services/scheduler/:
 * - repository.ts: every store read and write of workloads, names, keys and tenant usage
 * - lifecycle.ts: create, scale, retry and remove (in groups), and the replicas' reported states
 * - fair-queue.ts: creates taken into groups round-robin by tenant
 * - rounds.ts: placement rounds, in one queue per process
 * - agent-sync.ts: what each node's agent is told, and when
 * - recovery.ts: evacuating nodes, giving back placements, reconcile and the audit
 * - schemas.ts: the actions' params
 */
import type { Context, LoggerInstance, Service, ServiceSchema } from "moleculer";
import PeriodicMixin, { PeriodicMethods } from "../mixins/periodic.mixin";
import StoreMixin from "../mixins/store.mixin";
import { loadEnv } from "./shared/env";
import { EVENTS } from "./shared/events";
import { page } from "./shared/params";
import { tenantFilter, type Principal } from "./shared/principal";
import type { Store } from "./shared/store";
import type { NodeInfo, ReplicaStatus } from "./shared/types";
import { AgentSync, type AgentSyncSettings, replicaLogs } from "./scheduler/agent-sync";
import type { AdmissionLimits } from "./shared/admission";
import { WorkloadLifecycle } from "./scheduler/lifecycle";
import { allocationSummary, emptyAllocation } from "./scheduler/placement";
import { systemRecorder } from "./audit/system";
import { Recovery, type RecoverySettings } from "./scheduler/recovery";
import { WorkloadRepository } from "./scheduler/repository";
import { Reserver } from "./scheduler/reservations";
import { PlacementRounds, type RoundSettings } from "./scheduler/rounds";
import { SerialQueue } from "./scheduler/serial-queue";
import {
	createParams,
	idParams,
	listParams,
	logsParams,
	placedOnParams,
	scaleParams,
	usageParams,
	type IdParams,
	type ListParams,
	type LogsParams,
	type ScaleParams
} from "./scheduler/schemas";
import { replicasOn, type WorkloadInput, workloadView } from "./scheduler/workload";
import {
	adoptionReads,
	type AdoptionBase,
	type AgentReplicas,
	planAdoption
} from "./scheduler/adopt";
import { COLLECTIONS } from "./shared/collections";
import { ConflictError, ServiceUnavailableError } from "./shared/errors";
import type { IdentityGuard } from "./shared/store/identity-guard";
import type { ClusterIdentity } from "./shared/store/identity";

interface SchedulerSettings extends AgentSyncSettings, RoundSettings, RecoverySettings {
	/** ms between two reconcile rounds (pending placement, agent sync). */
	reconcileInterval: number;
	/** Creates held at once, per tenant and in all (ISA_QUEUE_TENANT_CREATES, ISA_QUEUE_CREATES). */
	createLimits: AdmissionLimits;
	/** Tasks queued past which a scale is refused (ISA_QUEUE_SCHEDULER). */
	queueLimit: number;
}

const env = loadEnv();

interface Meta {
	user?: Principal;
	idempotencyKey?: string;
	/** moleculer-web answers with this HTTP status. */
	$statusCode?: number;
	/** With 201: where the new resource is (the Location header). */
	$location?: string;
}

interface SchedulerThis extends Service<SchedulerSettings>, PeriodicMethods {
	store: Store;
	storeIdentity: IdentityGuard;
	adoptStore(force: boolean, actor: string): Promise<Record<string, unknown>>;
	/** Changes of this process, one after another (every module below queues on it). */
	queue: SerialQueue;
	reserver: Reserver;
	workloads: WorkloadRepository;
	agents: AgentSync;
	rounds: PlacementRounds;
	recovery: Recovery;
	lifecycle: WorkloadLifecycle;
}

const SchedulerService: ServiceSchema<SchedulerSettings, SchedulerThis> = {
	name: "scheduler",
	mixins: [StoreMixin(), PeriodicMixin()],

	settings: {
		reconcileInterval: 2000,
		auditInterval: 30_000,
		auditGrace: 60_000,
		syncDelay: 50,
		announceDelay: 200,
		createLimits: { total: env.queueCreates, perTenant: env.queueTenantCreates },
		queueLimit: env.queueScheduler
	},

	actions: {
		/** Creates a workload and places its replicas now where they fit. */
		create: {
			idempotent: "with-key",
			params: createParams,
			async handler(this: SchedulerThis, ctx: Context<WorkloadInput, Meta>) {
				const w = await this.lifecycle.create(
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
			idempotent: true,
			params: listParams,
			async handler(this: SchedulerThis, ctx: Context<ListParams, Meta>) {
				const tenant = tenantFilter(ctx.meta.user!, ctx.params.tenant);
				const { items, total } = page(await this.workloads.list(tenant), ctx.params);
				return { items: items.map(w => workloadView(w)), total };
			}
		},

		/** One workload with its replicas and events. */
		get: {
			idempotent: true,
			params: idParams,
			async handler(this: SchedulerThis, ctx: Context<IdParams, Meta>) {
				return workloadView(
					(await this.workloads.load(ctx.params.id, ctx.meta.user)).value,
					true
				);
			}
		},

		/** Changes the number of replicas; the quota is charged or refunded. */
		scale: {
			// Sets the number of replicas, not adds to it.
			idempotent: true,
			params: scaleParams,
			async handler(this: SchedulerThis, ctx: Context<ScaleParams, Meta>) {
				const { id, replicas } = ctx.params;
				return workloadView(await this.lifecycle.scale(id, replicas, ctx.meta.user), true);
			}
		},

		/**
		 * Starts the failed replicas again, placed anew with no restarts counted; 409 when none
		 * failed. Not idempotent: a second retry places them once more.
		 */
		retry: {
			params: idParams,
			idempotent: false,
			async handler(this: SchedulerThis, ctx: Context<IdParams, Meta>) {
				return workloadView(await this.lifecycle.retry(ctx.params.id, ctx.meta.user), true);
			}
		},

		/** Stops every replica, gives back their resources and the quota, and forgets it. */
		remove: {
			idempotent: true,
			params: idParams,
			async handler(this: SchedulerThis, ctx: Context<IdParams, Meta>) {
				const w = await this.lifecycle.remove(ctx.params.id, ctx.meta.user);
				return { ...workloadView(w), status: "stopped" };
			}
		},

		/** Recent output of a process workload's replicas, from their agents. */
		logs: {
			idempotent: true,
			params: logsParams,
			async handler(this: SchedulerThis, ctx: Context<LogsParams, Meta>) {
				const w = (await this.workloads.load(ctx.params.id, ctx.meta.user)).value;
				const { items: downNodes } = await ctx.call<{ items: NodeInfo[] }, object>(
					"nodes.list",
					{ status: "down", limit: 10000 }
				);
				const down = new Set(downNodes.map(n => n.id));
				const items = await replicaLogs(w, ctx.params, down, (nodeID, params) =>
					ctx.call<unknown[], object>("agent.logs", params, { nodeID })
				);
				return { items, total: items.length };
			}
		},

		/** Quota use of a tenant (for the tenants API). */
		usage: {
			idempotent: true,
			visibility: "public",
			params: usageParams,
			handler(this: SchedulerThis, ctx: Context<{ tenant: string }>) {
				return this.workloads.usage(ctx.params.tenant);
			}
		},

		/** The replicas placed on a node and the node's allocation, exact (for nodes.get). */
		placedOn: {
			idempotent: true,
			visibility: "public",
			params: placedOnParams,
			async handler(this: SchedulerThis, ctx: Context<{ node: string }>) {
				const node = ctx.params.node;
				const [docs, allocation] = await Promise.all([
					this.workloads.all(),
					this.workloads.allocation(node)
				]);
				return {
					workloads: docs.flatMap(({ value: w }) => replicasOn(w, node)),
					allocated: allocationSummary(allocation ?? emptyAllocation())
				};
			}
		},

		/** Every node's allocation as committed (for an inventory that starts after us). */
		allocations: {
			idempotent: true,
			visibility: "public",
			async handler(this: SchedulerThis) {
				const docs = await this.workloads.allocations();
				return {
					items: docs.map(d => ({ nodeID: d.id, allocated: allocationSummary(d.value) }))
				};
			}
		},

		/**
		 * Adopts the store (POST /api/v1/cluster/adopt, `npm run adopt`): writes its identity
		 * anew and re-registers what the agents still run (scheduler/adopt.ts), so that a store
		 * restarted empty or restored from an old backup is used again and nothing is lost. 503
		 * when an agent does not answer (its replicas would be forgotten), unless `force`.
		 */
		adopt: {
			// Writes the store's identity anew: an operator's decision, made once.
			idempotent: false,
			access: "admin",
			params: { $$strict: true, force: { type: "boolean", optional: true, convert: true } },
			async handler(this: SchedulerThis, ctx: Context<{ force?: boolean }, Meta>) {
				return this.adoptStore(
					ctx.params.force ?? false,
					ctx.meta.user?.sub ?? "system:adopt"
				);
			}
		},

		/** Every tenant's workloads with their status, without events (for the monitor). */
		states: {
			idempotent: true,
			visibility: "public",
			async handler(this: SchedulerThis) {
				const docs = await this.workloads.all();
				return { items: docs.map(d => workloadView(d.value)) };
			}
		}
	},

	events: {
		[EVENTS.nodeDown]: {
			async handler(this: SchedulerThis, ctx: Context<NodeInfo>) {
				const id = ctx.params.id;
				this.rounds.inventoryChanged();
				await quietly(this.logger, `Moving replicas off ${id}`, () =>
					this.recovery.evacuate(id, `node ${id} is down`, true)
				);
			}
		},
		[EVENTS.nodeUp]: {
			async handler(this: SchedulerThis, ctx: Context<NodeInfo>) {
				const id = ctx.params.id;
				this.rounds.inventoryChanged();
				this.recovery.nodeUp(id);
				// A returning node is told what it should run: replicas moved away meanwhile stop.
				await quietly(this.logger, `Syncing returning node ${id}`, async () => {
					await this.queue.run(async () => this.agents.syncNodes([id]));
					await this.rounds.requestPlacement();
				});
			}
		},
		/**
		 * Moleculer sees a node (again), e.g. after a freeze or a partition that outlasted its
		 * heartbeat timeout: node.up may have come first, while the node could not be called,
		 * so it is told now what it should run (fencing: stale copies stop at once).
		 */
		"$node.connected": {
			async handler(this: SchedulerThis, ctx: Context<{ node: { id: string } }>) {
				const id = ctx.params.node.id;
				await quietly(this.logger, `Syncing reconnected node ${id}`, () =>
					this.queue.run(async () => this.agents.syncNodes([id]))
				);
			}
		},
		[EVENTS.nodeUpdated]: {
			async handler(this: SchedulerThis, ctx: Context<NodeInfo>) {
				const id = ctx.params.id;
				this.rounds.inventoryChanged();
				await quietly(this.logger, `Following node ${id}`, () =>
					ctx.params.status === "draining"
						? this.recovery.evacuate(id, `node ${id} is draining`, false)
						: this.rounds.requestPlacement()
				);
			}
		},
		[EVENTS.replicaState]: {
			async handler(this: SchedulerThis, ctx: Context<ReplicaStatus>) {
				await this.lifecycle.recordState(ctx.params);
			}
		}
	},

	methods: {
		async adoptStore(this: SchedulerThis, force: boolean, actor: string) {
			const nodeIDs = [
				...new Set(
					(
						this.broker.registry.getServiceList({ onlyAvailable: true }) as Array<{
							name: string;
							nodeID: string;
						}>
					)
						.filter(s => s.name === "agent")
						.map(s => s.nodeID)
				)
			].sort();
			const answers = await Promise.all(
				nodeIDs.map(nodeID =>
					this.broker
						.call<AgentReplicas & { identity: ClusterIdentity | null }, object>(
							"agent.running",
							{},
							{ nodeID, timeout: 5000, retries: 1 }
						)
						.catch(() => null)
				)
			);
			const unreachable = nodeIDs.filter((_, i) => !answers[i]);
			if (unreachable.length && !force)
				throw new ServiceUnavailableError(
					`Not adopted: the agents of ${unreachable.join(", ")} did not say what they run, ` +
						"so their replicas would be forgotten (and stopped). Try again, or adopt with force.",
					{ unreachable }
				);
			const agents = answers.filter((a): a is NonNullable<typeof a> => Boolean(a));
			return this.queue.run(async () => {
				const reads = adoptionReads(agents);
				const store = this.store;
				const docs = async <T>(collection: string, ids: string[]) =>
					new Map(
						(await Promise.all(ids.map(id => store.get<T>(collection, id))))
							.map((d, i) => [ids[i], d] as const)
							.filter((e): e is [string, NonNullable<(typeof e)[1]>] => Boolean(e[1]))
					);
				const versions = await store.versions(COLLECTIONS.workloads, reads.workloadIds);
				const base: AdoptionBase = {
					workloads: new Set(reads.workloadIds.filter((_, i) => versions[i] > 0)),
					names: new Map(
						[...(await docs<{ id: string }>(COLLECTIONS.names, reads.names))].map(
							([name, d]) => [name, d.value.id]
						)
					),
					allocations: await docs(COLLECTIONS.allocations, reads.nodes),
					usage: await docs(COLLECTIONS.usage, reads.tenants),
					claims: await docs(COLLECTIONS.serviceClaims, reads.services)
				};
				const plan = planAdoption(agents, base, Date.now());
				const identity = await this.storeIdentity.adopt(
					plan.checks,
					plan.writes,
					agents.map(a => a.identity)
				);
				if (!identity)
					throw new ConflictError(
						"Not adopted: the store changed while the adoption read it; try again.",
						{}
					);
				// Every cache of the store as it was goes: the next rounds read the adopted one.
				this.workloads.uncache(new Set());
				await this.reserver.refresh({ placements: true });
				for (const w of plan.workloads)
					if (w.replicas.some(r => r.state === "pending")) this.rounds.waiting.add(w.id);
				const replicas = plan.workloads.reduce(
					(n, w) => n + w.replicas.filter(r => r.node).length,
					0
				);
				this.logger.warn(
					`Store adopted by ${actor}: cluster ${identity.clusterId} epoch ${identity.epoch}; ` +
						`${plan.workloads.length} workload(s) with ${replicas} running replica(s) re-registered` +
						` from ${agents.length} agent(s).`
				);
				systemRecorder(
					this.broker,
					this.logger
				)({
					actor,
					action: "cluster.adopt",
					target: identity.clusterId,
					detail: `epoch ${identity.epoch}; ${plan.workloads.length} workload(s), ${replicas} replica(s) re-registered; ${plan.skipped.length} skipped`
				});
				return {
					identity,
					workloads: plan.workloads.map(w => w.id),
					replicas,
					skipped: plan.skipped,
					nodes: agents.map(a => a.nodeID),
					unreachable
				};
			});
		}
	},

	created(this: SchedulerThis) {
		this.queue = new SerialQueue(this.settings.queueLimit);
	},

	// After the store mixin's started(): this.store is open.
	started(this: SchedulerThis) {
		const logger = this.logger;
		const settings = this.settings;
		this.workloads = new WorkloadRepository(this.store);
		this.reserver = new Reserver(this.store, {
			onAllocation: (nodeID, a) => this.rounds.announceAllocation(nodeID, a)
		});
		this.agents = new AgentSync(
			{
				connected: id => Boolean(this.broker.registry.nodes.get(id)?.available),
				call: (action, params, opts) => this.broker.call(action, params, opts),
				trustedIdentity: async () =>
					(await this.storeIdentity.verify()) ? this.storeIdentity.identity : null
			},
			this.workloads,
			this.queue,
			settings,
			logger
		);
		this.rounds = new PlacementRounds(
			this.workloads,
			this.reserver,
			this.queue,
			this.agents,
			{
				nodes: async () =>
					(
						(await this.broker.call("nodes.list", { limit: 10000 })) as {
							items: NodeInfo[];
						}
					).items,
				announce: (nodeID, allocated) =>
					this.broker.broadcast(EVENTS.nodeAllocated, {
						nodeID,
						allocated: allocationSummary(allocated)
					})
			},
			settings,
			logger
		);
		this.recovery = new Recovery(
			this.workloads,
			this.reserver,
			this.queue,
			this.rounds,
			this.agents,
			settings,
			logger,
			systemRecorder(this.broker, logger)
		);
		this.lifecycle = new WorkloadLifecycle(
			this.workloads,
			this.queue,
			this.rounds,
			this.recovery,
			this.agents,
			logger,
			settings.createLimits
		);
		// The first reconcile places what waited while no scheduler ran.
		this.every("reconcile", settings.reconcileInterval, () => this.recovery.reconcile());
	},

	// Runs before the store mixin's stopped(): queued placements finish while the store is open.
	async stopped(this: SchedulerThis) {
		this.cancel("reconcile");
		// Unset when the store did not open, so that started() never ran.
		this.agents?.stop();
		this.rounds?.stop();
		this.recovery?.stop();
		await this.queue.idle();
	}
};

/**
 * Runs an event's work: a failure is logged, because nobody waits for an event handler's
 * answer (and an emitter that does not catch would leave the rejection unhandled).
 */
async function quietly(
	logger: LoggerInstance,
	what: string,
	fn: () => Promise<unknown>
): Promise<void> {
	try {
		await fn();
	} catch (err) {
		logger.warn(`${what} failed; reconcile tries again:`, (err as Error).message);
	}
}

export default SchedulerService;
