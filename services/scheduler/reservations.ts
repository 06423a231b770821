/**
 * Reserver: places replicas with a PlacementIndex and commits them to the store, many at once.
 *
 * Reservations and releases queued together go to the store as one `transact` (group commit):
 * one version check and one write per node touched, however many replicas landed on it or left
 * it, plus a write per replica (and, for a new one, a check that it is not placed yet). A store
 * round trip or an SQLite commit then carries hundreds of placements instead of one,
 * which is what lets one scheduler place tens of thousands of replicas a second. The batch is
 * placed against the index as it goes, so two replicas of one batch never count the same free
 * GPU twice.
 *
 * The version checks are what keep two schedulers (two Reservers, two store connections) from
 * over-committing a node: a batch whose node moved underneath fails as a whole, and then each
 * of its requests is retried alone, after reading the nodes and replicas it touched again, and
 * placed anew on what the store holds now; a request that loses maxConflicts times in a row
 * fails with ConflictError. This relies on allocation documents never being deleted (a deleted
 * and re-created one would start again at version 1).
 *
 * What other schedulers reserve reaches this one's view through those conflicts; what they
 * release only through `refresh()`, which the scheduler's periodic reconcile calls.
 *
 * Each placed replica is also kept as its own document in "placements" (key: the replica key,
 * value: node, GPUs, resources and when), written in the same transaction as the allocation. Why a
 * document per replica, rather than replica keys inside the node's allocation: a release needs
 * exactly what was reserved (the request and the GPU indexes), and a restarted scheduler needs,
 * per replica, where it runs; the allocation stays a small fixed-size sum that is cheap to
 * rewrite on every batch, where a list of every replica on a busy node would grow with it. The
 * placement document is also the idempotency record: creating it checks version 0, so a
 * replica reserved twice, by one scheduler or by two, takes resources once.
 *
 * What this Reserver knows of the placements is a cache, and every answer it gives is checked
 * against the store in the batch's transaction: "placed already" checks the record's version,
 * "not placed" (on release) checks that there is no record. So a placement another scheduler
 * released, or made, is never answered from a stale cache. A key is never placed twice over
 * time (the scheduler's keys carry the placement's fence), so a record's version cannot come
 * back to an old value.
 */
import { ConflictError } from "../shared/errors";
import { COLLECTIONS } from "../shared/collections";
import type { DocWrite, Store, VersionCheck, Versioned } from "../shared/store";
import type { ResourceRequest } from "../shared/types";
import {
	copyAllocation,
	emptyAllocation,
	releaseInto,
	reserveInto,
	type Allocation,
	type Placement,
	type PlacementNode,
	type PlacementRequest
} from "./placement";
import { PlacementIndex } from "./placement-index";
import { readMoved } from "./repository";

/** The collection of per-replica placement records. */
export const PLACEMENTS = "placements";

/** A placed replica as the store keeps it: enough to release it and to tell its node. */
export interface PlacementRecord {
	nodeID: string;
	gpus: number[];
	resources: ResourceRequest;
	/** When it was committed (ms): the scheduler's audit leaves young records alone. */
	at: number;
}

/** A node as the inventory describes it; its allocation is the store's. */
export type InventoryNode = Omit<PlacementNode, "allocated">;

export interface ReserverOptions {
	/**
	 * Most requests in one transaction; default 4096. Bigger batches cost fewer commits per
	 * request (SQLite writes each dirty page once per commit, and each node's allocation is
	 * written once per batch however many replicas it took) but hold the store longer: under
	 * the scheduler benchmark's load a batch holds SQLite's write lock for about 13 ms, 50 at
	 * most, and placed 7-10% more a second than batches of 1,024.
	 */
	maxBatch?: number;
	/** Tries of one request after its batch conflicted; default 20. */
	maxConflicts?: number;
	/** Told each committed allocation of a node (to announce it). */
	onAllocation?(nodeID: string, allocation: Allocation): void;
}

export interface ReserverStats {
	/** Transactions sent, successful or not. */
	transactions: number;
	/** Requests settled (placed, released, or answered "nothing fits"/"not placed"). */
	settled: number;
	/** Transactions that failed a version check. */
	conflicts: number;
}

interface Waiter<T> {
	resolve(value: T): void;
	reject(err: unknown): void;
	settled: boolean;
}

interface ReserveOp extends Waiter<Placement | null> {
	kind: "reserve";
	key: string;
	req: PlacementRequest;
	/** While its batch commits: the answer, and the record when it is placed now. */
	answer: Placement | null;
	record: PlacementRecord | null;
}

interface ReleaseOp extends Waiter<boolean> {
	kind: "release";
	key: string;
	answer: boolean;
}

interface RefreshOp extends Waiter<void> {
	kind: "refresh";
	key: null;
	placements: boolean;
}

type Op = ReserveOp | ReleaseOp | RefreshOp;

type KeyedOp = Exclude<Op, { kind: "refresh" }>;

const ALLOCATIONS = COLLECTIONS.allocations;

export class Reserver {
	/** The nodes with the allocations this Reserver last saw committed (or is committing). */
	readonly index = new PlacementIndex();
	readonly stats: ReserverStats = { transactions: 0, settled: 0, conflicts: 0 };

	private readonly maxBatch: number;
	private readonly maxConflicts: number;
	private readonly onAllocation?: (nodeID: string, allocation: Allocation) => void;
	/** Each node's allocation as last read or written, with its version (absent: version 0). */
	private readonly allocations = new Map<string, Versioned<Allocation>>();
	private readonly placed = new Map<string, Versioned<PlacementRecord>>();
	private queue: Op[] = [];
	private head = 0;
	private draining = false;

	constructor(
		private readonly store: Store,
		opts: ReserverOptions = {}
	) {
		this.maxBatch = opts.maxBatch ?? 4096;
		this.maxConflicts = opts.maxConflicts ?? 20;
		this.onAllocation = opts.onAllocation;
	}

	/** Takes the inventory's nodes and reads every allocation and placement from the store. */
	async load(nodes: Iterable<InventoryNode>): Promise<void> {
		for (const node of nodes) this.setNode(node);
		await this.refresh({ placements: true });
	}

	/** A node joined or changed status, capacity or labels; what is reserved on it stays. */
	setNode(node: InventoryNode): void {
		const allocated =
			this.index.get(node.id)?.allocated ??
			this.allocations.get(node.id)?.value ??
			emptyAllocation();
		this.index.update(withAllocation(node, allocated));
	}

	/** A node left the inventory: nothing more is placed there (its reservations stay). */
	removeNode(id: string): void {
		this.index.remove(id);
	}

	/**
	 * Places replica `key` and commits it: resolves to where it went, or null when no node fits
	 * now. Reserving a key that is placed already resolves to its placement, taking nothing.
	 */
	reserve(key: string, req: PlacementRequest): Promise<Placement | null> {
		return new Promise((resolve, reject) =>
			this.enqueue({
				kind: "reserve",
				key,
				req,
				resolve,
				reject,
				settled: false,
				answer: null,
				record: null
			})
		);
	}

	/** Gives back what replica `key` took; resolves to false when it was not placed. */
	release(key: string): Promise<boolean> {
		return new Promise((resolve, reject) =>
			this.enqueue({ kind: "release", key, resolve, reject, settled: false, answer: false })
		);
	}

	/**
	 * Reads every allocation again, between two batches: to catch up with what other
	 * schedulers released (what they reserved shows up through conflicts anyway). With
	 * `placements`, every placement record too (for an audit): the placements this Reserver
	 * does not know, or knows wrong, cost it only a conflict when it meets them.
	 */
	refresh(opts: { placements?: boolean } = {}): Promise<void> {
		return new Promise((resolve, reject) =>
			this.enqueue({
				kind: "refresh",
				key: null,
				placements: opts.placements ?? false,
				resolve,
				reject,
				settled: false
			})
		);
	}

	/** Where replica `key` is, as far as this Reserver knows. */
	placementOf(key: string): PlacementRecord | undefined {
		return this.placed.get(key)?.value;
	}

	/** Every placement this Reserver knows, by key (all of them after a refresh of placements). */
	*placementEntries(): IterableIterator<[string, PlacementRecord]> {
		for (const [key, doc] of this.placed) yield [key, doc.value];
	}

	private enqueue(op: Op): void {
		this.queue.push(op);
		if (!this.draining) {
			this.draining = true;
			// After the caller's synchronous loop (a round asks for all its replicas in one),
			// not after a turn of the event loop: under load a turn is the wait for every
			// request ready on the sockets, and an urgent round's one placement would wait it.
			queueMicrotask(() => void this.drain());
		}
	}

	/**
	 * Commits batch after batch until the queue is empty. Between two batches it yields to the
	 * event loop: the embedded store answers synchronously, and the callers that queue the next
	 * requests run in between, so without that the loop would starve timers and I/O.
	 */
	private async drain(): Promise<void> {
		while (this.head < this.queue.length) {
			await this.run(this.take());
			if (this.head < this.queue.length) await new Promise(resolve => setImmediate(resolve));
		}
		this.draining = false;
	}

	/**
	 * The next batch: up to maxBatch requests in queue order, at most one per replica key (a
	 * second request of the same key waits for the next batch, to see the first one's outcome).
	 * A refresh goes alone.
	 */
	private take(): Op[] {
		const batch: Op[] = [];
		const keys = new Set<string>();
		const later: Op[] = [];
		while (this.head < this.queue.length && batch.length < this.maxBatch) {
			const op = this.queue[this.head];
			if (op.kind === "refresh") {
				if (batch.length === 0) {
					this.head++;
					batch.push(op);
				}
				break;
			}
			this.head++;
			if (keys.has(op.key)) later.push(op);
			else {
				keys.add(op.key);
				batch.push(op);
			}
		}
		// Drop what was taken once it is half the array: amortized O(1) per request.
		if (later.length || this.head * 2 >= this.queue.length) {
			this.queue = later.concat(this.queue.slice(this.head));
			this.head = 0;
		}
		return batch;
	}

	private async run(batch: Op[]): Promise<void> {
		try {
			if (batch[0].kind === "refresh") {
				await this.readAll(batch[0].placements);
				settle(batch[0], undefined);
				return;
			}
			const ops = batch as KeyedOp[];
			if (await this.attempt(ops)) return;
			// Someone else moved first: each request alone, on what the store holds now.
			for (const op of ops) {
				for (let tries = 1; !op.settled; tries++) {
					if (tries >= this.maxConflicts) {
						op.reject(
							new ConflictError("The nodes kept changing; try again.", {
								key: op.key
							})
						);
						op.settled = true;
					} else await this.attempt([op]);
				}
			}
		} catch (err) {
			for (const op of batch) {
				if (op.settled) continue;
				op.settled = true;
				op.reject(err);
			}
		}
	}

	/**
	 * Places and commits `ops` in one transaction; false (nothing settled, what it touched read
	 * again) when a version check failed.
	 */
	private async attempt(ops: KeyedOp[]): Promise<boolean> {
		/** Each touched node's allocation after this batch. */
		const after = new Map<string, Allocation>();
		const checks: VersionCheck[] = [];
		const writes: DocWrite[] = [];
		const now = Date.now();
		for (const op of ops) {
			const had = this.placed.get(op.key);
			if (op.kind === "reserve") {
				op.record = null;
				if (had) {
					op.answer = { nodeID: had.value.nodeID, gpus: had.value.gpus };
					checks.push({ collection: PLACEMENTS, id: op.key, version: had.version });
					continue;
				}
				const spot = this.index.place(op.req);
				op.answer = spot;
				if (!spot) continue;
				// Spelled out, not spread from spot: every record then has one shape, which
				// JSON.stringify and property reads handle fastest (measured: 7-13% more placements/s).
				const record: PlacementRecord = {
					nodeID: spot.nodeID,
					gpus: spot.gpus,
					resources: op.req.resources,
					at: now
				};
				op.record = record;
				const draft = this.draft(after, spot.nodeID);
				reserveInto(draft, op.key, record.resources, spot.gpus);
				this.reindex(spot.nodeID, draft);
				checks.push({ collection: PLACEMENTS, id: op.key, version: 0 });
				writes.push({ collection: PLACEMENTS, id: op.key, value: record });
			} else {
				op.answer = had !== undefined;
				if (!had) {
					checks.push({ collection: PLACEMENTS, id: op.key, version: 0 });
					continue;
				}
				const { nodeID, resources, gpus } = had.value;
				const draft = this.draft(after, nodeID);
				releaseInto(draft, op.key, resources, gpus);
				this.reindex(nodeID, draft);
				// No check of the record itself: whoever changed it wrote its node's allocation in
				// the same transaction, so the node's check below catches that.
				writes.push({ collection: PLACEMENTS, id: op.key, value: null });
			}
		}
		for (const [nodeID, value] of after) {
			const version = this.allocations.get(nodeID)?.version ?? 0;
			checks.push({ collection: ALLOCATIONS, id: nodeID, version });
			writes.push({ collection: ALLOCATIONS, id: nodeID, value });
		}
		let ok = true;
		if (checks.length) {
			this.stats.transactions++;
			try {
				ok = await this.store.transact(checks, writes);
			} catch (err) {
				for (const nodeID of after.keys()) this.show(nodeID, this.committed(nodeID));
				throw err;
			}
		}
		if (!ok) {
			this.stats.conflicts++;
			for (const nodeID of after.keys()) this.show(nodeID, this.committed(nodeID));
			// The nodes of cached records too: a record that changed moved its node's allocation.
			const nodeIDs = new Set(after.keys());
			for (const op of ops) {
				const had = this.placed.get(op.key);
				if (had) nodeIDs.add(had.value.nodeID);
			}
			await this.read(
				[...nodeIDs],
				ops.map(op => op.key)
			);
			return false;
		}
		for (const [nodeID, value] of after) {
			const version = (this.allocations.get(nodeID)?.version ?? 0) + 1;
			this.allocations.set(nodeID, { value, version });
			this.show(nodeID, value);
			this.onAllocation?.(nodeID, value);
		}
		for (const op of ops) {
			op.settled = true;
			if (op.kind === "reserve") {
				if (op.record) this.placed.set(op.key, { value: op.record, version: 1 });
				op.resolve(op.answer);
			} else {
				if (op.answer) this.placed.delete(op.key);
				op.resolve(op.answer);
			}
		}
		this.stats.settled += ops.length;
		return true;
	}

	/**
	 * The batch's own copy of a node's allocation, made at its first change in the batch: the
	 * batch's changes go into it in place, and the committed one stays as it was until the
	 * transaction succeeds.
	 */
	private draft(after: Map<string, Allocation>, nodeID: string): Allocation {
		let draft = after.get(nodeID);
		if (!draft) {
			draft = copyAllocation(this.committed(nodeID));
			after.set(nodeID, draft);
		}
		return draft;
	}

	/** Within a batch: the index sees the node's changed draft at once. */
	private reindex(nodeID: string, draft: Allocation): void {
		const node = this.index.get(nodeID);
		if (node) this.index.update(withAllocation(node, draft));
	}

	private committed(nodeID: string): Allocation {
		return this.allocations.get(nodeID)?.value ?? emptyAllocation();
	}

	/** Puts an allocation into the index, when the node is in the inventory. */
	private show(nodeID: string, allocated: Allocation): void {
		const node = this.index.get(nodeID);
		if (node && node.allocated !== allocated)
			this.index.update(withAllocation(node, allocated));
	}

	/** Reads some nodes' allocations and some replicas' placements again. */
	private async read(nodeIDs: string[], keys: string[]): Promise<void> {
		await Promise.all([
			...nodeIDs.map(async nodeID => {
				const doc = await this.store.get<Allocation>(ALLOCATIONS, nodeID);
				if (doc) this.allocations.set(nodeID, doc);
				else this.allocations.delete(nodeID);
				this.show(nodeID, this.committed(nodeID));
			}),
			...keys.map(async key => {
				const doc = await this.store.get<PlacementRecord>(PLACEMENTS, key);
				if (doc) this.placed.set(key, doc);
				else this.placed.delete(key);
			})
		]);
	}

	private async readAll(withPlacements: boolean): Promise<void> {
		const allocations = await this.store.list<Allocation>(ALLOCATIONS);
		this.allocations.clear();
		for (const d of allocations) this.allocations.set(d.id, d);
		if (withPlacements) await this.readPlacements();
		for (const node of [...this.index.values()]) this.show(node.id, this.committed(node.id));
	}

	/**
	 * Catches the placement records up with the store: their versions are listed, and only
	 * the records whose version moved are read, a batch at a time with a turn of the event
	 * loop between. Most were written by this Reserver and are known already; reading tens of
	 * thousands of them for every audit held the event loop for tens of ms.
	 */
	private async readPlacements(): Promise<void> {
		const versions = await this.store.listVersions(PLACEMENTS);
		for (const key of [...this.placed.keys()]) if (!versions.has(key)) this.placed.delete(key);
		await readMoved(
			versions,
			key => this.placed.get(key)?.version,
			key => this.store.get<PlacementRecord>(PLACEMENTS, key),
			(key, doc) => (doc ? this.placed.set(key, doc) : this.placed.delete(key))
		);
	}
}

/**
 * The node with another allocation, for the index (which keeps what it is given). Spelled out,
 * not spread: this runs for every placement and release, and every node keeps one shape.
 */
function withAllocation(node: InventoryNode, allocated: Allocation): PlacementNode {
	return {
		id: node.id,
		status: node.status,
		labels: node.labels,
		capacity: node.capacity,
		allocated
	};
}

function settle<T>(w: Waiter<T>, value: T): void {
	w.settled = true;
	w.resolve(value);
}
