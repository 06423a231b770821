/**
 * What each node's agent is told, and when. After a placement round a node is sent the new
 * lists of the workloads that changed there (syncWorkloads), gathered for syncDelay ms so that a
 * busy node gets one message per while; after a node event, the complete list of what it
 * should run (syncNodes). At every reconcile each live node is sent the digest of its list
 * (checkNodes, services/shared/replica-digest.ts) and gets the complete list only when its own
 * differs at two checks in a row: a change lost on its way is repaired within two reconciles,
 * and a node whose lists are right costs a few bytes, not megabytes. Every list carries a generation number, so that
 * an agent can tell an old list that arrives late from a new one (node-agent/sync-order.ts).
 */
import type { CallingOptions, LoggerInstance } from "moleculer";
import { NodeDownError } from "../shared/errors";
import type { ReplicaSpec } from "../shared/types";
import type { ClusterIdentity } from "../shared/store/identity";
import { nextTurn, type WorkloadRepository } from "./repository";
import type { SerialQueue } from "./serial-queue";
import { replicaSpec, type Workload } from "./workload";

/** Workloads put on the node lists between two turns of the event loop (syncNodes). */
const LIST_BATCH = 500;

/** Per node, the workloads whose replicas there changed. */
export type Changes = Map<string, Set<string>>;

export function addChange(changes: Changes, nodeID: string, workloadId: string): void {
	let ids = changes.get(nodeID);
	if (!ids) changes.set(nodeID, (ids = new Set()));
	ids.add(workloadId);
}

/** How the scheduler reaches the agents (the broker, in the service). */
export interface AgentLink {
	/** Whether the node is connected now. */
	connected(nodeID: string): boolean;
	call(action: string, params: object, opts: CallingOptions): Promise<unknown>;
	/**
	 * The store's identity when the store is the cluster's now (a fresh read, made after the
	 * lists were read), else null: then nothing is sent, since a list read from a store that
	 * was emptied or replaced would stop replicas that still run (identity-guard.ts). Agents
	 * get it with each list and refuse a list of another identity than theirs.
	 */
	trustedIdentity(): Promise<ClusterIdentity | null>;
}

export interface AgentSyncSettings {
	/**
	 * ms a placement round's syncs wait, to go out with those of the rounds that follow: under
	 * churn a busy node is sent one list per while, not one per round.
	 */
	syncDelay: number;
}

export class AgentSync {
	/** Changes waiting for the sync timer (see syncSoon). */
	private toSync: Changes = new Map();
	/** Nodes whose last check did not match (checked). */
	private readonly mismatched = new Set<string>();
	/** Changes a running syncWorkloads took from toSync and has yet to send (checkNodes). */
	private sending: Changes = new Map();
	private syncTimer: NodeJS.Timeout | null = null;
	/** The last generation handed out (see nextGeneration). */
	private generation = 0;
	/** When `untrusted` last warned. */
	private warnedAt = 0;

	constructor(
		private readonly agents: AgentLink,
		private readonly workloads: WorkloadRepository,
		private readonly queue: SerialQueue,
		private readonly settings: AgentSyncSettings,
		private readonly logger: LoggerInstance
	) {}

	/**
	 * Tells the nodes the new lists of these workloads in syncDelay ms, with every other
	 * change made meanwhile.
	 */
	syncSoon(changes: Changes): void {
		for (const [nodeID, ids] of changes)
			for (const id of ids) addChange(this.toSync, nodeID, id);
		if (this.syncTimer || this.toSync.size === 0) return;
		this.syncTimer = setTimeout(() => {
			this.syncTimer = null;
			// Taken when the task runs, not now: until then they are still to send, and a
			// digest check made meanwhile leaves them out (checkNodes).
			this.queue
				.run(() => {
					const due = this.toSync;
					this.toSync = new Map();
					this.sending = due;
					return this.syncWorkloads(due).finally(() => (this.sending = new Map()));
				})
				.catch((err: Error) => this.logger.warn("Syncing nodes failed:", err.message));
		}, this.settings.syncDelay);
	}

	/** Sends each node its replicas of the workloads that changed there (sync-order.ts). */
	async syncWorkloads(changes: Changes): Promise<void> {
		// Only nodes connected now: one that is away gets its whole list when it is back.
		const nodes = [...changes.keys()].filter(id => this.agents.connected(id));
		const ids = [...new Set(nodes.flatMap(n => [...changes.get(n)!]))];
		if (ids.length === 0) return;
		// Numbered before reading: a list never holds less than its number promises.
		const generation = this.nextGeneration();
		const docs = await this.workloads.readCached(ids);
		const identity = await this.agents.trustedIdentity();
		if (!identity) return this.untrusted();
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
			this.tellAgent(nodeID, "agent.syncWorkloads", { workloads, generation, identity });
		}
	}

	/** Tells each node's agent the complete set of replicas it should run now. */
	async syncNodes(nodeIDs: Iterable<string>): Promise<void> {
		// Only nodes connected now: one that is away gets its list when it is back (node.up).
		const ids = [...new Set(nodeIDs)].filter(id => this.agents.connected(id));
		if (ids.length === 0) return;
		// Numbered before reading, as in syncWorkloads. Read here, not handed the reconcile's
		// read: the reconcile writes workloads between its read and this (replicas released
		// for a lost reservation), and a list built from before such a write would still name
		// the released replica, with a generation newer than any list that spoke for it. Only
		// what moved since the last read is read again (allCached).
		const generation = this.nextGeneration();
		const docs = await this.workloads.allCached();
		const identity = await this.agents.trustedIdentity();
		if (!identity) return this.untrusted();
		const lists = new Map<string, ReplicaSpec[]>(ids.map(id => [id, []]));
		for (const [i, { value: w }] of docs.entries()) {
			// Thousands of workloads: other requests get their turn between batches.
			if (i > 0 && i % LIST_BATCH === 0) await nextTurn();
			for (const r of w.replicas) if (r.node) lists.get(r.node)?.push(replicaSpec(w, r));
		}
		for (const [nodeID, replicas] of lists) {
			this.tellAgent(nodeID, "agent.sync", { replicas, generation, identity });
			// Each list is serialised as it is sent: a turn between two.
			await nextTurn();
		}
	}

	/**
	 * Sends each of these nodes the digest of the replicas it should run (agent.check), and
	 * its whole list to each one that answers that its own differs, or that cannot check (an
	 * agent from before checks). Left out of a node's digest, on both sides: the workloads
	 * whose changes are still to be sent, which the node hears of with a newer generation.
	 * Runs in the queue (no round halfway through its writes), as one short task: one pass
	 * over the repository's copies, read nothing.
	 */
	async checkNodes(nodeIDs: Iterable<string>): Promise<void> {
		const ids = [...new Set(nodeIDs)].filter(id => this.agents.connected(id));
		if (ids.length === 0) return;
		const identity = await this.agents.trustedIdentity();
		if (!identity) return this.untrusted();
		// From here until the last check is sent nothing else runs, so that no list goes out
		// in between: every list sent before has a lower generation and is in the copies,
		// every one sent after has a higher one and is in toSync or sending now (left out).
		const generation = this.nextGeneration();
		// The repository's copies, read by the reconcile that checks, with this scheduler's
		// writes since, summed per node as they change: reading every workload again would
		// cost what a list does. A change another scheduler made meanwhile shows as a
		// mismatch, and its node gets its list.
		for (const nodeID of ids) {
			const skip = [
				...new Set([
					...(this.toSync.get(nodeID) ?? []),
					...(this.sending.get(nodeID) ?? [])
				])
			];
			const digest = this.workloads.nodeDigest(nodeID, skip);
			this.agents
				.call(
					"agent.check",
					{ digest, generation, skip, identity },
					{ nodeID, retries: 0, timeout: 5000 }
				)
				.then(
					answer => this.checked(nodeID, (answer as { match?: boolean }).match === true),
					(err: Error & { type?: string }) => {
						// An agent without the check is sent its list, as before checks.
						if (
							err.type === "SERVICE_NOT_FOUND" ||
							err.type === "SERVICE_NOT_AVAILABLE"
						)
							this.resync(nodeID);
						else this.logger.debug(`Could not check node '${nodeID}':`, err.message);
					}
				);
		}
	}

	/**
	 * A node's answer to its check. Only a second mismatch in a row sends its whole list: a
	 * list on its way while the digest was made (the transporter does not order one call
	 * after another) makes one mismatch that the next check no longer sees, and a whole list
	 * is megabytes for a busy node; a change that got lost is still missing at the next
	 * check.
	 */
	private checked(nodeID: string, match: boolean): void {
		if (match) this.mismatched.delete(nodeID);
		else if (!this.mismatched.has(nodeID)) this.mismatched.add(nodeID);
		else {
			this.mismatched.delete(nodeID);
			this.resync(nodeID);
		}
	}

	/** Sends a node whose list differs its whole list, in the queue. */
	private resync(nodeID: string): void {
		this.logger.info(
			`Node ${nodeID} runs another list than the scheduler's: sending it the whole list.`
		);
		this.queue
			.run(() => this.syncNodes([nodeID]))
			.catch((err: Error) => this.logger.warn(`Syncing node ${nodeID} failed:`, err.message));
	}

	/** Nothing is sent while the store is not the cluster's; said once per while. */
	private untrusted(): void {
		if (Date.now() - this.warnedAt < 30_000) return;
		this.warnedAt = Date.now();
		this.logger.warn(
			"Agents are not synced: the store is not the cluster's (see its identity); every replica keeps running."
		);
	}

	/** Stops the sync timer, as the service stops. */
	stop(): void {
		if (this.syncTimer) clearTimeout(this.syncTimer);
	}

	/**
	 * Sends a node's agent a list, not awaited: a node that died a moment ago answers only at
	 * the timeout, and the scheduling queue must not wait for it. A node that is away gets
	 * its list when it comes back (node.up), and the reconcile loop repeats every list.
	 */
	private tellAgent(
		nodeID: string,
		action: "agent.sync" | "agent.syncWorkloads",
		params: Record<string, unknown>
	): void {
		this.agents
			.call(action, params, { nodeID, retries: 0, timeout: 5000 })
			.catch((err: Error) => {
				this.logger.debug(`Could not sync node '${nodeID}':`, err.message);
			});
	}

	/**
	 * Orders the lists sent to agents: a later list always has a larger number. Numbers are
	 * the clock in µs, so that two schedulers' lists order by time too (as far as their
	 * clocks agree); the random part keeps two from the same millisecond apart.
	 */
	private nextGeneration(): number {
		this.generation = Math.max(
			this.generation + 1,
			Date.now() * 1000 + Math.floor(Math.random() * 1000)
		);
		return this.generation;
	}
}

/** A replica's recent output as its agent answers it, or why it could not. */
export interface ReplicaLogs {
	replica: number;
	node: string | null;
	lines: unknown[];
	error?: string;
}

/**
 * Recent output of a workload's placed replicas (one, or every one), asked of their agents
 * with `call` (the request's context, in the service); an agent that fails answers an error.
 * A replica on a node in `down` (the inventory's down nodes) is not asked, since its agent
 * could only answer at the request's timeout: it answers "node … is down" at once, and when
 * every replica asked for is on a down node the whole request is NodeDownError (503).
 */
export async function replicaLogs(
	w: Workload,
	opts: { replica?: number; limit?: number },
	down: ReadonlySet<string>,
	call: (nodeID: string, params: object) => Promise<unknown[]>
): Promise<ReplicaLogs[]> {
	const replicas = w.replicas.filter(
		r => r.node && (opts.replica === undefined || r.index === opts.replica)
	);
	if (replicas.length > 0 && replicas.every(r => down.has(r.node!)))
		throw new NodeDownError(
			[...new Set(replicas.map(r => r.node!))].sort(),
			`the logs of workload '${w.name}' are on it`
		);
	return Promise.all(
		replicas.map(async r => {
			if (down.has(r.node!))
				return {
					replica: r.index,
					node: r.node,
					lines: [],
					error: `node ${r.node} is down`
				};
			try {
				const lines = await call(r.node!, {
					workloadId: w.id,
					replica: r.index,
					limit: opts.limit ?? 200
				});
				return { replica: r.index, node: r.node, lines };
			} catch (err) {
				return { replica: r.index, node: r.node, lines: [], error: (err as Error).message };
			}
		})
	);
}
