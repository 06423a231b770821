import { COLLECTIONS } from "../../../../services/shared/collections";
import { SqliteStore } from "../../../../services/shared/store/sqlite";
import { DOC_CHECKS, MAX_DOCUMENT_DEPTH } from "../../../../services/shared/store/schemas";
import { decodeDocs } from "../../../../services/shared/store/unreadable";
import {
	InvalidDocumentError,
	validatingStore
} from "../../../../services/shared/store/validating";

const resource = {
	id: "r1",
	name: "pg",
	type: "postgres",
	endpoint: "postgres://db",
	config: {},
	healthCheck: { interval: 10_000, timeout: 2000, healthyThreshold: 1, unhealthyThreshold: 2 },
	createdAt: 1,
	updatedAt: 1
};

function nested(depth: number): unknown {
	let v: unknown = 1;
	for (let i = 0; i < depth; i++) v = { a: v };
	return v;
}

describe("decodeDocs", () => {
	it("keeps the documents that parse and reports the others by collection and id", () => {
		const skipped: string[] = [];
		const docs = decodeDocs(
			"c",
			[
				{ id: "a", value: '{"n":1}', version: 1 },
				{ id: "b", value: '{"n":', version: 3 }
			],
			(collection, id, reason) => skipped.push(`${collection}/${id}: ${reason}`)
		);
		expect(docs).toEqual([{ id: "a", value: { n: 1 }, version: 1 }]);
		expect(skipped).toEqual([expect.stringMatching(/^c\/b: not JSON/)]);
	});
});

describe("validatingStore", () => {
	const raw = new SqliteStore(":memory:");
	const skipped: Array<[string, string, string]> = [];
	const store = validatingStore(raw, DOC_CHECKS, (c, id, reason) =>
		skipped.push([c, id, reason])
	);
	afterAll(() => store.close());
	beforeEach(() => (skipped.length = 0));

	it("writes and reads a document that fits its schema", async () => {
		expect(await store.cas(COLLECTIONS.resources, "r1", resource, 0)).toBe(1);
		expect((await store.get(COLLECTIONS.resources, "r1"))?.value).toEqual(resource);
		// Fields added later (an owner) do not make a document unreadable.
		await store.put(COLLECTIONS.resources, "r1", { ...resource, owner: "t" });
		expect(await store.list(COLLECTIONS.resources)).toHaveLength(1);
	});

	it("refuses with 422 a write that does not fit, through put, cas and transact", async () => {
		const bad = { ...resource, id: "r2", type: "mongo" };
		for (const write of [
			() => store.put(COLLECTIONS.resources, "r2", bad),
			() => store.cas(COLLECTIONS.resources, "r2", bad, 0),
			() => store.transact([], [{ collection: COLLECTIONS.resources, id: "r2", value: bad }])
		]) {
			const err = await write().catch(e => e);
			expect(err).toBeInstanceOf(InvalidDocumentError);
			expect(err).toMatchObject({
				code: 422,
				type: "INVALID_DOCUMENT",
				data: { collection: "resources", id: "r2" }
			});
			expect(err.data.problems[0]).toMatch(/'type' field/);
		}
		expect(await raw.get(COLLECTIONS.resources, "r2")).toBeNull();
	});

	it("refuses a document nested deeper than the bound, in any field", async () => {
		const deep = { ...resource, id: "r3", config: nested(MAX_DOCUMENT_DEPTH) };
		const err = await store.put(COLLECTIONS.resources, "r3", deep).catch(e => e);
		expect(err.data.problems).toEqual([`nested deeper than ${MAX_DOCUMENT_DEPTH} levels`]);
	});

	it("skips and reports a stored document that does not fit; get answers null", async () => {
		await raw.put(COLLECTIONS.resources, "r4", { id: "r4", name: 5 });
		expect((await store.list(COLLECTIONS.resources)).map(d => d.id)).toEqual(["r1"]);
		expect(await store.get(COLLECTIONS.resources, "r4")).toBeNull();
		expect(skipped.map(([c, id]) => `${c}/${id}`)).toEqual(["resources/r4", "resources/r4"]);
	});

	it("passes collections without a schema, and every other method, through", async () => {
		await store.put("anything", "x", { free: [1, "form"] });
		expect((await store.list("anything"))[0].value).toEqual({ free: [1, "form"] });
		expect(store.kind).toBe("sqlite");
		await expect(store.ping()).resolves.toBeUndefined();
		expect(await store.append("log", { a: 1 })).toBe(1);
	});
});
