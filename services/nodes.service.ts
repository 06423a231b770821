/**
 * nodes: the cluster inventory. Builds every node's capacity, usage, labels and status from the
 * agents' `node.report` events and Moleculer's `$node.disconnected`, declares a node down after
 * MISSED_REPORTS missed reports (sooner than Moleculer's heartbeat timeout), keeps what
 * outlives a restart (capacity, labels, cordons) in the store, and forgets down nodes after
 * ISA_NODE_RETENTION or when an admin deletes one.
 */
import { Errors } from "moleculer";
import type { Context, Service, ServiceSchema } from "moleculer";
import PeriodicMixin, { PeriodicMethods } from "../mixins/periodic.mixin";
import StoreMixin from "../mixins/store.mixin";
import { ConflictError, NotFoundError } from "./shared/errors";
import { loadEnv } from "./shared/env";
import { type RecordChange, systemRecorder } from "./audit/system";
import { COLLECTIONS } from "./shared/collections";
import { EVENTS } from "./shared/events";
import type { MachineFacts, NodeInfo, NodeReport } from "./shared/types";
import type { Store } from "./shared/store";
import { Change, Inventory, persistedNode } from "./nodes/inventory";
import { type HoldReason, Liveness, type Verdict } from "./nodes/liveness";
import { LagMonitor } from "./shared/lag";
import { watchTransport } from "./shared/transport";
import { page, pageParams } from "./shared/params";
import type { Principal } from "./shared/principal";
import { type PlacedReplica, placedView } from "./nodes/placed";

interface NodesSettings {
	/** How often to look for silent nodes when none is known yet (ms). */
	sweepFallback: number;
	/** How long a down node stays in the inventory (ms, ISA_NODE_RETENTION); null: forever. */
	nodeRetention: number | null;
	/** ISA_DISRUPTION_THRESHOLD: the share of up nodes that may go silent at once (0–1). */
	disruptionThreshold: number;
	/** This node's report interval (ms): the grace after a reconnect when no node is known. */
	reportInterval: number;
}

/** Silent nodes held instead of declared down, as last announced. */
interface Held {
	reason: HoldReason | null;
	nodes: string[];
	since: number | null;
}

interface NodesThis extends Service<NodesSettings>, PeriodicMethods {
	inventory: Inventory;
	liveness: Liveness;
	/** This process's own event-loop lag: time it stood still is nobody's silence. */
	lag: LagMonitor;
	stopLag: () => void;
	held: Held;
	unwatchTransport: () => void;
	factsPending: Set<string>;
	/** Nodes whose agent announced a restart (node.restarting) and has not disconnected yet. */
	restarting: Set<string>;
	hold(verdict: Verdict): void;
	store: Store;
	recordChange: RecordChange;
	announce(changes: Array<Change | null>): Promise<void>;
	fetchFacts(node: NodeInfo): Promise<void>;
	scheduleSweep(): void;
	view(node: NodeInfo, allocated?: NodeInfo["allocated"], withFacts?: boolean): NodeInfo;
	findNode(id: string): NodeInfo;
	loadAllocations(): Promise<void>;
	forget(node: NodeInfo, reason: "deleted" | "retention"): Promise<void>;
	forgetExpired(now: number): Promise<void>;
}

/** What the scheduler answers of a node (scheduler.placedOn). */
interface Placed {
	workloads: PlacedReplica[];
	allocated: NodeInfo["allocated"];
}

interface ListParams {
	limit?: number;
	offset?: number;
	status?: string;
}

const env = loadEnv();

/** The scheduler's action that answers the allocations committed so far. */
const ALLOCATIONS_ACTION = "scheduler.allocations";

const NodesService: ServiceSchema<NodesSettings, NodesThis> = {
	name: "nodes",
	mixins: [StoreMixin(), PeriodicMixin()],

	settings: {
		sweepFallback: 1000,
		nodeRetention: env.nodeRetention,
		disruptionThreshold: env.disruptionThreshold,
		reportInterval: env.reportInterval
	},

	actions: {
		/** Every node with capacity, usage, allocation and status. */
		list: {
			idempotent: true,
			params: {
				$$strict: true,
				...pageParams(10000),
				status: { type: "enum", values: ["ready", "draining", "down"], optional: true }
			},
			handler(this: NodesThis, ctx: Context<ListParams>) {
				const { status } = ctx.params;
				let nodes = this.inventory.list();
				if (status) nodes = nodes.filter(n => n.status === status);
				const { items, total } = page(nodes, ctx.params, 1000);
				return { items: items.map(n => this.view(n)), total };
			}
		},

		/**
		 * One node with its machine facts and the workloads placed on it: the user's own
		 * tenant's (an admin's: all), and `otherTenants` counting the rest (nodes/placed.ts).
		 */
		get: {
			idempotent: true,
			params: { $$strict: true, id: { type: "string", min: 1, max: 256 } },
			async handler(this: NodesThis, ctx: Context<{ id: string }, { user?: Principal }>) {
				const node = this.findNode(ctx.params.id);
				// The scheduler owns placements: it answers the node's workloads and allocation.
				// Where none runs, nothing is placed: the node as announced, with no workloads.
				const placed = await ctx
					.call<Placed, { node: string }>("scheduler.placedOn", { node: node.id })
					.catch((err: Error) => {
						if (err instanceof Errors.ServiceNotFoundError) return null;
						throw err;
					});
				return {
					...this.view(node, placed?.allocated, true),
					...placedView(placed?.workloads ?? [], ctx.meta.user)
				};
			}
		},

		/** Cordons a node: it takes no new placements and its workloads move elsewhere. */
		drain: {
			// Cordons and moves what runs there: a second drain finds it done.
			idempotent: true,
			access: "admin",
			params: { $$strict: true, id: { type: "string", min: 1, max: 256 } },
			async handler(this: NodesThis, ctx: Context<{ id: string }>) {
				const node = this.findNode(ctx.params.id);
				await this.announce([this.inventory.setCordoned(node.id, true)]);
				return this.view(node);
			}
		},

		/** Takes a cordon back: the node is `ready` again while it reports. */
		uncordon: {
			idempotent: true,
			access: "admin",
			params: { $$strict: true, id: { type: "string", min: 1, max: 256 } },
			async handler(this: NodesThis, ctx: Context<{ id: string }>) {
				const node = this.findNode(ctx.params.id);
				await this.announce([this.inventory.setCordoned(node.id, false)]);
				return this.view(node);
			}
		},

		/** Forgets a down node at once (it comes back if it reports again); 409 for a live one. */
		remove: {
			idempotent: true,
			access: "admin",
			params: { $$strict: true, id: { type: "string", min: 1, max: 256 } },
			async handler(this: NodesThis, ctx: Context<{ id: string }>) {
				const node = this.findNode(ctx.params.id);
				if (node.status !== "down")
					throw new ConflictError(
						`Node '${node.id}' is ${node.status}: only a down node can be deleted. ` +
							"Stop it first (or drain it and stop it).",
						{ id: node.id, status: node.status }
					);
				await this.forget(node, "deleted");
				return { id: node.id, deleted: true };
			}
		}
	},

	events: {
		[EVENTS.nodeReport]: {
			async handler(this: NodesThis, ctx: Context<NodeReport>) {
				const change = this.inventory.applyReport(ctx.params, Date.now());
				if (change?.transition === "up") this.scheduleSweep();
				await this.announce([change]);
				const node = this.inventory.nodes.get(ctx.params.nodeID);
				if (node && !node.facts) void this.fetchFacts(node);
			}
		},
		[EVENTS.nodeAllocated]: {
			handler(
				this: NodesThis,
				ctx: Context<{ nodeID: string; allocated: NodeInfo["allocated"] }>
			) {
				const node = this.inventory.nodes.get(ctx.params.nodeID);
				if (node) node.allocated = ctx.params.allocated;
			}
		},
		[EVENTS.nodeRestarting]: {
			handler(this: NodesThis, ctx: Context<{ nodeID: string }>) {
				this.restarting.add(ctx.params.nodeID);
			}
		},

		/**
		 * A node that said goodbye is down at once. One whose heartbeats Moleculer missed
		 * (`unexpected`) is left to the sweep: its reports stop too, and the sweep knows
		 * whether this node was blind meanwhile (nodes/liveness.ts), Moleculer's check does not.
		 */
		"$node.disconnected": {
			async handler(
				this: NodesThis,
				ctx: Context<{ node: { id: string }; unexpected?: boolean }>
			) {
				const id = ctx.params.node.id;
				// An agent that left its replicas running for its next start (an upgrade): the
				// sweep declares the node down if no report comes within the down window.
				const restarting = this.restarting.delete(id);
				if (ctx.params.unexpected || restarting) return;
				await this.announce([this.inventory.markDown(id)]);
			}
		}
	},

	methods: {
		findNode(this: NodesThis, id: string): NodeInfo {
			const node = this.inventory.nodes.get(id);
			if (!node) throw new NotFoundError("Node", id);
			return node;
		},

		/**
		 * A node as the API shows it. Its allocation is the one the scheduler last announced
		 * (node.allocated, a few times a second), or `allocated` when given: a node's own read
		 * passes the scheduler's, exact at once. The list asks nobody: it answers thousands of
		 * nodes, often (the dashboard, the scheduler's inventory), from memory.
		 */
		view(
			this: NodesThis,
			node: NodeInfo,
			allocated?: NodeInfo["allocated"],
			withFacts = false
		): NodeInfo {
			const { facts: _facts, ...rest } = node;
			const shown = withFacts ? node : rest;
			return allocated ? { ...shown, allocated } : shown;
		},

		/**
		 * The allocations committed before this service started, from the scheduler if one runs
		 * (one that starts later announces them itself). Missing them only delays the list's
		 * figures until the next node.allocated.
		 */
		async loadAllocations(this: NodesThis) {
			// No scheduler yet: asking would only log Moleculer's "not registered" warning.
			if (!this.broker.registry.actions.isAvailable(ALLOCATIONS_ACTION)) return;
			try {
				const { items } = await this.broker.call<
					{ items: Array<{ nodeID: string; allocated: NodeInfo["allocated"] }> },
					object
				>(ALLOCATIONS_ACTION, {}, { retries: 0 });
				for (const { nodeID, allocated } of items) {
					const node = this.inventory.nodes.get(nodeID);
					if (node) node.allocated = allocated;
				}
			} catch (err) {
				this.logger.debug("No allocations from a scheduler yet:", (err as Error).message);
			}
		},

		/** Persists and emits each change; usage-only reports never reach the store. */
		async announce(this: NodesThis, changes: Array<Change | null>) {
			for (const change of changes) {
				if (!change) continue;
				const { node, transition } = change;
				await this.store.put(COLLECTIONS.nodes, node.id, persistedNode(node));
				const event =
					transition === "up"
						? EVENTS.nodeUp
						: transition === "down"
							? EVENTS.nodeDown
							: EVENTS.nodeUpdated;
				this.logger.info(`Node '${node.id}' is ${node.status} (${transition}).`);
				this.broker.emit(event, this.view(node));
			}
		},

		/**
		 * Drops a down node from memory first (so that a report arriving meanwhile makes it new
		 * again, not half-forgotten), then from the store, and tells the others.
		 */
		async forget(this: NodesThis, node: NodeInfo, reason: "deleted" | "retention") {
			if (!this.inventory.forget(node.id)) return;
			await this.store.delete(COLLECTIONS.nodes, node.id);
			this.logger.info(`Node '${node.id}' forgotten (${reason}).`);
			this.broker.emit(EVENTS.nodeRemoved, { id: node.id, reason });
		},

		/** Forgets the down nodes silent for longer than the retention; a system change, audited. */
		async forgetExpired(this: NodesThis, now: number) {
			const retention = this.settings.nodeRetention;
			if (!retention) return;
			for (const id of this.inventory.expired(now, retention)) {
				const node = this.inventory.nodes.get(id)!;
				await this.forget(node, "retention");
				this.recordChange({
					actor: "system:nodes",
					action: "nodes.forget",
					target: id,
					detail: `down since ${new Date(node.lastSeen).toISOString()}, past the retention`
				});
			}
		},

		/** The agent's static machine facts, asked until they arrive once (one call at a time). */
		async fetchFacts(this: NodesThis, node: NodeInfo) {
			if (this.factsPending.has(node.id)) return;
			this.factsPending.add(node.id);
			try {
				const facts: MachineFacts = await this.broker.call(
					"agent.facts",
					{},
					{ nodeID: node.id }
				);
				node.facts = facts;
				await this.store.put(COLLECTIONS.nodes, node.id, persistedNode(node));
			} catch (err) {
				this.logger.debug(
					`No machine facts from '${node.id}' yet:`,
					(err as Error).message
				);
			} finally {
				this.factsPending.delete(node.id);
			}
		},

		/** Sweeps at half the shortest report interval, so a silent node is caught in time. */
		scheduleSweep(this: NodesThis) {
			const interval = this.inventory.sweepInterval(this.settings.sweepFallback);
			this.every("sweep", interval, async () => {
				const now = Date.now();
				// After a stall this timer may run before the lag timer's beat, and before the
				// reports that waited are read: the stall is counted first.
				const lag = this.lag.beat();
				if (lag > 0) this.liveness.stalled(lag, now);
				const { changes, verdict } = this.inventory.judged(now, this.liveness);
				this.hold(verdict);
				await this.announce(changes);
				await this.forgetExpired(now);
			});
		},

		/**
		 * Announces when silent nodes begin to be held (blind, or a disruption), when the set
		 * changes and when holding ends: the monitor's `cluster.nodes.held` fires an alert.
		 */
		hold(this: NodesThis, verdict: Verdict) {
			const nodes = [...verdict.held].sort();
			const before = this.held;
			if (before.reason === verdict.reason && before.nodes.join() === nodes.join()) return;
			const since = nodes.length ? (before.nodes.length ? before.since : Date.now()) : null;
			this.held = { reason: verdict.reason, nodes, since };
			if (nodes.length)
				this.logger.warn(
					verdict.reason === "blind"
						? `Not declaring ${nodes.join(", ")} down: this node's transporter is disconnected or has just reconnected.`
						: `Not declaring ${nodes.join(", ")} down: more than ${this.settings.disruptionThreshold * 100}% of the nodes went silent at once (a disruption); their replicas stay where they are.`
				);
			else this.logger.info("No silent node is held any more.");
			this.broker.broadcast(EVENTS.nodesHeld, this.held);
		}
	},

	created(this: NodesThis) {
		this.inventory = new Inventory();
		this.liveness = new Liveness(Date.now(), {
			threshold: this.settings.disruptionThreshold,
			reportInterval: this.settings.reportInterval
		});
		this.lag = new LagMonitor();
		this.held = { reason: null, nodes: [], since: null };
		this.factsPending = new Set();
		this.recordChange = systemRecorder(this.broker, this.logger);
		this.restarting = new Set();
	},

	async started(this: NodesThis) {
		const saved = await this.store.list<NodeInfo>(COLLECTIONS.nodes);
		this.inventory.restore(saved.map(d => d.value));
		void this.loadAllocations();
		this.unwatchTransport = watchTransport(this.broker, connected => {
			this.logger[connected ? "info" : "warn"](
				connected
					? "Transporter reconnected: nobody is declared down until the nodes have reported again."
					: "Transporter disconnected: nobody is declared down while this node hears nobody."
			);
			this.liveness.transport(connected, Date.now());
		});
		this.stopLag = this.lag.start(lag => this.liveness.stalled(lag, Date.now()));
		this.scheduleSweep();
	},

	stopped(this: NodesThis) {
		this.stopLag?.();
		this.unwatchTransport?.();
	}
};

export default NodesService;
