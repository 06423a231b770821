/**
 * The ownership rule in the registry: resources and services of two tenants and of the cluster
 * in a real SQLite store, as each kind of principal sees and changes them.
 */
import { Breakers } from "../../../services/registry/breaker";
import { Catalog, checkChange } from "../../../services/registry/catalog";
import type { DiscoveredService } from "../../../services/registry/discovery";
import { parseApplyDocument } from "../../../services/registry/apply";
import {
	canReadDiscovered,
	nameScopes,
	pickNamed,
	scopedKey
} from "../../../services/registry/ownership";
import { CallParams, CallProxy } from "../../../services/registry/proxy";
import { endpointKey } from "../../../services/registry/targets";
import { Views } from "../../../services/registry/views";
import { COLLECTIONS } from "../../../services/shared/collections";
import { ConflictError, ForbiddenError, NotFoundError } from "../../../services/shared/errors";
import { ownerFor, type Principal } from "../../../services/shared/principal";
import { SqliteStore } from "../../../services/shared/store";

const user = (tenant: string, role: "admin" | "operator" | "viewer"): Principal => ({
	sub: `${tenant}-${role}`,
	tenant,
	roles: [role],
	exp: 0
});
const admin = user("ops", "admin");
const ana = user("acme", "operator");
const viewer = user("acme", "viewer");
const bob = user("beta", "operator");

const db = { name: "db", type: "postgres" as const, endpoint: "postgres://db/x" };
const svc = (name: string, dependencies: string[] = []) => ({
	name,
	type: "http",
	endpoints: [`http://${name}:1`],
	dependencies
});

async function expectError(
	p: Promise<unknown>,
	cls: new (...args: never[]) => Error,
	fields: object
) {
	const err = await p.catch(e => e);
	expect(err).toBeInstanceOf(cls);
	expect(err).toMatchObject(fields);
}

describe("ownership rules", () => {
	it("keys the cluster's names bare, as before owners, and a tenant's under the tenant", () => {
		expect(scopedKey({}, "db")).toBe("db");
		expect(scopedKey({ owner: "cluster" }, "db")).toBe("db");
		expect(scopedKey({ owner: "tenant", tenant: "acme" }, "db")).toBe("acme/db");
	});

	it("looks a name up in the caller's tenant then the cluster; an admin's ?tenant= only", () => {
		expect(nameScopes(ana)).toEqual({
			scopes: [{ owner: "tenant", tenant: "acme" }, { owner: "cluster" }],
			searchTenants: false
		});
		expect(nameScopes(admin)).toEqual({ scopes: [{ owner: "cluster" }], searchTenants: true });
		expect(nameScopes(admin, "beta")).toEqual({
			scopes: [{ owner: "tenant", tenant: "beta" }],
			searchTenants: false
		});
	});

	it("picks the one tenant object of a name, and 409 naming the tenants when several", () => {
		expect(pickNamed("Service", "db", [])).toBeNull();
		const a = { owner: "tenant" as const, tenant: "acme" };
		expect(pickNamed("Service", "db", [a])).toBe(a);
		expect(() => pickNamed("Service", "db", [{ owner: "tenant", tenant: "beta" }, a])).toThrow(
			expect.objectContaining({
				code: 409,
				message:
					"Several tenants have a service named 'db' (acme, beta); pick one with ?tenant=.",
				data: { kind: "Service", name: "db", tenants: ["acme", "beta"] }
			})
		);
	});

	it("lets a tenant see a discovered service only when no other tenant's workload runs it", () => {
		expect(canReadDiscovered(bob, [])).toBe(true);
		expect(canReadDiscovered(bob, ["acme"])).toBe(false);
		expect(canReadDiscovered(ana, ["acme"])).toBe(true);
		expect(canReadDiscovered(ana, ["acme", "beta"])).toBe(false);
		expect(canReadDiscovered(admin, ["acme", "beta"])).toBe(true);
	});

	it("answers 404 for another tenant's object and 403 for a cluster object a non-admin changes", () => {
		const acme = { owner: "tenant" as const, tenant: "acme" };
		expect(() => checkChange(ana, acme, "resource", "r1")).not.toThrow();
		expect(() => checkChange(admin, acme, "resource", "r1")).not.toThrow();
		expect(() => checkChange(bob, acme, "resource", "r1")).toThrow(NotFoundError);
		expect(() => checkChange(bob, {}, "service", "db")).toThrow(
			expect.objectContaining({
				code: 403,
				type: "FORBIDDEN",
				message: "The service 'db' belongs to the cluster: only an admin may change it.",
				data: { kind: "service", id: "db", owner: "cluster" }
			})
		);
	});
});

describe("Catalog with owners", () => {
	let store: SqliteStore;
	let catalog: Catalog;
	beforeEach(() => {
		store = new SqliteStore(":memory:");
		catalog = new Catalog({ store });
	});
	afterEach(() => store.close());

	it("gives each tenant and the cluster their own 'db', and each sees its own and the cluster's", async () => {
		const a = await catalog.saveResource(db, undefined, ownerFor(ana));
		const b = await catalog.saveResource(db, undefined, ownerFor(bob));
		const c = await catalog.saveResource(db, undefined, ownerFor(admin));
		expect(a).toMatchObject({ owner: "tenant", tenant: "acme" });
		expect(c).toMatchObject({ owner: "cluster" });
		expect(c.tenant).toBeUndefined();
		await expectError(catalog.saveResource(db, undefined, ownerFor(ana)), ConflictError, {
			code: 409,
			data: { name: "db" }
		});
		const ids = async (p: Principal) =>
			(await catalog.visibleResources(p)).map(r => r.id).sort();
		expect(await ids(ana)).toEqual([a.id, c.id].sort());
		expect(await ids(viewer)).toEqual([a.id, c.id].sort());
		expect(await ids(bob)).toEqual([b.id, c.id].sort());
		expect(await ids(admin)).toEqual([a.id, b.id, c.id].sort());
		expect(await catalog.resourceId("db", ownerFor(ana))).toBe(a.id);
		expect(await catalog.resourceId("db")).toBe(c.id);
	});

	it("answers another tenant's resource 404 exactly as a missing one, and 403 for the cluster's", async () => {
		const a = await catalog.saveResource(db, undefined, ownerFor(ana));
		const c = await catalog.saveResource(db, undefined, ownerFor(admin));
		const missing = await catalog.readResource("nope", bob).catch(e => e);
		const hidden = await catalog.readResource(a.id, bob).catch(e => e);
		expect(hidden).toBeInstanceOf(NotFoundError);
		expect({ ...hidden, message: hidden.message }).toEqual({
			...missing,
			message: missing.message.replace("nope", a.id),
			data: { kind: "Resource", id: a.id }
		});
		await expectError(catalog.changeableResource(a.id, bob), NotFoundError, { code: 404 });
		await expect(catalog.readResource(c.id, bob)).resolves.toBeTruthy();
		await expectError(catalog.changeableResource(c.id, bob), ForbiddenError, { code: 403 });
		await expect(catalog.changeableResource(c.id, admin)).resolves.toBeTruthy();
		await expect(catalog.changeableResource(a.id, admin)).resolves.toBeTruthy();
	});

	it("keeps a resource's owner when an admin updates it, and frees the tenant's name on delete", async () => {
		const a = await catalog.saveResource(db, undefined, ownerFor(ana));
		const updated = await catalog.saveResource(
			{ ...db, endpoint: "postgres://db/y" },
			await catalog.changeableResource(a.id, admin),
			ownerFor(admin)
		);
		expect(updated).toMatchObject({
			owner: "tenant",
			tenant: "acme",
			endpoint: "postgres://db/y"
		});
		await catalog.deleteResource(a.id, await catalog.changeableResource(a.id, ana));
		expect(await catalog.resourceId("db", ownerFor(ana))).toBeNull();
	});

	it("reads documents stored before owners as the cluster's", async () => {
		await store.put(COLLECTIONS.services, "legacy", {
			...svc("legacy"),
			healthCheck: {
				interval: 1000,
				timeout: 100,
				healthyThreshold: 1,
				unhealthyThreshold: 1
			},
			resources: {},
			createdAt: 1,
			updatedAt: 1
		});
		expect((await catalog.resolveService("legacy", bob)).value.name).toBe("legacy");
		expect((await catalog.resolveService("legacy", admin)).value.name).toBe("legacy");
	});

	it("resolves a service name to the caller's own, then the cluster's; an admin's by ?tenant=", async () => {
		await catalog.saveService(svc("db"), undefined, ownerFor(ana));
		await catalog.saveService(svc("db"), undefined, ownerFor(bob));
		await catalog.saveService(svc("only-acme"), undefined, ownerFor(ana));
		const owner = async (p: Principal, name: string, asked?: string) => {
			const v = (await catalog.resolveService(name, p, asked)).value;
			return v.owner === "tenant" ? v.tenant : "cluster";
		};
		expect(await owner(ana, "db")).toBe("acme");
		expect(await owner(bob, "db")).toBe("beta");
		// An operator's ?tenant= is its own tenant, whatever it asks.
		expect(await owner(bob, "db", "acme")).toBe("beta");
		await expectError(catalog.resolveService("only-acme", bob), NotFoundError, {
			code: 404,
			data: { kind: "Service", id: "only-acme" }
		});
		await expectError(catalog.resolveService("only-acme", bob, "acme"), NotFoundError, {
			code: 404
		});
		expect(await owner(admin, "only-acme")).toBe("acme");
		await expectError(catalog.resolveService("db", admin), ConflictError, {
			code: 409,
			data: { tenants: ["acme", "beta"] }
		});
		expect(await owner(admin, "db", "beta")).toBe("beta");
		await catalog.saveService(svc("db"), undefined, ownerFor(admin));
		expect(await owner(admin, "db")).toBe("cluster");
		expect(await owner(ana, "db")).toBe("acme");
		await catalog.deleteService("db", await catalog.resolveService("db", ana));
		expect(await owner(ana, "db")).toBe("cluster");
	});

	it("resolves a tenant service's dependencies in its tenant then the cluster, a cluster service's in the cluster only", async () => {
		const acmeDb = await catalog.saveResource(db, undefined, ownerFor(ana));
		const clusterDb = await catalog.saveResource(db, undefined, ownerFor(admin));
		await catalog.saveResource({ ...db, name: "mine" }, undefined, ownerFor(ana));
		expect(await catalog.dependencyResource("db", ownerFor(ana))).toBe(acmeDb.id);
		expect(await catalog.dependencyResource("db", ownerFor(bob))).toBe(clusterDb.id);
		expect(await catalog.dependencyResource("mine", ownerFor(admin))).toBeNull();
	});

	it("finds cycles within a tenant, not across tenants that reuse names", async () => {
		await catalog.saveService(svc("a", ["b"]), undefined, ownerFor(ana));
		// beta's b depending on a is no cycle: beta has no a, and acme's is not beta's.
		await catalog.saveService(svc("b", ["a"]), undefined, ownerFor(bob));
		await expectError(catalog.saveService(svc("b", ["a"]), undefined, ownerFor(ana)), Error, {
			code: 422,
			message: "These dependencies would form a cycle: b → a → b.",
			data: { cycle: ["b", "a", "b"] }
		});
	});

	it("plans and applies a document into its owner's objects only", async () => {
		const doc = parseApplyDocument({
			resources: { db: { type: "postgres", endpoint: "postgres://db/x" } },
			services: { api: { type: "http", endpoints: ["http://a:1"], dependencies: ["db"] } }
		});
		await catalog.apply(await catalog.plan(doc, ownerFor(admin)), ownerFor(admin));
		const first = await catalog.plan(doc, ownerFor(ana));
		expect(first.resources.map(s => s.change)).toEqual(["created"]);
		expect(first.services.map(s => s.change)).toEqual(["created"]);
		await catalog.apply(first, ownerFor(ana));
		expect((await catalog.plan(doc, ownerFor(ana))).services.map(s => s.change)).toEqual([
			"unchanged"
		]);
		const changed = parseApplyDocument({
			services: { api: { type: "http", endpoints: ["http://b:1"] } }
		});
		await catalog.apply(await catalog.plan(changed, ownerFor(ana)), ownerFor(ana));
		expect((await catalog.resolveService("api", ana)).value.endpoints).toEqual(["http://b:1"]);
		expect((await catalog.service("api"))?.endpoints).toEqual(["http://a:1"]);
		expect((await catalog.visibleResources(ana)).map(r => r.owner).sort()).toEqual([
			"cluster",
			"tenant"
		]);
	});
});

describe("Views and the proxy with owners", () => {
	let store: SqliteStore;
	let catalog: Catalog;
	let views: Views;
	let proxy: CallProxy;
	let discovered: DiscoveredService[];
	const call = jest.fn(async () => "answer");

	beforeEach(async () => {
		store = new SqliteStore(":memory:");
		catalog = new Catalog({ store });
		discovered = [
			{
				name: "acme-embedder",
				nodes: ["n1"],
				actions: ["acme-embedder.run"],
				tenants: ["acme"]
			},
			{ name: "shared", nodes: ["n2"], actions: ["shared.run"], tenants: [] }
		];
		const discovery = {
			services: () => discovered,
			find: (name: string) => discovered.find(m => m.name === name)
		};
		const breakers = new Breakers({ threshold: 1, cooldownMs: 60_000 });
		views = new Views(catalog, breakers, discovery);
		proxy = new CallProxy(
			{ findNextActionEndpoint: () => ({ action: {} }) } as never,
			catalog,
			breakers,
			discovery
		);
		await catalog.saveResource(db, undefined, ownerFor(ana));
		await catalog.saveService(
			svc("api", ["db", "acme-embedder", "shared"]),
			undefined,
			ownerFor(ana)
		);
		await catalog.saveService(svc("api", ["db"]), undefined, ownerFor(bob));
		await catalog.saveService(
			svc("platform", ["db", "acme-embedder"]),
			undefined,
			ownerFor(admin)
		);
	});
	afterEach(() => store.close());

	const ctxFor = (u: Principal, params: CallParams) =>
		({ params, meta: { user: u }, call }) as never;

	it("lists what each may see, with owner and tenant", async () => {
		const list = async (p: Principal) =>
			(await views.services(p)).map(
				v => `${v.name}:${v.owner}${v.tenant ? `/${v.tenant}` : ""}`
			);
		expect(await list(ana)).toEqual([
			"acme-embedder:tenant/acme",
			"api:tenant/acme",
			"platform:cluster",
			"shared:cluster"
		]);
		expect(await list(bob)).toEqual(["api:tenant/beta", "platform:cluster", "shared:cluster"]);
		expect(await list(admin)).toEqual([
			"acme-embedder:tenant/acme",
			"api:tenant/acme",
			"api:tenant/beta",
			"platform:cluster",
			"shared:cluster"
		]);
	});

	it("shows a service's dependencies as its owner resolves them", async () => {
		const acme = await views.serviceNamed("api", ana);
		expect((acme.dependencyTree as any).dependencies.map((d: any) => [d.name, d.kind])).toEqual(
			[
				["db", "resource"],
				["acme-embedder", "moleculer"],
				["shared", "moleculer"]
			]
		);
		const beta = await views.serviceNamed("api", bob);
		expect(beta).toMatchObject({ owner: "tenant", tenant: "beta" });
		expect((beta.dependencyTree as any).dependencies[0]).toMatchObject({
			name: "db",
			kind: "missing"
		});
		// A cluster service sees neither acme's resource nor acme's Moleculer service.
		const platform = await views.serviceNamed("platform", bob);
		expect((platform.dependencyTree as any).dependencies.map((d: any) => d.kind)).toEqual([
			"missing",
			"missing"
		]);
	});

	it("answers 404 for another tenant's discovered service, as for one no node runs", async () => {
		await expect(views.serviceNamed("acme-embedder", ana)).resolves.toMatchObject({
			owner: "tenant",
			tenant: "acme"
		});
		for (const name of ["acme-embedder", "nobody"])
			await expectError(views.serviceNamed(name, bob), NotFoundError, {
				code: 404,
				data: { kind: "Service", id: name }
			});
	});

	it("calls a tenant's Moleculer service for that tenant only, and the cluster's for all", async () => {
		const params = { service: "acme-embedder", action: "run" };
		expect(await proxy.callAction(ctxFor(ana, params), "run")).toBe("answer");
		expect(await proxy.callAction(ctxFor(admin, params), "run")).toBe("answer");
		call.mockClear();
		for (const service of ["acme-embedder", "nobody"]) {
			const err = await proxy
				.callAction(ctxFor(bob, { service, action: "run" }), "run")
				.catch(e => e);
			expect(err).toBeInstanceOf(NotFoundError);
			expect(err).toMatchObject({
				code: 404,
				message: `Service '${service}' not found.`,
				data: { kind: "Service", id: service }
			});
		}
		expect(call).not.toHaveBeenCalled();
		expect(
			await proxy.callAction(ctxFor(bob, { service: "shared", action: "run" }), "run")
		).toBe("answer");
	});

	it("keeps the health of two tenants' services of one name apart", async () => {
		const a = (await catalog.resolveService("api", ana)).value;
		const b = (await catalog.resolveService("api", bob)).value;
		await catalog.putHealth(endpointKey("acme/api", "http://api:1"), {
			status: "healthy",
			checkedAt: 1,
			latencyMs: 1,
			successes: 1,
			failures: 0
		});
		expect(((await views.service(a)).endpoints as any)[0].health.status).toBe("healthy");
		expect(((await views.service(b)).endpoints as any)[0].health.status).toBe("unknown");
	});
});
