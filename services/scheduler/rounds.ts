/**
 * Placement rounds (like Kubernetes' scheduling loop). Requests that arrive while a round waits
 * in the queue join it, and its replicas go to the Reserver (reservations.ts) together, which
 * commits hundreds of reservations per store transaction. Each workload is then written once
 * per round (assign.ts says in which order, and what a crash between the two leaves), with the
 * reason on the replicas that did not fit. Within one process, changes run one at a time
 * (serial-queue.ts); a light tenant's create is placed in a round of the urgent lane.
 */
import type { LoggerInstance } from "moleculer";
import type { NodeInfo } from "../shared/types";
import type { Versioned } from "../shared/store";
import { addChange, type AgentSync, type Changes } from "./agent-sync";
import {
	applyPlacements,
	type Outcome,
	type Placed,
	type Wanted,
	wantedPlacements
} from "./assign";
import { type Allocation, describeShortfall, type PlacementRequest } from "./placement";
import type { WorkloadRepository } from "./repository";
import type { Reserver } from "./reservations";
import { CONFLICT, retryOnConflict } from "./retry";
import type { Lane, SerialQueue } from "./serial-queue";
import { workloadOf, type Workload } from "./workload";

/** ms a shape's shortfall reason is reused (see shortfall). */
const SHORTFALL_TTL = 1000;

/** Placements of one round in flight at once: enough for two of the Reserver's full batches. */
const PLACE_WINDOW = 8192;

/** How the rounds reach the rest of the cluster (the broker, in the service). */
export interface Cluster {
	/** The inventory's nodes (nodes.list). */
	nodes(): Promise<NodeInfo[]>;
	/** Tells every service a node's allocation (node.allocated). */
	announce(nodeID: string, allocation: Allocation): void;
}

export interface RoundSettings {
	/**
	 * ms between two announcements of a node's allocation (node.allocated): a busy node's
	 * allocation changes with every group commit, and the cluster hears its latest once per while.
	 */
	announceDelay: number;
}

interface Round {
	ids: Set<string>;
	/** Every waiting workload, not only `ids`. */
	all: boolean;
	/** What to sync besides the round's own placements: replicas removed from nodes. */
	changes: Changes;
	/** Resolves to the workloads the round wrote, as written. */
	done: Promise<Map<string, Workload>>;
}

/** A workload of a placement round, and where its pending replicas went. */
interface Plan {
	doc: Versioned<Workload>;
	outcomes: Outcome[];
}

export class PlacementRounds {
	/** Workloads with pending replicas, as far as this scheduler knows (all: at reconcile). */
	readonly waiting = new Set<string>();
	/** The placement round of each lane that still takes requests (see requestPlacement). */
	private readonly rounds: Record<Lane, Round | null> = { urgent: null, normal: null };
	/** Node events came since the Reserver was told the inventory (and at every reconcile). */
	private inventoryStale = true;
	/** Why a request of a shape does not fit, and when that was found (see shortfall). */
	private readonly shortfalls = new Map<string, { reason: string; at: number }>();
	/** Allocations committed since the last announcement, by node (see announceDelay). */
	private toAnnounce = new Map<string, Allocation>();
	private announceTimer: NodeJS.Timeout | null = null;

	constructor(
		private readonly workloads: WorkloadRepository,
		private readonly reserver: Reserver,
		private readonly queue: SerialQueue,
		private readonly agents: AgentSync,
		private readonly cluster: Cluster,
		private readonly settings: RoundSettings,
		private readonly logger: LoggerInstance
	) {}

	/**
	 * Places a workload whose change is committed already: a failure is logged, not answered
	 * (the change stands, and reconcile places it). Resolves to the workload as the round
	 * wrote it, if it did. In the urgent lane its round runs before the normal ones waiting.
	 */
	async placeQuietly(id: string, lane: Lane = "normal"): Promise<Workload | undefined> {
		try {
			return (await this.requestPlacement([id], [], lane)).get(id);
		} catch (err) {
			this.logger.warn(
				`Placing workload ${id} failed; reconcile tries again:`,
				(err as Error).message
			);
			return undefined;
		}
	}

	/**
	 * Asks for a placement round: of these workloads, or (none given) of every workload this
	 * scheduler knows to wait. Requests that come while a round of their lane waits in the
	 * queue join it, so that concurrent creates are placed together, in the Reserver's group
	 * commits. Resolves when the round that took the request is done.
	 */
	requestPlacement(
		ids?: string[],
		gone: Placed[] = [],
		lane: Lane = "normal"
	): Promise<Map<string, Workload>> {
		const round = this.rounds[lane] ?? this.queueRound(lane);
		if (ids) for (const id of ids) round.ids.add(id);
		else round.all = true;
		for (const p of gone) addChange(round.changes, p.node, workloadOf(p.key));
		return round.done;
	}

	/** A new round in the lane's queue; it takes requests until it runs. */
	private queueRound(lane: Lane): Round {
		const next: Round = {
			ids: new Set(),
			all: false,
			changes: new Map(),
			done: Promise.resolve(new Map())
		};
		next.done = this.queue.run(async () => {
			if (this.rounds[lane] === next) this.rounds[lane] = null;
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
				this.agents.syncSoon(changes);
			}
			return written;
		}, lane);
		this.rounds[lane] = next;
		return next;
	}

	/**
	 * Places every pending replica of these workloads that fits now, highest priority first
	 * and FIFO within a priority, and records the reason on those that do not fit. The
	 * replicas go to the Reserver together (many per store transaction); each workload is
	 * then written once. Resolves to the nodes to sync. Runs in the queue.
	 */
	async placePending(ids: string[], written?: Map<string, Workload>): Promise<Changes> {
		const changes: Changes = new Map();
		const docs: Versioned<Workload>[] = [];
		const read = await Promise.all(ids.map(id => this.workloads.forRound(id)));
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
				(err: Error) => this.logger.warn(`Replica ${want.key} was not placed:`, err.message)
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
	}

	/**
	 * The writer of a round's workloads, each once: its placed replicas, and the reason on
	 * those that did not fit. A placement the workload no longer wants (deleted, scaled down
	 * or placed otherwise meanwhile) is given back.
	 */
	private roundWriter(changes: Changes, written?: Map<string, Workload>) {
		return async ({ doc, outcomes }: Plan) => {
			if (outcomes.length === 0) return;
			const id = doc.value.id;
			const reason = outcomes.some(o => !o.spot) ? this.shortfall(doc.value) : null;
			let current: Versioned<Workload> | null = doc;
			let unused: string[] = [];
			// Unwritten after every try, what no replica names goes back at the next audit.
			await retryOnConflict(async attempt => {
				if (attempt > 0) current = await this.workloads.get(id);
				if (!current) return;
				const w: Workload = current.value;
				const applied = applyPlacements(w, outcomes, reason, Date.now());
				unused = applied.unused;
				if (applied.changed && !(await this.workloads.write(w, current.version)))
					return CONFLICT;
				if (applied.changed) written?.set(id, w);
				if (w.replicas.some(r => r.state === "pending")) this.waiting.add(id);
				else this.waiting.delete(id);
			});
			// Deleted meanwhile: all it took goes back.
			if (!current) unused = outcomes.filter(o => o.spot).map(o => o.key);
			await Promise.all(unused.map(key => this.reserver.release(key))).catch((err: Error) =>
				this.logger.warn(`Left to the audit to give back (${id}):`, err.message)
			);
			for (const o of outcomes) if (o.spot) addChange(changes, o.spot.nodeID, id);
		};
	}

	/**
	 * Why a workload's request fits no node, for its pending replicas. Finding out scans every
	 * node, so a shape's reason is kept for SHORTFALL_TTL ms (and until the inventory changes):
	 * under churn, scanning for every placement round took a twentieth of the scheduler's CPU.
	 */
	private shortfall(w: Workload): string {
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

	/** Node events came: the Reserver is told the inventory again before the next placement. */
	inventoryChanged(): void {
		this.inventoryStale = true;
	}

	/** Tells the Reserver the inventory's nodes: their status, capacity and labels. */
	async loadInventory(): Promise<void> {
		const items = await this.cluster.nodes();
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
	}

	/** Announces a node's allocation within announceDelay ms, with the others due then. */
	announceAllocation(nodeID: string, a: Allocation): void {
		this.toAnnounce.set(nodeID, a);
		if (this.announceTimer) return;
		this.announceTimer = setTimeout(() => {
			this.announceTimer = null;
			const due = this.toAnnounce;
			this.toAnnounce = new Map();
			for (const [id, allocated] of due) this.cluster.announce(id, allocated);
		}, this.settings.announceDelay);
	}

	/** Stops the announcement timer (the service stops). */
	stop(): void {
		if (this.announceTimer) clearTimeout(this.announceTimer);
	}
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
