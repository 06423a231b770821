import { HttpChecker } from "./http";

/** Qdrant: its readiness endpoint answers 2xx once collections are loaded. */
export class VectorDbChecker extends HttpChecker {
	protected readonly healthyBelow = 300;

	protected path(): string {
		return "/readyz";
	}
}
