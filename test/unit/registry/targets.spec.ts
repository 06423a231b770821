import type { ExternalService, Resource } from "../../../services/registry/model";
import { checkTargets, endpointKey, resourceKey } from "../../../services/registry/targets";

const healthCheck = { interval: 5000, timeout: 700, healthyThreshold: 2, unhealthyThreshold: 3 };

describe("checkTargets", () => {
	it("keys a tenant's service by tenant and name, so two tenants' services never share a health", () => {
		const service = {
			name: "model",
			owner: "tenant",
			tenant: "acme",
			endpoints: ["http://a:1"],
			healthCheck
		} as ExternalService;
		const [t] = checkTargets([], [service]);
		expect(t).toMatchObject({
			key: "service:acme/model:http://a:1",
			ref: "acme/model",
			name: "model",
			owner: { owner: "tenant", tenant: "acme" }
		});
	});

	it("checks each resource with its own type, and each service endpoint over http", () => {
		const resource = {
			id: "r1",
			name: "pg",
			type: "postgres",
			endpoint: "postgres://db/x",
			config: { sslmode: "require" },
			healthCheck,
			createdAt: 1,
			updatedAt: 1
		} satisfies Resource;
		const service = {
			name: "model",
			endpoints: ["http://a:1", "http://b:1"],
			healthCheck: { ...healthCheck, path: "/healthz" }
		} as ExternalService;
		const targets = checkTargets([resource], [service]);
		expect(targets.map(t => t.key)).toEqual([
			"resource:r1",
			"service:model:http://a:1",
			"service:model:http://b:1"
		]);
		expect(targets[0]).toEqual({
			key: resourceKey("r1"),
			kind: "resource",
			ref: "r1",
			name: "pg",
			owner: { owner: "cluster" },
			check: {
				type: "postgres",
				endpoint: "postgres://db/x",
				config: { sslmode: "require" },
				timeoutMs: 700
			},
			interval: 5000,
			thresholds: healthCheck
		});
		expect(targets[2]).toEqual({
			key: endpointKey("model", "http://b:1"),
			kind: "service",
			ref: "model",
			name: "model",
			owner: { owner: "cluster" },
			check: {
				type: "http",
				endpoint: "http://b:1",
				path: "/healthz",
				config: {},
				timeoutMs: 700
			},
			interval: 5000,
			thresholds: { ...healthCheck, path: "/healthz" }
		});
	});
});
