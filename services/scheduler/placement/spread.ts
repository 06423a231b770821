/** Pick the emptiest node that fits, and the emptiest card: fewer replicas lost with one node. */
import type { ResourceRequest } from "../../shared/types";
import type { PlacementNode } from "../placement";
import { fullnessAfter, Scorer } from "./scorer";

export class Spread extends Scorer {
	readonly name = "Spread";
	readonly fullestFirst = false;

	score(node: PlacementNode, r: ResourceRequest, taken: number): number {
		return -fullnessAfter(node, r, taken);
	}

	prefersCard(left: number, best: number): boolean {
		return left > best;
	}
}
