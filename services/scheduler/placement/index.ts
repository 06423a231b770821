/**
 * The placement plugins by name, as Moleculer's strategies index (src/strategies/index.js) holds
 * its load-balancing strategies: `resolveFilter` and `resolveScorer` take a name (in any case), a
 * class or an instance; `registerFilter` and `registerScorer` add one under a name.
 *
 * FILTERS is the chain every placement runs, the cheap checks first; the first filter that rules
 * a node out gives that node's reason. The placement index (placement-index.ts) runs the same
 * filter objects, but each where it costs least: node status when a node changes, the node
 * selector once per machine type, resources and anti-affinity per candidate.
 */
import { InvalidInputError } from "../../shared/errors";
import type { PlacementNode, PlacementRequest } from "../placement";
import { AntiAffinity } from "./anti-affinity";
import { Binpack } from "./binpack";
import { Filter } from "./filter";
import { NodeSelector } from "./node-selector";
import { NodeStatus } from "./node-status";
import { Resources } from "./resources";
import { Scorer } from "./scorer";
import { Spread } from "./spread";

export type FilterClass = new () => Filter;
export type ScorerClass = new () => Scorer;

const Filters: Record<string, FilterClass> = { NodeStatus, AntiAffinity, NodeSelector, Resources };
const Scorers: Record<string, ScorerClass> = { Binpack, Spread };

export function resolveFilter(opt: string | FilterClass | Filter): Filter {
	return resolve("filter", Filters, Filter, opt);
}

export function resolveScorer(opt: string | ScorerClass | Scorer): Scorer {
	return resolve("scorer", Scorers, Scorer, opt);
}

export function registerFilter(name: string, cls: FilterClass): void {
	Filters[name] = cls;
}

export function registerScorer(name: string, cls: ScorerClass): void {
	Scorers[name] = cls;
}

function resolve<T extends object>(
	kind: string,
	table: Record<string, new () => T>,
	base: abstract new () => T,
	opt: string | (new () => T) | T
): T {
	if (opt instanceof base) return opt;
	if (typeof opt === "string") {
		const name = Object.keys(table).find(n => n.toLowerCase() === opt.toLowerCase());
		if (name === undefined)
			throw new InvalidInputError(`Unknown placement ${kind} '${opt}'.`, { kind, name: opt });
		return new table[name]();
	}
	return new (opt as new () => T)();
}

/** The filters the placement index runs on their own (see its header). */
export const nodeStatus = new NodeStatus();
export const nodeSelector = new NodeSelector();

export const FILTERS: readonly Filter[] = [
	nodeStatus,
	new AntiAffinity(),
	nodeSelector,
	new Resources()
];

/** The first filter that rules the node out, or null when the node can take the request. */
export function unfit(node: PlacementNode, req: PlacementRequest): Filter | null {
	for (const filter of FILTERS) if (filter.fits(node, req) !== null) return filter;
	return null;
}
