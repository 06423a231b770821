/** Only ready nodes take work: a draining node finishes what it runs, a down one runs nothing. */
import type { PlacementNode } from "../placement";
import { Filter, nodeCount } from "./filter";

export class NodeStatus extends Filter {
	readonly name = "NodeStatus";

	/**
	 * The node's status when it is not ready. It reads the node alone, so the placement index
	 * runs it when a node changes rather than for each placement.
	 */
	fits(node: PlacementNode): string | null {
		return node.status === "ready" ? null : node.status;
	}

	reason(status: string, count: number): string {
		return nodeCount(count, `is ${status}`, `are ${status}`);
	}
}
