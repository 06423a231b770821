import { Breakers } from "../../../services/registry/breaker";
import { Catalog } from "../../../services/registry/catalog";
import type { DiscoveredService } from "../../../services/registry/discovery";
import type { HealthState } from "../../../services/registry/health";
import type { ExternalService, Resource } from "../../../services/registry/model";
import { endpointKey, resourceKey } from "../../../services/registry/targets";
import {
	endpointsStatus,
	moleculerListView,
	moleculerView,
	resourceView,
	Views
} from "../../../services/registry/views";
import { NotFoundError } from "../../../services/shared/errors";
import { SqliteStore } from "../../../services/shared/store";

const state = (status: HealthState["status"], error?: string): HealthState => ({
	status,
	checkedAt: 10,
	latencyMs: 3,
	successes: 2,
	failures: 0,
	...(error ? { error } : {})
});

const resource: Resource = {
	id: "r1",
	name: "pg",
	type: "postgres",
	endpoint: "postgres://app:s3cret@db:5432/x",
	config: { user: "app", password: "pw", replicas: ["postgres://app:s3cret@db2/x"] },
	healthCheck: { interval: 1000, timeout: 100, healthyThreshold: 1, unhealthyThreshold: 1 },
	createdAt: 1,
	updatedAt: 2
};

describe("resourceView", () => {
	it("masks the endpoint's password and config secrets, and attaches the public health", () => {
		expect(resourceView(resource, state("unhealthy", "refused"))).toEqual({
			...resource,
			// Stored before owners existed: the cluster's.
			owner: "cluster",
			endpoint: "postgres://app:***@db:5432/x",
			config: { user: "app", password: "***", replicas: ["postgres://app:***@db2/x"] },
			health: { status: "unhealthy", checkedAt: 10, latencyMs: 3, error: "refused" }
		});
	});
});

describe("endpointsStatus", () => {
	const s = { name: "m", endpoints: ["http://a", "http://b"] } as ExternalService;
	/** The health map of the endpoints given (by URL); the others were never checked. */
	const health = (byUrl: Record<string, HealthState["status"]>) =>
		new Map(Object.entries(byUrl).map(([url, st]) => [endpointKey("m", url), state(st)]));

	it("is healthy when one endpoint is, unhealthy only when all are", () => {
		const a = "http://a";
		const b = "http://b";
		expect(endpointsStatus(s, health({ [a]: "unhealthy", [b]: "healthy" }))).toBe("healthy");
		expect(endpointsStatus(s, health({ [a]: "unhealthy", [b]: "unhealthy" }))).toBe(
			"unhealthy"
		);
		expect(endpointsStatus(s, health({ [a]: "unhealthy" }))).toBe("unknown");
		expect(endpointsStatus(s, health({}))).toBe("unknown");
		expect(endpointsStatus({ ...s, endpoints: [] }, health({}))).toBe("unknown");
	});
});

describe("discovered service views", () => {
	const m: DiscoveredService = {
		name: "greeter",
		nodes: ["n1", "n2"],
		actions: ["greeter.hi"],
		tenants: []
	};
	it("shows a discovered service healthy on each of its nodes", () => {
		expect(moleculerListView(m)).toEqual({
			name: "greeter",
			type: "moleculer",
			owner: "cluster",
			nodes: ["n1", "n2"],
			actions: ["greeter.hi"],
			endpoints: [
				{ node: "n1", health: { status: "healthy" } },
				{ node: "n2", health: { status: "healthy" } }
			],
			dependencies: [],
			status: "healthy"
		});
		expect(moleculerView(m)).toEqual({
			name: "greeter",
			type: "moleculer",
			owner: "cluster",
			nodes: ["n1", "n2"],
			actions: ["greeter.hi"],
			status: "healthy",
			dependencyTree: {
				name: "greeter",
				kind: "moleculer",
				status: "healthy",
				dependencies: []
			}
		});
	});
});

describe("Views", () => {
	let store: SqliteStore;
	let catalog: Catalog;
	let breakers: Breakers;
	let views: Views;
	let discovered: DiscoveredService[];
	let agent: ExternalService;

	beforeEach(async () => {
		store = new SqliteStore(":memory:");
		catalog = new Catalog({ store });
		breakers = new Breakers({ threshold: 1, cooldownMs: 60_000 });
		discovered = [
			{ name: "greeter", nodes: ["n1"], actions: ["greeter.hi"], tenants: [] },
			{ name: "agent", nodes: ["n2"], actions: ["agent.run"], tenants: [] }
		];
		const discovery = {
			services: () => discovered,
			find: (name: string) => discovered.find(m => m.name === name)
		};
		views = new Views(catalog, breakers, discovery);
		const pg = await catalog.saveResource({
			name: "pg",
			type: "postgres",
			endpoint: "postgres://app:s3cret@db:5432/x"
		});
		await catalog.putHealth(resourceKey(pg.id), state("unhealthy", "refused"));
		agent = await catalog.saveService({
			name: "agent",
			type: "http",
			endpoints: ["http://u:pw@a:1", "http://b:1"],
			dependencies: ["pg", "greeter", "ghost"]
		});
		await catalog.putHealth(endpointKey("agent", "http://u:pw@a:1"), state("healthy"));
	});
	afterEach(() => store.close());

	it("shows a service's endpoints masked with health and circuit, degraded by a dependency", async () => {
		breakers.failure(endpointKey("agent", "http://b:1"));
		const view = await views.service(agent);
		expect(view.endpoints).toEqual([
			{
				url: "http://u:***@a:1",
				health: { status: "healthy", checkedAt: 10, latencyMs: 3 },
				circuit: "closed"
			},
			{
				url: "http://b:1",
				health: { status: "unknown", checkedAt: null, latencyMs: null },
				circuit: "open"
			}
		]);
		expect(view.status).toBe("degraded");
		expect(view.dependencyTree).toEqual({
			name: "agent",
			kind: "service",
			status: "degraded",
			dependencies: [
				{ name: "pg", kind: "resource", status: "unhealthy", dependencies: [] },
				{ name: "greeter", kind: "moleculer", status: "healthy", dependencies: [] },
				{ name: "ghost", kind: "missing", status: "unknown", dependencies: [] }
			]
		});
	});

	it("lists registered and discovered services by name, a registered name once", async () => {
		const list = await views.services();
		expect(list.map(v => [v.name, v.type])).toEqual([
			["agent", "http"],
			["greeter", "moleculer"]
		]);
	});

	it("finds a registered service first, then a discovered one, else 404", async () => {
		expect(await views.serviceNamed("agent")).toMatchObject({ name: "agent", type: "http" });
		expect(await views.serviceNamed("greeter")).toEqual(moleculerView(discovered[0]));
		const err = await views.serviceNamed("nope").catch(e => e);
		expect(err).toBeInstanceOf(NotFoundError);
		expect(err).toMatchObject({ code: 404, data: { kind: "Service", id: "nope" } });
	});

	it("shows a resource masked with its stored health", async () => {
		const [pg] = await catalog.resources();
		expect(await views.resource(pg)).toMatchObject({
			endpoint: "postgres://app:***@db:5432/x",
			health: { status: "unhealthy", error: "refused" }
		});
	});

	it("lists every target's health with its endpoint masked", async () => {
		expect(await views.health()).toEqual([
			{
				kind: "resource",
				name: "pg",
				owner: "cluster",
				target: "postgres://app:***@db:5432/x",
				status: "unhealthy",
				checkedAt: 10,
				latencyMs: 3,
				error: "refused"
			},
			{
				kind: "service",
				name: "agent",
				owner: "cluster",
				target: "http://u:***@a:1",
				status: "healthy",
				checkedAt: 10,
				latencyMs: 3
			},
			{
				kind: "service",
				name: "agent",
				owner: "cluster",
				target: "http://b:1",
				status: "unknown",
				checkedAt: null,
				latencyMs: null
			}
		]);
	});
});
