/**
 * What the registry health-checks, and the key under which each target's health is stored:
 * every resource (with the checker of its type), and every endpoint of every registered service
 * (with the http checker, on the service's health path). Pure.
 */
import type { CheckTarget } from "./checkers/base";
import type { HealthThresholds } from "./health";
import type { ExternalService, Resource } from "./model";
import { type Owner, ownerOf, scopedKey } from "./ownership";

export interface Target {
	key: string;
	kind: "resource" | "service";
	/** Resource id, or service key (serviceKey). */
	ref: string;
	name: string;
	/** Whose target it is, for the health events (another tenant's must not be shown). */
	owner: Owner;
	check: CheckTarget;
	interval: number;
	thresholds: HealthThresholds;
}

/** The health key of a resource. */
export const resourceKey = (id: string) => `resource:${id}`;
/**
 * The health key of one endpoint of a service, by the service's key (serviceKey): each endpoint
 * is checked on its own, and two tenants' services of one name never share a health.
 */
export const endpointKey = (key: string, url: string) => `service:${key}:${url}`;
/** The store key of a service: its name within its owner (ownership.ts). */
export const serviceKey = (s: Pick<ExternalService, "name" | "owner" | "tenant">) =>
	scopedKey(s, s.name);

/** Every resource, then every endpoint of every service. */
export function checkTargets(resources: Resource[], services: ExternalService[]): Target[] {
	const targets: Target[] = resources.map(r => ({
		key: resourceKey(r.id),
		kind: "resource",
		ref: r.id,
		name: r.name,
		owner: ownerOf(r),
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
				key: endpointKey(serviceKey(s), url),
				kind: "service",
				ref: serviceKey(s),
				name: s.name,
				owner: ownerOf(s),
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
