/** Fill the fullest node that fits, and the fullest card: whole nodes stay free for big jobs. */
import type { ResourceRequest } from "../../shared/types";
import type { PlacementNode } from "../placement";
import { fullnessAfter, Scorer } from "./scorer";

export class Binpack extends Scorer {
	readonly name = "Binpack";
	readonly fullestFirst = true;

	score(node: PlacementNode, r: ResourceRequest, taken: number): number {
		return fullnessAfter(node, r, taken);
	}

	prefersCard(left: number, best: number): boolean {
		return left < best;
	}
}
