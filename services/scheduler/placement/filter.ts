/**
 * A placement filter: one rule a node must pass to take a request, as a filter plugin of the
 * Kubernetes scheduler framework or a feasibility check of Nomad is. A filter says no with a
 * reason key of its own (which status, which selector, which resource), and turns that key into
 * the words an operator reads, said of one node or of several, so that no caller has to bend
 * its English.
 */
import type { PlacementNode, PlacementRequest } from "../placement";

export abstract class Filter {
	/** The name `resolveFilter` knows it by. */
	abstract readonly name: string;

	/** Null when the node can take the request; otherwise the reason key for `reason`. */
	abstract fits(node: PlacementNode, req: PlacementRequest): string | null;

	/** What the key says of `count` nodes: "1 node is draining", "2 nodes are draining". */
	abstract reason(key: string, count: number, req: PlacementRequest): string;
}

/** "1 node lacks CPU" or "2 nodes lack CPU": the count, then the phrase for one or for many. */
export function nodeCount(count: number, one: string, many: string): string {
	return count === 1 ? `1 node ${one}` : `${count} nodes ${many}`;
}
