/**
 * The answer of `referencePlace(nodes, req)` (placement/reference.ts) without looking at every
 * node: what the scheduler needs when thousands of nodes take thousands of placements a second.
 *
 * Nodes are grouped by machine type: the same CPU and memory capacity, the same GPU models and
 * the same labels. Within a group every node has the same capacity, so "fullest after placing"
 * is "fullest now" for any request (the request adds the same share to each), and a group can
 * keep its ready nodes in one order, by how full they are now. Each group is a treap in that
 * order whose every subtree knows the most free CPU, memory, whole GPUs and shareable GPU
 * memory of any node in it: a placement walks from the fullest end (binpack) or the emptiest
 * (spread) and skips every subtree in which nothing has room, so it touches O(log n) entries
 * plus the few that have room in one resource and not another.
 *
 * The first node that fits in a group is that group's best; the best of the groups, scored by
 * the request's scorer as the reference scores, is the answer. The filters are the reference's
 * own (placement/index.ts), each run where it costs least: the node status filter when a node
 * changes (only ready nodes are in a treap); the node selector once per group, on a node that
 * stands for it, since labels and GPU models are the same for the whole group; and a
 * candidate's own room is compared exactly as the resources filter compares it, and where the
 * group cannot tell (anti-affinity, a GPU model only some of a machine's cards have) the whole
 * chain (`unfit`) decides. The property test holds the index to the reference on random
 * clusters. Ties go to the lowest node id, as in the reference, up to floating-point rounding
 * between nodes of one group.
 *
 * Cost: one query is O(groups × log n); a cluster of a handful of machine types has a handful of
 * groups. A cluster whose every node has its own capacity or its own labels has one group per
 * node and costs what the reference costs.
 */
import { gpusInUse, type Placement, type PlacementNode, type PlacementRequest } from "./placement";
import { GPU_MODEL_SELECTOR, ofModel } from "./placement/gpu-model";
import { isFree, memoryLeft, pickGpus } from "./placement/gpus";
import { nodeSelector, nodeStatus, unfit } from "./placement/index";
import { CPU_SLACK } from "./placement/resources";
import { scorerOf } from "./placement/strategy";

/** One node in its group's treap. */
interface Entry {
	node: PlacementNode;
	/** How full the node is now: its order within the group. */
	key: number;
	/** Random heap priority: keeps the treap balanced whatever the order of updates. */
	prio: number;
	/** GPUs in use, whole or shared (the GPU share of the score). */
	taken: number;
	left: Entry | null;
	right: Entry | null;
	/** Free now on this node. */
	cpu: number;
	memory: number;
	/** GPUs nobody uses, whole or shared. */
	whole: number;
	/** The most GPU memory left on one card that is not given whole (-Infinity: none). */
	share: number;
	/** The most of each in this subtree, this entry included. */
	maxCpu: number;
	maxMemory: number;
	maxWhole: number;
	maxShare: number;
}

/** Nodes of one machine type. */
interface Group {
	/** The node that made the group: its labels and GPU models are the whole group's. */
	sample: PlacementNode;
	root: Entry | null;
	/** Nodes of the group, ready or not: the group goes when the last one does. */
	members: number;
}

/** What a request needs free on one node, in the units of the subtree maxima. */
interface Need {
	cpu: number;
	memory: number;
	whole: number;
	share: number;
	req: PlacementRequest;
	/**
	 * Whether a candidate must also pass `unfit`: only when the group alone cannot tell, that is
	 * with anti-affinity or a GPU model that only some of the group's cards match. Otherwise
	 * the entry's own room is compared exactly as the resources filter compares it, and that is
	 * the answer.
	 */
	strict: boolean;
}

interface Slot {
	entry: Entry;
	group: Group;
	groupKey: string;
	/** In the group's treap: only ready nodes are. */
	indexed: boolean;
}

export class PlacementIndex {
	private readonly slots = new Map<string, Slot>();
	private readonly groups = new Map<string, Group>();

	get size(): number {
		return this.slots.size;
	}

	/** How many machine types the index holds (the factor of its cost per placement). */
	get groupCount(): number {
		return this.groups.size;
	}

	get(id: string): PlacementNode | undefined {
		return this.slots.get(id)?.entry.node;
	}

	has(id: string): boolean {
		return this.slots.has(id);
	}

	/** Every node, for `describeShortfall` and for views; in no particular order. */
	*values(): IterableIterator<PlacementNode> {
		for (const slot of this.slots.values()) yield slot.entry.node;
	}

	/**
	 * Adds a node or replaces what the index knows of it: after each reservation or release on
	 * it, and after a change of status, capacity or labels. The index keeps `node` itself, so the
	 * caller replaces a node rather than changing it in place.
	 */
	update(node: PlacementNode): void {
		const slot = this.slots.get(node.id);
		if (slot) {
			const prev = slot.entry.node;
			// After a reservation only the allocation differs: skip working out the group again.
			const sameGroup =
				(prev.capacity === node.capacity && prev.labels === node.labels) ||
				groupKeyOf(node) === slot.groupKey;
			if (sameGroup) {
				if (slot.indexed) slot.group.root = removeEntry(slot.group.root, slot.entry);
				measure(slot.entry, node);
				slot.indexed = nodeStatus.fits(node) === null;
				if (slot.indexed) slot.group.root = insertEntry(slot.group.root, slot.entry);
				return;
			}
			this.remove(node.id);
		}
		const groupKey = groupKeyOf(node);
		let group = this.groups.get(groupKey);
		if (!group) {
			group = { sample: node, root: null, members: 0 };
			this.groups.set(groupKey, group);
		}
		group.members++;
		const entry = newEntry(node);
		const indexed = nodeStatus.fits(node) === null;
		if (indexed) group.root = insertEntry(group.root, entry);
		this.slots.set(node.id, { entry, group, groupKey, indexed });
	}

	/** Forgets a node (it left the inventory); false when it was not there. */
	remove(id: string): boolean {
		const slot = this.slots.get(id);
		if (!slot) return false;
		if (slot.indexed) slot.group.root = removeEntry(slot.group.root, slot.entry);
		this.slots.delete(id);
		if (--slot.group.members === 0) this.groups.delete(slot.groupKey);
		return true;
	}

	/** What `referencePlace(this.values(), req)` answers: the best node that fits, or null. */
	place(req: PlacementRequest): Placement | null {
		const need = needOf(req);
		const model = req.nodeSelector[GPU_MODEL_SELECTOR];
		const scorer = scorerOf(req.strategy);
		let best: PlacementNode | null = null;
		let bestScore = 0;
		for (const group of this.groups.values()) {
			if (!group.root || !mayFit(group.root, need)) continue;
			if (nodeSelector.fits(group.sample, req) !== null) continue;
			need.strict =
				req.avoid.size > 0 ||
				(model !== undefined && !group.sample.capacity.gpus.every(g => ofModel(g, model)));
			const entry = scorer.fullestFirst
				? lastFit(group.root, need, Infinity)
				: firstOfTies(group.root, need);
			if (!entry) continue;
			const score = scorer.score(entry.node, req.resources, entry.taken);
			if (!best || score > bestScore || (score === bestScore && entry.node.id < best.id)) {
				best = entry.node;
				bestScore = score;
			}
		}
		if (!best) return null;
		return { nodeID: best.id, gpus: pickGpus(best, req) ?? [] };
	}
}

/**
 * Nodes whose scores move together: same capacity (so a request adds the same shares to each)
 * and the same labels and GPU models (so a selector takes all of them or none).
 */
function groupKeyOf(node: PlacementNode): string {
	const labels = Object.keys(node.labels)
		.sort()
		.map(k => [k, node.labels[k]]);
	const models = node.capacity.gpus.map(g => g.model);
	return JSON.stringify([node.capacity.cpu, node.capacity.memory, models, labels]);
}

/** The same sum without the request: within a group, its order is the order of the score. */
function fullnessNow(node: PlacementNode, taken: number): number {
	const gpus = node.capacity.gpus.length;
	return (
		node.allocated.cpu / Math.max(node.capacity.cpu, 1e-9) +
		node.allocated.memory / Math.max(node.capacity.memory, 1) +
		(gpus > 0 ? taken / gpus : 0)
	);
}

function newEntry(node: PlacementNode): Entry {
	const e: Entry = {
		node,
		key: 0,
		prio: Math.random(),
		taken: 0,
		left: null,
		right: null,
		cpu: 0,
		memory: 0,
		whole: 0,
		share: 0,
		maxCpu: 0,
		maxMemory: 0,
		maxWhole: 0,
		maxShare: 0
	};
	measure(e, node);
	return e;
}

/** Sets what the entry knows of `node`; the entry must be out of its treap (its key moves). */
function measure(e: Entry, node: PlacementNode): void {
	let whole = 0;
	let share = -Infinity;
	for (const g of node.capacity.gpus) {
		const a = node.allocated.gpus[g.index];
		if (isFree(a)) whole++;
		share = Math.max(share, memoryLeft(g, a));
	}
	e.node = node;
	e.taken = gpusInUse(node.allocated);
	e.key = fullnessNow(node, e.taken);
	e.cpu = node.capacity.cpu - node.allocated.cpu;
	e.memory = node.capacity.memory - node.allocated.memory;
	e.whole = whole;
	e.share = share;
}

/**
 * What the subtree maxima must reach. They bound each resource separately, so passing does not
 * mean one node has all of it; failing means none has.
 */
function needOf(req: PlacementRequest): Need {
	const r = req.resources;
	return {
		cpu: r.cpu - CPU_SLACK,
		memory: r.memory,
		whole: r.gpu,
		// As in pickGpus: whole GPUs, when asked for, decide; shared memory only otherwise.
		share: r.gpu === 0 && r.gpuMemory > 0 ? r.gpuMemory : -Infinity,
		req,
		strict: true
	};
}

function mayFit(e: Entry, need: Need): boolean {
	return (
		e.maxCpu >= need.cpu &&
		e.maxMemory >= need.memory &&
		e.maxWhole >= need.whole &&
		e.maxShare >= need.share
	);
}

/**
 * The entry's own room is enough (compared as the resources filter compares it) and, where the
 * group cannot tell, `unfit` agrees (anti-affinity, a GPU model only some cards have).
 */
function fits(e: Entry, need: Need): boolean {
	return (
		e.cpu >= need.cpu &&
		e.memory >= need.memory &&
		e.whole >= need.whole &&
		e.share >= need.share &&
		(!need.strict || unfit(e.node, need.req) === null)
	);
}

// The treap: in order of `key`, then of id from highest to lowest, so that walking from the
// fullest end meets equally full nodes lowest id first, as the reference prefers them.

function before(a: Entry, b: Entry): boolean {
	return a.key < b.key || (a.key === b.key && a.node.id > b.node.id);
}

/** Recomputes the subtree maxima of `e` from its own room and its children's maxima. */
function pull(e: Entry): void {
	e.maxCpu = e.cpu;
	e.maxMemory = e.memory;
	e.maxWhole = e.whole;
	e.maxShare = e.share;
	if (e.left) absorb(e, e.left);
	if (e.right) absorb(e, e.right);
}

function absorb(e: Entry, c: Entry): void {
	if (c.maxCpu > e.maxCpu) e.maxCpu = c.maxCpu;
	if (c.maxMemory > e.maxMemory) e.maxMemory = c.maxMemory;
	if (c.maxWhole > e.maxWhole) e.maxWhole = c.maxWhole;
	if (c.maxShare > e.maxShare) e.maxShare = c.maxShare;
}

/** Joins two treaps, every entry of `a` before every entry of `b`. */
function merge(a: Entry | null, b: Entry | null): Entry | null {
	if (!a) return b;
	if (!b) return a;
	if (a.prio > b.prio) {
		a.right = merge(a.right, b);
		pull(a);
		return a;
	}
	b.left = merge(a, b.left);
	pull(b);
	return b;
}

/** Puts `e` in as a leaf, then rotates it up while its priority beats its parent's. */
function insertEntry(t: Entry | null, e: Entry): Entry {
	if (!t) {
		e.left = e.right = null;
		pull(e);
		return e;
	}
	if (before(e, t)) {
		const l = insertEntry(t.left, e);
		t.left = l;
		if (l.prio > t.prio) {
			t.left = l.right;
			pull(t);
			l.right = t;
			pull(l);
			return l;
		}
	} else {
		const r = insertEntry(t.right, e);
		t.right = r;
		if (r.prio > t.prio) {
			t.right = r.left;
			pull(t);
			r.left = t;
			pull(r);
			return r;
		}
	}
	pull(t);
	return t;
}

/** Takes `e` out; it must be in `t` with the key it was inserted with. */
function removeEntry(t: Entry | null, e: Entry): Entry | null {
	if (!t) return null;
	if (t === e) return merge(t.left, t.right);
	if (before(e, t)) t.left = removeEntry(t.left, e);
	else t.right = removeEntry(t.right, e);
	pull(t);
	return t;
}

/** The last entry in order (the fullest) with key ≤ `maxKey` that fits. */
function lastFit(t: Entry | null, need: Need, maxKey: number): Entry | null {
	if (!t || !mayFit(t, need)) return null;
	if (t.key > maxKey) return lastFit(t.left, need, maxKey);
	return (
		lastFit(t.right, need, maxKey) ??
		(fits(t, need) ? t : null) ??
		lastFit(t.left, need, maxKey)
	);
}

/** The first entry in order (the emptiest) that fits. */
function firstFit(t: Entry | null, need: Need): Entry | null {
	if (!t || !mayFit(t, need)) return null;
	return firstFit(t.left, need) ?? (fits(t, need) ? t : null) ?? firstFit(t.right, need);
}

/**
 * The emptiest entry that fits, and of equally empty ones the lowest id: the order puts those
 * last among their key, so once the emptiest key is known, walk back from its end.
 */
function firstOfTies(t: Entry, need: Need): Entry | null {
	const first = firstFit(t, need);
	return first && lastFit(t, need, first.key);
}
