import fs from "fs";
import os from "os";
import path from "path";
import { SqliteStore, type Store } from "../../../../services/shared/store";
import { StoreIdentityMismatchError } from "../../../../services/shared/errors";
import { guardedStore, IdentityGuard } from "../../../../services/shared/store/identity-guard";
import { identityFile, inFile, inMemory } from "../../../../services/shared/store/identity-memory";
import { IDENTITY_COLLECTION, IDENTITY_ID } from "../../../../services/shared/store/identity";

describe("IdentityGuard", () => {
	let raw: Store;
	let n: number;
	const guard = (memory = inMemory()) =>
		new IdentityGuard(raw, memory, { clock: () => 1000, newId: () => `id-${++n}` });

	beforeEach(() => {
		raw = new SqliteStore(":memory:");
		n = 0;
	});
	afterEach(() => raw.close());

	it("initialises a brand-new store once, and a second process takes that identity", async () => {
		const a = guard();
		expect(await a.verify()).toBe(true);
		expect(a.identity).toEqual({ clusterId: "id-1", epoch: 1, createdAt: 1000 });
		const b = guard();
		expect(await b.verify()).toBe(true);
		expect(b.identity).toEqual(a.identity);
		expect((await raw.get(IDENTITY_COLLECTION, IDENTITY_ID))?.version).toBe(1);
	});

	it("refuses writes, not reads, once the store lost its identity, and tells listeners", async () => {
		const g = guard();
		const store = guardedStore(raw, g);
		await store.put("things", "a", { v: 1 });
		const changes = jest.fn();
		g.onChange(changes);
		// What a Redis restarted empty looks like from here.
		await raw.delete(IDENTITY_COLLECTION, IDENTITY_ID);
		await raw.delete("things", "a");
		expect(await g.verify()).toBe(false);
		expect(changes).toHaveBeenCalledTimes(1);
		expect(g.mismatch).toMatchObject({ problem: "missing", expected: { clusterId: "id-1" } });
		const err = await store.put("things", "b", { v: 2 }).catch(e => e);
		expect(err).toBeInstanceOf(StoreIdentityMismatchError);
		expect(err).toMatchObject({
			code: 503,
			type: "STORE_IDENTITY_MISMATCH",
			data: { problem: "missing", found: null }
		});
		expect(err.message).toContain("npm run adopt");
		for (const write of [
			() => store.cas("things", "b", 1, 0),
			() => store.delete("things", "b"),
			() => store.transact([], [{ collection: "things", id: "b", value: 1 }]),
			() => store.append("log", {}),
			() => store.appendAt("log", 1, [{}]),
			() => store.trimLog("log", 1)
		])
			await expect(write()).rejects.toBeInstanceOf(StoreIdentityMismatchError);
		expect(await store.list("things")).toEqual([]);
		expect(await raw.get("things", "b")).toBeNull();
	});

	it("adopts: the identity moves to the next epoch with the caller's writes, atomically", async () => {
		const g = guard();
		await g.verify();
		await raw.delete(IDENTITY_COLLECTION, IDENTITY_ID);
		await g.verify();
		const agentKnows = { clusterId: "id-1", epoch: 1, createdAt: 0 };
		// A check that fails writes nothing, the identity neither.
		expect(
			await g.adopt(
				[{ collection: "things", id: "x", version: 5 }],
				[{ collection: "things", id: "x", value: 1 }],
				[agentKnows]
			)
		).toBe(false);
		expect(await raw.get(IDENTITY_COLLECTION, IDENTITY_ID)).toBeNull();
		const adopted = await g.adopt(
			[{ collection: "things", id: "x", version: 0 }],
			[{ collection: "things", id: "x", value: 1 }],
			[agentKnows]
		);
		expect(adopted).toEqual({ clusterId: "id-1", epoch: 2, createdAt: 1000 });
		expect(g.usable).toBe(true);
		expect((await raw.get("things", "x"))?.value).toBe(1);
		await guardedStore(raw, g).put("things", "y", 2);
		// Another process of the cluster that remembered epoch 1 takes the adopted store.
		const other = guard();
		expect(await other.verify()).toBe(true);
	});

	it("refuses another cluster's store and a restored older epoch", async () => {
		const memory = inMemory();
		memory.save({ clusterId: "ours", epoch: 3, createdAt: 0 });
		await raw.put(IDENTITY_COLLECTION, IDENTITY_ID, {
			clusterId: "theirs",
			epoch: 9,
			createdAt: 0
		});
		const g = guard(memory);
		expect(await g.verify()).toBe(false);
		expect(g.mismatch?.problem).toBe("foreign");
		await raw.put(IDENTITY_COLLECTION, IDENTITY_ID, {
			clusterId: "ours",
			epoch: 2,
			createdAt: 0
		});
		expect(await g.verify()).toBe(false);
		expect(g.mismatch?.problem).toBe("stale");
		await raw.put(IDENTITY_COLLECTION, IDENTITY_ID, {
			clusterId: "ours",
			epoch: 4,
			createdAt: 0
		});
		expect(await g.verify()).toBe(true);
		expect(memory.load()?.epoch).toBe(4);
	});

	it("is not decided while the store cannot be read, and refuses writes then", async () => {
		const g = guard();
		await raw.close();
		expect(await g.verify()).toBe(false);
		expect(g.mismatch).toBeNull();
		await expect(guardedStore(raw, g).put("a", "b", 1)).rejects.toThrow();
		raw = new SqliteStore(":memory:");
	});
});

describe("identity memory in a file", () => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), "isa-identity-"));
	afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

	it("survives the process, one file per key, none holding the key's URL", () => {
		const key = "store\u0000ns\u0000redis://:secret@127.0.0.1:6379";
		const file = identityFile(dir, key);
		expect(file).not.toContain("secret");
		inFile(file).save({ clusterId: "c", epoch: 2, createdAt: 1 });
		expect(inFile(file).load()).toEqual({ clusterId: "c", epoch: 2, createdAt: 1 });
		expect(fs.readFileSync(file, "utf8")).not.toContain("secret");
		expect(fs.statSync(file).mode & 0o777).toBe(0o600);
		expect(identityFile(dir, "store\u0000other\u0000redis://127.0.0.1:6379")).not.toBe(file);
	});

	it("counts an unreadable file as no memory, with a warning", () => {
		const file = path.join(dir, "broken.json");
		fs.writeFileSync(file, "{not json");
		const warn = jest.fn();
		expect(inFile(file, warn).load()).toBeNull();
		expect(warn).toHaveBeenCalledWith(expect.stringContaining("cannot be read"));
	});
});
