/**
 * Capacity: a Moleculer load-balancing strategy that sends a call to the replica on the node with
 * the most free capacity, as the agents' `node.report` events tell it. It has the shape of core
 * `src/strategies/cpu-usage.js`: a random sample of `sampleCount` candidates, the best of the
 * sample wins, so that callers spread over the freer nodes instead of all piling onto the single
 * emptiest one between two reports.
 *
 * Free capacity of a node = min(free CPU fraction, free memory fraction), each 0–1: the scarcer
 * resource decides, as it is the one a call would run out of. GPUs are left out: a call carries no
 * resource request to weigh them with, and GPU placement is the scheduler's business.
 *
 * Without fresh reports for at least two sampled candidates there is nothing to compare, and the
 * call goes round-robin: Moleculer's default, cheap and stateless. Moleculer's Latency strategy
 * is not reused because it pings every node on its own timer and keeps master/slave state on the
 * local bus, far more than a fallback for a few seconds after a node joins deserves.
 *
 * Local endpoints stay Moleculer's business: with `preferLocal` it never asks a strategy when the
 * node itself has the action.
 */
import { Strategies } from "moleculer";
import type {
	BaseStrategy,
	BrokerNode,
	Context,
	Endpoint,
	ServiceBroker,
	ServiceRegistry,
	ServiceSchema
} from "moleculer";
import { EVENTS } from "../services/shared/events";
import type { NodeReport } from "../services/shared/types";

export interface CapacityStrategyOptions {
	/** How many random candidates one call compares; 0, or more than there are, compares all. */
	sampleCount: number;
	/** A report older than this (ms, by this node's clock) no longer counts. */
	maxAge: number;
	/**
	 * Candidates whose free capacity is within this of the best (0–1) are a tie, broken at random:
	 * two nodes a hair apart would otherwise take all calls in turn, one report interval each.
	 */
	tieMargin: number;
}

export const DEFAULT_CAPACITY_OPTIONS: CapacityStrategyOptions = {
	sampleCount: 3,
	maxAge: 10_000,
	tieMargin: 0.05
};

/** A uniform random integer in [0, n). */
export type RandomIndex = (n: number) => number;

const randomIndex: RandomIndex = n => Math.floor(Math.random() * n);

function freeFraction(used: number, total: number): number {
	return total > 0 ? Math.min(1, Math.max(0, 1 - used / total)) : 0;
}

/** A node's free capacity, 0–1: the smaller of its free CPU and free memory fractions. */
export function freeCapacity({ capacity, usage }: Pick<NodeReport, "capacity" | "usage">): number {
	return Math.min(
		freeFraction(usage.cpu, capacity.cpu),
		freeFraction(usage.memory, capacity.memory)
	);
}

/** The latest free capacity of each node, and when this node heard it. */
export class CapacityTable {
	private readonly entries = new Map<string, { free: number; receivedAt: number }>();

	update(report: NodeReport, now: number): void {
		// A malformed report (another agent version, a hand-made event) is ignored, not thrown on
		// every two seconds.
		if (typeof report?.nodeID !== "string" || !report.capacity || !report.usage) return;
		const free = freeCapacity(report);
		if (Number.isFinite(free)) this.entries.set(report.nodeID, { free, receivedAt: now });
	}

	remove(nodeID: string): void {
		this.entries.delete(nodeID);
	}

	/** The node's free capacity, or null when it has no report at most `maxAge` old. */
	freeOf(nodeID: string, now: number, maxAge: number): number | null {
		const entry = this.entries.get(nodeID);
		return entry && now - entry.receivedAt <= maxAge ? entry.free : null;
	}

	get size(): number {
		return this.entries.size;
	}
}

/** `count` distinct indexes below `length`, each subset equally likely (Floyd's algorithm). */
function sampleIndexes(length: number, count: number, random: RandomIndex): Iterable<number> {
	if (count <= 0 || count >= length) return Array.from({ length }, (_, i) => i);
	const picked = new Set<number>();
	for (let j = length - count; j < length; j++) {
		const t = random(j + 1);
		picked.add(picked.has(t) ? j : t);
	}
	return picked;
}

/**
 * The candidate on the node with the most free capacity among a random sample of them, or null
 * when fewer than two sampled candidates have a fresh report and the caller must fall back.
 * Candidates are Moleculer endpoints or anything shaped like them.
 */
export function pickByCapacity<T extends { node: { id: string } }>(
	candidates: readonly T[],
	table: CapacityTable,
	now: number,
	opts: CapacityStrategyOptions,
	random: RandomIndex = randomIndex
): T | null {
	const scored: Array<{ candidate: T; free: number }> = [];
	let best = -Infinity;
	for (const i of sampleIndexes(candidates.length, opts.sampleCount, random)) {
		const candidate = candidates[i];
		const free = table.freeOf(candidate.node.id, now, opts.maxAge);
		if (free === null) continue;
		scored.push({ candidate, free });
		best = Math.max(best, free);
	}
	if (scored.length < 2) return null;
	const top = scored.filter(s => s.free >= best - opts.tieMargin);
	return top[random(top.length)].candidate;
}

/**
 * `node.report` is a broadcast: it reaches only nodes with a service listening to it. This one
 * listens on the strategy's behalf, and forgets nodes as soon as Moleculer sees them leave.
 */
function capacityService(table: CapacityTable): ServiceSchema {
	return {
		name: "$isa-capacity",
		events: {
			[EVENTS.nodeReport](ctx: Context<NodeReport>) {
				table.update(ctx.params, Date.now());
			},
			"$node.disconnected"(ctx: Context<{ node: { id: string } }>) {
				table.remove(ctx.params.node.id);
			}
		}
	};
}

const tables = new WeakMap<ServiceBroker, CapacityTable>();

/**
 * The broker's one table, shared by the strategy instances of all its actions and events, with
 * the service that fills it. Moleculer builds a strategy only when it registers an action or an
 * event (a local service starting, a remote node's INFO), never in the broker's constructor: a
 * service created then is started along with the others, or at once on a broker already up.
 */
export function capacityTableOf(broker: ServiceBroker): CapacityTable {
	const existing = tables.get(broker);
	if (existing) return existing;
	const table = new CapacityTable();
	// Set before the service exists: its own events get strategies too, which must find this table.
	tables.set(broker, table);
	broker.createService(capacityService(table));
	return table;
}

export class CapacityStrategy extends Strategies.Base {
	readonly opts: CapacityStrategyOptions;
	readonly table: CapacityTable;
	private readonly fallback: BaseStrategy;

	constructor(
		registry: ServiceRegistry,
		broker: ServiceBroker,
		opts?: Partial<CapacityStrategyOptions>
	) {
		super(registry, broker, opts);
		this.opts = { ...DEFAULT_CAPACITY_OPTIONS, ...opts };
		this.table = capacityTableOf(broker);
		this.fallback = new Strategies.RoundRobin(registry, broker, opts);
	}

	// Moleculer types `endpoint.node` loosely; it is the endpoint's BrokerNode.
	select(list: Array<Endpoint & { node: BrokerNode }>, ctx?: Context): Endpoint {
		return (
			pickByCapacity(list, this.table, Date.now(), this.opts) ??
			this.fallback.select(list, ctx)
		);
	}
}

// Moleculer's typings leave `register` out of `Strategies`; the runtime has it (core
// src/strategies/index.js). Registered, the strategy can be named: `registry.strategy: "Capacity"`.
(
	Strategies as unknown as { register(name: string, strategy: typeof CapacityStrategy): void }
).register("Capacity", CapacityStrategy);
