/** Replicas of a workload with anti-affinity go to different nodes: the request's `avoid` set. */
import type { PlacementNode, PlacementRequest } from "../placement";
import { Filter, nodeCount } from "./filter";

export class AntiAffinity extends Filter {
	readonly name = "AntiAffinity";

	fits(node: PlacementNode, req: PlacementRequest): string | null {
		return req.avoid.has(node.id) ? "avoid" : null;
	}

	reason(_key: string, count: number): string {
		return nodeCount(
			count,
			"runs another replica (anti-affinity)",
			"run another replica (anti-affinity)"
		);
	}
}
