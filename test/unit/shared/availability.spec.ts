import { actionUnavailable } from "../../../services/shared/availability";
import { ActionUnavailableError } from "../../../services/shared/errors";

describe("actionUnavailable", () => {
	it("names the action when no node offers it", () => {
		const err = actionUnavailable("x.y", { nodes: [], open: [] }, 10);
		expect(err).toBeInstanceOf(ActionUnavailableError);
		expect(err).toMatchObject({
			code: 503,
			type: "SERVICE_NOT_AVAILABLE",
			retryable: true,
			message: "No node offers the action 'x.y' now.",
			data: { action: "x.y", nodes: [] }
		});
	});

	it("says that the circuit breaker is open on every node that offers it", () => {
		const err = actionUnavailable("x.y", { nodes: ["n1", "n2"], open: ["n1", "n2"] }, 10);
		expect(err.message).toBe(
			"No node can take the action 'x.y' now: the circuit breaker is open on n1, n2 after " +
				"repeated failures; it lets a call through again within 10 s."
		);
		expect(err.data).toEqual({
			action: "x.y",
			nodes: ["n1", "n2"],
			circuitOpen: ["n1", "n2"],
			retryAfter: 10
		});
		expect(actionUnavailable("x.y", { nodes: ["n1", "n2"], open: ["n1"] }, 10).message).toBe(
			"No node offers the action 'x.y' now."
		);
	});
});
