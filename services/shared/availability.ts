/**
 * Why no node can take a call of an action now, in the words of ActionUnavailableError (503
 * SERVICE_NOT_AVAILABLE): no node offers it, or the broker's circuit breaker is open on every
 * node that does. The gateway (services/gateway/errors.ts) and services/call
 * (services/registry/proxy.ts) both answer with it.
 */
import type { ServiceBroker } from "moleculer";
import { ActionUnavailableError } from "./errors";

/** The nodes that offer an action, and those of them whose circuit breaker is open now. */
export interface ActionEndpoints {
	nodes: string[];
	open: string[];
}

/**
 * The 503 for an action nobody can take: no node offers it, or every one that does has its
 * circuit breaker open (then a call goes through again after `halfOpenSeconds`).
 */
export function actionUnavailable(
	action: string,
	endpoints: ActionEndpoints,
	halfOpenSeconds: number
): ActionUnavailableError {
	const open = endpoints.open.filter(n => endpoints.nodes.includes(n));
	if (endpoints.nodes.length > 0 && open.length === endpoints.nodes.length)
		return new ActionUnavailableError(
			`No node can take the action '${action}' now: the circuit breaker is open on ` +
				`${open.join(", ")} after repeated failures; it lets a call through again within ` +
				`${halfOpenSeconds} s.`,
			{ action, nodes: endpoints.nodes, circuitOpen: open, retryAfter: halfOpenSeconds }
		);
	return new ActionUnavailableError(`No node offers the action '${action}' now.`, {
		action,
		nodes: endpoints.nodes
	});
}

/** The part of the broker that knows an action's endpoints and the breaker's settings. */
export type EndpointRegistry = Pick<ServiceBroker, "registry" | "options">;

/** The nodes that offer `action` in the broker's registry, and those with an open circuit. */
export function actionEndpoints(broker: EndpointRegistry, action: string): ActionEndpoints {
	// Moleculer's registry has no types for its endpoint lists.
	const registry = broker.registry as unknown as {
		getActionEndpoints(
			name: string
		): { endpoints: Array<{ id: string; state: boolean }> } | undefined;
	};
	const eps = registry.getActionEndpoints(action)?.endpoints ?? [];
	return { nodes: eps.map(ep => ep.id), open: eps.filter(ep => !ep.state).map(ep => ep.id) };
}

/** ActionUnavailableError for `action` as the broker's registry sees it now. */
export function actionUnavailableNow(
	broker: EndpointRegistry,
	action: string
): ActionUnavailableError {
	const halfOpen = (broker.options.circuitBreaker?.halfOpenTime ?? 10_000) / 1000;
	return actionUnavailable(action, actionEndpoints(broker, action), Math.ceil(halfOpen));
}
