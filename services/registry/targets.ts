/**
 * What the registry health-checks, and the key under which each target's health is stored:
 * every resource (with the checker of its type), and every endpoint of every registered service
 * (with the http checker, on the service's health path). Pure.
 */
import type { CheckTarget } from "./checkers/base";
import type { HealthThresholds } from "./health";
import type { ExternalService, Resource } from "./model";

export interface Target {
	key: string;
	kind: "resource" | "service";
	/** Resource id, or service name. */
	ref: string;
	name: string;
	check: CheckTarget;
	interval: number;
	thresholds: HealthThresholds;
}

/** The health key of a resource. */
export const resourceKey = (id: string) => `resource:${id}`;
/** The health key of one endpoint of a service: each endpoint is checked on its own. */
export const endpointKey = (name: string, url: string) => `service:${name}:${url}`;

/** Every resource, then every endpoint of every service. */
export function checkTargets(resources: Resource[], services: ExternalService[]): Target[] {
	const targets: Target[] = resources.map(r => ({
		key: resourceKey(r.id),
		kind: "resource",
		ref: r.id,
		name: r.name,
		check: {
			type: r.type,
			endpoint: r.endpoint,
			config: r.config,
			timeoutMs: r.healthCheck.timeout
		},
		interval: r.healthCheck.interval,
		thresholds: r.healthCheck
	}));
	for (const s of services)
		for (const url of s.endpoints)
			targets.push({
				key: endpointKey(s.name, url),
				kind: "service",
				ref: s.name,
				name: s.name,
				check: {
					type: "http",
					endpoint: url,
					path: s.healthCheck.path,
					config: {},
					timeoutMs: s.healthCheck.timeout
				},
				interval: s.healthCheck.interval,
				thresholds: s.healthCheck
			});
	return targets;
}
