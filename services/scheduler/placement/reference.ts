/**
 * The reference placement: every node through every filter, the best score wins, ties to the
 * lowest node id. It is slow (it looks at every node) and it is what the placement index
 * (placement-index.ts) must answer: the index's property test holds it to this on random
 * clusters, and the scheduler benchmark runs this as its scan baseline. The scheduler itself
 * places with the index.
 */
import type { Placement, PlacementNode, PlacementRequest } from "../placement";
import { gpusInUse } from "../placement";
import { pickGpus } from "./gpus";
import { unfit } from "./index";
import { scorerOf } from "./strategy";

/** The best node for the request, or null when none fits. */
export function referencePlace(
	nodes: Iterable<PlacementNode>,
	req: PlacementRequest
): Placement | null {
	const scorer = scorerOf(req.strategy);
	let best: PlacementNode | null = null;
	let bestScore = 0;
	for (const node of nodes) {
		if (unfit(node, req)) continue;
		const score = scorer.score(node, req.resources, gpusInUse(node.allocated));
		if (!best || score > bestScore || (score === bestScore && node.id < best.id)) {
			best = node;
			bestScore = score;
		}
	}
	if (!best) return null;
	return { nodeID: best.id, gpus: pickGpus(best, req) ?? [] };
}
