import { parseApplyDocument } from "../../../services/registry/apply";
import { Catalog } from "../../../services/registry/catalog";
import { initialHealth } from "../../../services/registry/health";
import { endpointKey, resourceKey } from "../../../services/registry/targets";
import { ConflictError, InvalidInputError, NotFoundError } from "../../../services/shared/errors";
import { SqliteStore } from "../../../services/shared/store";

const healthy = { ...initialHealth(), status: "healthy" as const, successes: 1 };

describe("Catalog", () => {
	let store: SqliteStore;
	let catalog: Catalog;
	beforeEach(() => {
		store = new SqliteStore(":memory:");
		catalog = new Catalog({ store });
	});
	afterEach(() => store.close());

	describe("resources", () => {
		const pg = { name: "pg", type: "postgres" as const, endpoint: "postgres://db/x" };

		it("creates one under a new id and refuses a second of the same name", async () => {
			const r = await catalog.saveResource(pg);
			expect(r).toMatchObject({ name: "pg", type: "postgres", config: {} });
			expect(await catalog.resourceId("pg")).toBe(r.id);
			expect((await catalog.findResource(r.id)).value).toEqual(r);
			const err = await catalog
				.saveResource({ ...pg, endpoint: "postgres://db/y" })
				.catch(e => e);
			expect(err).toBeInstanceOf(ConflictError);
			expect(err).toMatchObject({
				code: 409,
				type: "CONFLICT",
				message: "A resource named 'pg' exists already, or this one changed meanwhile.",
				data: { name: "pg" }
			});
		});

		it("renames, freeing the old name, and keeps the id and createdAt", async () => {
			const r = await catalog.saveResource(pg);
			const renamed = await catalog.saveResource(
				{ ...pg, name: "pg2" },
				await catalog.findResource(r.id)
			);
			expect(renamed).toMatchObject({ id: r.id, name: "pg2", createdAt: r.createdAt });
			expect(await catalog.resourceId("pg")).toBeNull();
			expect(await catalog.resourceId("pg2")).toBe(r.id);
			await expect(catalog.saveResource(pg)).resolves.toMatchObject({ name: "pg" });
		});

		it("refuses an update from a version that changed meanwhile", async () => {
			const r = await catalog.saveResource(pg);
			const read = await catalog.findResource(r.id);
			await catalog.saveResource({ ...pg, endpoint: "postgres://db/y" }, read);
			await expect(
				catalog.saveResource({ ...pg, endpoint: "postgres://db/z" }, read)
			).rejects.toBeInstanceOf(ConflictError);
		});

		it("lists by name, of one type when asked", async () => {
			await catalog.saveResource({ ...pg, name: "zeta" });
			await catalog.saveResource({ ...pg, name: "alpha" });
			await catalog.saveResource({
				name: "cache",
				type: "redis",
				endpoint: "redis://c:6379"
			});
			expect((await catalog.resources()).map(r => r.name)).toEqual([
				"alpha",
				"cache",
				"zeta"
			]);
			expect((await catalog.resources("redis")).map(r => r.name)).toEqual(["cache"]);
		});

		it("deletes a resource with its name and its health", async () => {
			const r = await catalog.saveResource(pg);
			await catalog.putHealth(resourceKey(r.id), healthy);
			expect(await catalog.deleteResource(r.id)).toEqual(r);
			expect(await catalog.resourceId("pg")).toBeNull();
			expect(await catalog.health(resourceKey(r.id))).toEqual(initialHealth());
			const err = await catalog.findResource(r.id).catch(e => e);
			expect(err).toBeInstanceOf(NotFoundError);
			expect(err).toMatchObject({ code: 404, data: { kind: "Resource", id: r.id } });
		});
	});

	describe("services", () => {
		const svc = (name: string, dependencies: string[] = []) => ({
			name,
			type: "http",
			endpoints: [`http://${name}:1`],
			dependencies
		});

		it("refuses a second service of a name", async () => {
			await catalog.saveService(svc("a"));
			const err = await catalog.saveService(svc("a")).catch(e => e);
			expect(err).toBeInstanceOf(ConflictError);
			expect(err).toMatchObject({
				message: "A service named 'a' exists already.",
				data: { name: "a" }
			});
		});

		it("refuses dependencies that would close a cycle", async () => {
			await catalog.saveService(svc("a", ["b"]));
			await catalog.saveService(svc("b", ["c"]));
			const err = await catalog
				.saveService(svc("c", ["a"]))
				.catch(e => e as InvalidInputError);
			expect(err).toBeInstanceOf(InvalidInputError);
			expect(err).toMatchObject({
				code: 422,
				message: "These dependencies would form a cycle: c → a → b → c.",
				data: { cycle: ["c", "a", "b", "c"] }
			});
			expect(await catalog.service("c")).toBeNull();
		});

		it("deletes a service with the health of its endpoints", async () => {
			const s = await catalog.saveService(svc("a"));
			await catalog.putHealth(endpointKey("a", "http://a:1"), healthy);
			expect(await catalog.deleteService("a")).toEqual(s);
			expect(await catalog.healthMany([endpointKey("a", "http://a:1")])).toEqual(new Map());
			await expect(catalog.findService("a")).rejects.toBeInstanceOf(NotFoundError);
		});
	});

	it("plans a document against what is registered and applies it", async () => {
		const doc = parseApplyDocument({
			resources: { pg: { type: "postgres", endpoint: "postgres://db/x" } },
			services: { agent: { type: "http", endpoints: ["http://a:1"], dependencies: ["pg"] } }
		});
		const first = await catalog.plan(doc);
		expect(first.resources.map(s => s.change)).toEqual(["created"]);
		expect(first.services.map(s => s.change)).toEqual(["created"]);
		await catalog.apply(first);
		expect((await catalog.plan(doc)).resources.map(s => s.change)).toEqual(["unchanged"]);

		const changed = parseApplyDocument({
			resources: { pg: { type: "postgres", endpoint: "postgres://db/y" } }
		});
		const second = await catalog.plan(changed);
		expect(second.resources).toMatchObject([{ change: "updated" }]);
		await catalog.apply(second);
		const [pg] = await catalog.resources();
		expect(pg).toMatchObject({ endpoint: "postgres://db/y", id: second.resources[0].id });
	});

	it("answers the health only of targets checked, and unknown before the first check", async () => {
		await catalog.putHealth("k1", healthy);
		expect(await catalog.healthMany(["k1", "k2"])).toEqual(new Map([["k1", healthy]]));
		expect(await catalog.health("k2")).toEqual(initialHealth());
	});

	it("finds a target for every resource and every service endpoint", async () => {
		const r = await catalog.saveResource({
			name: "pg",
			type: "postgres",
			endpoint: "postgres://db/x"
		});
		await catalog.saveService({
			name: "a",
			type: "http",
			endpoints: ["http://a:1", "http://a:2"]
		});
		expect((await catalog.targets()).map(t => t.key)).toEqual([
			resourceKey(r.id),
			endpointKey("a", "http://a:1"),
			endpointKey("a", "http://a:2")
		]);
	});
});
