/**
 * The Store contract, run against every backend: services may move between Redis and SQLite by
 * configuration alone, so whatever one backend promises the other must too. Each test gets an
 * empty place to keep data (a new SQLite file, a new Redis key prefix) and may open several stores
 * on it to play several processes. Backend-only behaviour (SQLite files surviving a reopen and
 * shared between processes, Redis outages) follows the contract.
 */
import { spawn } from "child_process";
import fs from "fs";
import os from "os";
import path from "path";
import { StoreUnavailableError } from "../../services/shared/errors";
import { RedisStore } from "../../services/shared/store/redis";
import { SqliteStore } from "../../services/shared/store/sqlite";
import type { LogEntry, Store } from "../../services/shared/store/store";
import { startRedis, TestServer } from "../helpers/servers";
import { redisBackend, sqliteBackend } from "../helpers/store-backends";

const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms));

/** Adds one to the counter document by read-then-CAS until it wins; resolves to the won version. */
async function increment(store: Store, id: string): Promise<number> {
	for (;;) {
		const cur = await store.get<{ n: number }>("counters", id);
		const version = await store.cas(
			"counters",
			id,
			{ n: (cur?.value.n ?? 0) + 1 },
			cur?.version ?? 0
		);
		if (version !== null) return version;
	}
}

describe.each([sqliteBackend(), redisBackend()])("Store contract: $name", backend => {
	const opened: Store[] = [];
	let open: () => Store;
	let store: Store;

	beforeAll(() => backend.start());
	afterAll(() => backend.stop());
	beforeEach(() => {
		const openHere = backend.fresh();
		open = () => {
			const s = openHere();
			opened.push(s);
			return s;
		};
		store = open();
	});
	afterEach(async () => {
		await Promise.all(opened.splice(0).map(s => s.close()));
	});

	it("says which backend it is", () => {
		expect(store.kind).toBe(backend.name);
	});

	it("gets null for a missing document and reads back what it put, at version 1", async () => {
		expect(await store.get("nodes", "n1")).toBeNull();
		expect(await store.put("nodes", "n1", { gpus: 8 })).toBe(1);
		expect(await store.get("nodes", "n1")).toEqual({ value: { gpus: 8 }, version: 1 });
	});

	it("grows the version by one on every put", async () => {
		await store.put("nodes", "n1", { gpus: 1 });
		expect(await store.put("nodes", "n1", { gpus: 2 })).toBe(2);
		expect(await store.put("nodes", "n1", { gpus: 3 })).toBe(3);
		expect(await store.get("nodes", "n1")).toEqual({ value: { gpus: 3 }, version: 3 });
	});

	it("reads versions alone, 0 for a missing document", async () => {
		await store.put("nodes", "n1", { gpus: 1 });
		await store.put("nodes", "n1", { gpus: 2 });
		await store.put("nodes", "n2", { gpus: 1 });
		await store.put("other", "n3", { gpus: 1 });
		expect(await store.versions("nodes", ["n2", "n1", "n3"])).toEqual([1, 2, 0]);
		expect(await store.versions("nodes", [])).toEqual([]);
	});

	it("lists a collection's versions alone, in id order, apart from other collections", async () => {
		await store.put("nodes", "b", 2);
		await store.put("nodes", "a", 1);
		await store.put("nodes", "a", 11);
		await store.put("nodes", "c", 3);
		await store.delete("nodes", "c");
		await store.put("jobs", "z", "job");
		const versions = await store.listVersions("nodes");
		expect([...versions]).toEqual([
			["a", 2],
			["b", 1]
		]);
		expect([...(await store.listVersions("empty"))]).toEqual([]);
	});

	it("lists thousands of versions whole, however it pages them", async () => {
		const ids = Array.from({ length: 4500 }, (_, i) => `w${String(i).padStart(5, "0")}`);
		await store.transact(
			[],
			ids.map(id => ({ collection: "many", id, value: { id } }))
		);
		await store.put("many", ids[2000], { again: true });
		const versions = await store.listVersions("many");
		expect(versions.size).toBe(4500);
		expect([...versions.keys()]).toEqual(ids);
		expect(versions.get(ids[2000])).toBe(2);
		expect(versions.get(ids[4499])).toBe(1);
	});

	it("lists a collection in id order with versions, apart from other collections", async () => {
		await store.put("nodes", "b", 2);
		await store.put("nodes", "a", 1);
		await store.put("nodes", "c", 3);
		await store.put("nodes", "a", 11);
		await store.put("jobs", "a", "job");
		expect(await store.list("nodes")).toEqual([
			{ id: "a", value: 11, version: 2 },
			{ id: "b", value: 2, version: 1 },
			{ id: "c", value: 3, version: 1 }
		]);
		expect(await store.list("jobs")).toEqual([{ id: "a", value: "job", version: 1 }]);
		expect(await store.list("empty")).toEqual([]);
	});

	it("deletes, and starts a recreated document over at version 1", async () => {
		await store.put("nodes", "n1", "x");
		await store.put("nodes", "n1", "y");
		expect(await store.delete("nodes", "n1")).toBe(true);
		expect(await store.get("nodes", "n1")).toBeNull();
		expect(await store.delete("nodes", "n1")).toBe(false);
		expect(await store.list("nodes")).toEqual([]);
		expect(await store.cas("nodes", "n1", "z", 0)).toBe(1);
	});

	it("deletes with an expected version only at that version", async () => {
		await store.put("nodes", "n1", "x");
		await store.put("nodes", "n1", "y");
		expect(await store.delete("nodes", "n1", 1)).toBe(false);
		expect(await store.get("nodes", "n1")).toEqual({ value: "y", version: 2 });
		expect(await store.delete("nodes", "n1", 2)).toBe(true);
		expect(await store.get("nodes", "n1")).toBeNull();
		expect(await store.delete("nodes", "missing", 0)).toBe(false);
	});

	it("creates with cas(expected 0) only when the document does not exist", async () => {
		expect(await store.cas("nodes", "n1", "first", 0)).toBe(1);
		expect(await store.cas("nodes", "n1", "second", 0)).toBeNull();
		expect(await store.get("nodes", "n1")).toEqual({ value: "first", version: 1 });
	});

	it("writes nothing when cas expects another version", async () => {
		await store.put("nodes", "n1", "v1");
		await store.put("nodes", "n1", "v2");
		expect(await store.cas("nodes", "n1", "stale", 1)).toBeNull();
		expect(await store.cas("nodes", "n1", "future", 3)).toBeNull();
		expect(await store.cas("nodes", "missing", "x", 1)).toBeNull();
		expect(await store.get("nodes", "n1")).toEqual({ value: "v2", version: 2 });
		expect(await store.get("nodes", "missing")).toBeNull();
		expect(await store.cas("nodes", "n1", "v3", 2)).toBe(3);
		expect(await store.get("nodes", "n1")).toEqual({ value: "v3", version: 3 });
	});

	it("transacts: all checks hold, so every write happens and versions grow", async () => {
		await store.put("nodes", "n1", { free: 8 });
		await store.put("nodes", "n2", { free: 4 });
		await store.put("reservations", "old", { gpus: 1 });
		const ok = await store.transact(
			[
				{ collection: "nodes", id: "n1", version: 1 },
				{ collection: "reservations", id: "r1", version: 0 }
			],
			[
				{ collection: "nodes", id: "n1", value: { free: 6 } },
				{ collection: "reservations", id: "r1", value: { node: "n1", gpus: 2 } },
				{ collection: "reservations", id: "old", value: null }
			]
		);
		expect(ok).toBe(true);
		expect(await store.get("nodes", "n1")).toEqual({ value: { free: 6 }, version: 2 });
		expect(await store.get("reservations", "r1")).toEqual({
			value: { node: "n1", gpus: 2 },
			version: 1
		});
		expect(await store.get("reservations", "old")).toBeNull();
		expect(await store.get("nodes", "n2")).toEqual({ value: { free: 4 }, version: 1 });
	});

	it("transacts all or nothing: one failed check writes nothing at all", async () => {
		await store.put("nodes", "n1", { free: 8 });
		await store.put("nodes", "n2", { free: 4 });
		await store.put("nodes", "n2", { free: 3 });
		await store.put("reservations", "old", { gpus: 1 });
		const writes = [
			{ collection: "nodes", id: "n1", value: { free: 0 } },
			{ collection: "reservations", id: "r1", value: { gpus: 8 } },
			{ collection: "reservations", id: "old", value: null }
		];
		const n1 = { collection: "nodes", id: "n1", version: 1 };
		expect(
			await store.transact([n1, { collection: "nodes", id: "n2", version: 1 }], writes)
		).toBe(false);
		expect(
			await store.transact([n1, { collection: "nodes", id: "n2", version: 0 }], writes)
		).toBe(false);
		expect(
			await store.transact(
				[n1, { collection: "reservations", id: "old", version: 0 }],
				writes
			)
		).toBe(false);
		// A failing check on a document the transaction itself writes (n1 at 5, r1 at 3) also
		// writes nothing, not even the writes listed before that document's.
		expect(await store.transact([{ collection: "nodes", id: "n1", version: 5 }], writes)).toBe(
			false
		);
		expect(
			await store.transact([n1, { collection: "reservations", id: "r1", version: 3 }], writes)
		).toBe(false);
		expect(await store.get("nodes", "n1")).toEqual({ value: { free: 8 }, version: 1 });
		expect(await store.get("reservations", "r1")).toBeNull();
		expect(await store.get("reservations", "old")).toEqual({ value: { gpus: 1 }, version: 1 });
		expect(await store.transact([n1], writes)).toBe(true);
		expect(await store.get("nodes", "n1")).toEqual({ value: { free: 0 }, version: 2 });
	});

	it("checks a deleted or twice-written document at the version it had before the transaction", async () => {
		await store.put("reservations", "r1", { gpus: 1 });
		await store.put("reservations", "r2", { gpus: 2 });
		const del = (id: string) => ({ collection: "reservations", id, value: null });
		const check = (id: string, version: number) => ({
			collection: "reservations",
			id,
			version
		});
		// Deleting a document checked at another version, or checked absent, writes nothing.
		expect(await store.transact([check("r2", 1), check("r1", 2)], [del("r2"), del("r1")])).toBe(
			false
		);
		expect(await store.transact([check("r1", 0)], [del("r1")])).toBe(false);
		expect(await store.get("reservations", "r2")).toEqual({ value: { gpus: 2 }, version: 1 });
		// Deleting a document checked absent (version 0) succeeds when it is indeed absent.
		expect(await store.transact([check("gone", 0)], [del("gone")])).toBe(true);
		// Written twice in one transaction: checked against the version before both writes.
		const twice = [
			{ collection: "reservations", id: "r1", value: { gpus: 3 } },
			{ collection: "reservations", id: "r1", value: { gpus: 4 } }
		];
		expect(await store.transact([check("r1", 2)], twice)).toBe(false);
		expect(await store.transact([check("r1", 1)], twice)).toBe(true);
		expect(await store.get("reservations", "r1")).toEqual({ value: { gpus: 4 }, version: 3 });
		expect(await store.transact([check("r1", 3), check("r2", 1)], [del("r1"), del("r2")])).toBe(
			true
		);
		expect(await store.list("reservations")).toEqual([]);
	});

	it("takes one transaction of 30,000 checked writes (a scheduler's group commit)", async () => {
		const checks = Array.from({ length: 30_000 }, (_, i) => ({
			collection: "placements",
			id: `w/${i}@1`,
			version: 0
		}));
		const writes = checks.map(c => ({ collection: c.collection, id: c.id, value: { n: 1 } }));
		expect(await store.transact(checks, writes)).toBe(true);
		expect(await store.versions("placements", ["w/0@1", "w/29999@1"])).toEqual([1, 1]);
		expect(await store.list("placements")).toHaveLength(30_000);
	});

	it("transacts without checks as unconditional writes", async () => {
		await store.put("nodes", "n1", 1);
		expect(
			await store.transact(
				[],
				[
					{ collection: "nodes", id: "n1", value: 2 },
					{ collection: "nodes", id: "n2", value: 1 }
				]
			)
		).toBe(true);
		expect(await store.list("nodes")).toEqual([
			{ id: "n1", value: 2, version: 2 },
			{ id: "n2", value: 1, version: 1 }
		]);
	});

	it("lets exactly one of 200 concurrent cas on one version win, across two stores", async () => {
		const other = open();
		await store.put("counters", "c", { n: 0 });
		const results = await Promise.all(
			Array.from({ length: 200 }, (_, i) =>
				(i % 2 ? store : other).cas("counters", "c", { n: i }, 1)
			)
		);
		const winners = results.filter(v => v !== null);
		expect(winners).toEqual([2]);
		const winner = results.indexOf(2);
		expect(await other.get("counters", "c")).toEqual({ value: { n: winner }, version: 2 });
	});

	it("counts right under 200 racing read-then-cas increments from two stores", async () => {
		const other = open();
		const versions = await Promise.all(
			Array.from({ length: 200 }, (_, i) => increment(i % 2 ? store : other, "c"))
		);
		// Every version was won exactly once.
		expect(versions.sort((a, b) => a - b)).toEqual(
			Array.from({ length: 200 }, (_, i) => i + 1)
		);
		expect(await store.get("counters", "c")).toEqual({ value: { n: 200 }, version: 200 });
	});

	it("never over-commits when concurrent transactions reserve the same node", async () => {
		const other = open();
		await store.put("nodes", "n1", { free: 30 });
		const reserve = async (s: Store, id: string): Promise<boolean> => {
			for (;;) {
				const node = await s.get<{ free: number }>("nodes", "n1");
				if (!node || node.value.free < 1) return false;
				const ok = await s.transact(
					[
						{ collection: "nodes", id: "n1", version: node.version },
						{ collection: "reservations", id, version: 0 }
					],
					[
						{ collection: "nodes", id: "n1", value: { free: node.value.free - 1 } },
						{ collection: "reservations", id, value: { node: "n1" } }
					]
				);
				if (ok) return true;
			}
		};
		const won = await Promise.all(
			Array.from({ length: 60 }, (_, i) => reserve(i % 2 ? store : other, `r${i}`))
		);
		expect(won.filter(Boolean)).toHaveLength(30);
		expect(await store.get("nodes", "n1")).toEqual({ value: { free: 0 }, version: 31 });
		expect(await other.list("reservations")).toHaveLength(30);
	});

	it("numbers each log's entries 1, 2, 3… and reads them oldest first", async () => {
		const before = Date.now();
		expect(await store.append("audit", { action: "a" })).toBe(1);
		expect(await store.append("audit", { action: "b" })).toBe(2);
		expect(await store.append("other", { action: "x" })).toBe(1);
		expect(await store.append("audit", { action: "c" })).toBe(3);
		const entries = await store.readLog<{ action: string }>("audit");
		expect(entries.map(e => [e.seq, e.entry.action])).toEqual([
			[1, "a"],
			[2, "b"],
			[3, "c"]
		]);
		for (const e of entries) {
			expect(e.at).toBeGreaterThanOrEqual(before - 1000);
			expect(e.at).toBeLessThanOrEqual(Date.now() + 1000);
		}
		expect(await store.readLog("other")).toEqual([
			{ seq: 1, at: expect.any(Number), entry: { action: "x" } }
		]);
		expect(await store.readLog("missing")).toEqual([]);
	});

	it("keeps seq gapless when appends race from two stores", async () => {
		const other = open();
		const seqs = await Promise.all(
			Array.from({ length: 100 }, (_, i) => (i % 2 ? store : other).append("audit", i))
		);
		expect(seqs.sort((a, b) => a - b)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
		const entries = await store.readLog<number>("audit", { limit: 1000 });
		expect(entries.map(e => e.seq)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
		expect(entries.map(e => e.entry).sort((a, b) => a - b)).toEqual(
			Array.from({ length: 100 }, (_, i) => i)
		);
	});

	it("reads a log by afterSeq, limit and newestFirst", async () => {
		for (let i = 1; i <= 10; i++) await store.append("audit", i);
		const seqs = (entries: LogEntry<number>[]) => entries.map(e => e.seq);
		expect(seqs(await store.readLog("audit", { afterSeq: 7 }))).toEqual([8, 9, 10]);
		expect(seqs(await store.readLog("audit", { afterSeq: 10 }))).toEqual([]);
		expect(seqs(await store.readLog("audit", { limit: 3 }))).toEqual([1, 2, 3]);
		expect(seqs(await store.readLog("audit", { afterSeq: 4, limit: 2 }))).toEqual([5, 6]);
		expect(seqs(await store.readLog("audit", { newestFirst: true, limit: 3 }))).toEqual([
			10, 9, 8
		]);
		expect(seqs(await store.readLog("audit", { newestFirst: true, afterSeq: 7 }))).toEqual([
			10, 9, 8
		]);
		expect(
			seqs(await store.readLog("audit", { newestFirst: true, afterSeq: 2, limit: 100 }))
		).toHaveLength(8);
		expect(await store.readLog("audit", { limit: 0 })).toEqual([]);
	});

	it("reads at most 100 entries unless told otherwise", async () => {
		await Promise.all(Array.from({ length: 120 }, (_, i) => store.append("audit", i)));
		expect(await store.readLog("audit")).toHaveLength(100);
		expect((await store.readLog("audit", { newestFirst: true }))[0].seq).toBe(120);
		expect(await store.readLog("audit", { limit: 500 })).toHaveLength(120);
	});

	it("reads a log since a time", async () => {
		for (let i = 1; i <= 3; i++) await store.append("audit", i);
		await sleep(20);
		for (let i = 4; i <= 6; i++) await store.append("audit", i);
		const all = await store.readLog<number>("audit");
		const since = all[3].at;
		expect(all[2].at).toBeLessThan(since);
		const seqs = (entries: LogEntry<number>[]) => entries.map(e => e.seq);
		expect(seqs(await store.readLog("audit", { since }))).toEqual([4, 5, 6]);
		expect(seqs(await store.readLog("audit", { since, limit: 2 }))).toEqual([4, 5]);
		expect(seqs(await store.readLog("audit", { since, newestFirst: true }))).toEqual([6, 5, 4]);
		expect(seqs(await store.readLog("audit", { since, afterSeq: 5 }))).toEqual([6]);
		expect(seqs(await store.readLog("audit", { since: since + 60_000 }))).toEqual([]);
		expect(seqs(await store.readLog("audit", { since: 0, limit: 2 }))).toEqual([1, 2]);
	});

	it("appends at a seq only right after the log's newest entry, one winner across two stores", async () => {
		expect(await store.appendAt("chain", 2, ["too far"])).toBe(false);
		expect(await store.appendAt("chain", 1, ["first"])).toBe(true);
		expect(await store.appendAt("chain", 1, ["again"])).toBe(false);
		const other = open();
		const won = await Promise.all(
			Array.from({ length: 20 }, (_, i) => (i % 2 ? store : other).appendAt("chain", 2, [i]))
		);
		expect(won.filter(Boolean)).toHaveLength(1);
		expect(await store.append("chain", "plain")).toBe(3);
		// A group: all at consecutive seqs, or none.
		expect(await store.appendAt("chain", 5, ["x", "y"])).toBe(false);
		expect(await store.appendAt("chain", 4, ["g1", "g2", "g3"])).toBe(true);
		expect(await store.append("chain", "after")).toBe(7);
		const entries = await store.readLog("chain");
		expect(entries.map(e => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7]);
		expect(entries.map(e => e.entry).slice(3)).toEqual(["g1", "g2", "g3", "after"]);
		expect(entries[0].entry).toBe("first");
	});

	it("trims a log below a seq, keeps the newest entry and numbers on from it", async () => {
		const seqs = (entries: LogEntry<unknown>[]) => entries.map(e => e.seq);
		for (let i = 1; i <= 6; i++) await store.append("trimmed", i);
		expect(await store.trimLog("trimmed", 4)).toBe(3);
		expect(seqs(await store.readLog("trimmed"))).toEqual([4, 5, 6]);
		expect(await store.trimLog("trimmed", 100)).toBe(2);
		expect(seqs(await store.readLog("trimmed"))).toEqual([6]);
		expect(await store.trimLog("missing", 10)).toBe(0);
		expect(await store.append("trimmed", 7)).toBe(7);
		expect(await store.appendAt("trimmed", 8, [8])).toBe(true);
		const since = (await store.readLog("trimmed"))[0].at;
		expect(seqs(await store.readLog("trimmed", { since }))).toEqual([6, 7, 8]);
		expect(seqs(await store.readLog("trimmed", { afterSeq: 1, limit: 2 }))).toEqual([6, 7]);
	});

	it("keeps unicode and nested values intact", async () => {
		const value = {
			name: "nœud-Ω 節点 🚀",
			quote: 'say "hi"\n\ttab\\slash',
			nested: { list: [1, 2.5, -3, { deep: [null, true, false] }], empty: {}, none: [] },
			big: Number.MAX_SAFE_INTEGER
		};
		const id = "id/with:odd chars ü🚀";
		await store.put("weird:coll", id, value);
		expect(await store.get("weird:coll", id)).toEqual({ value, version: 1 });
		expect(await store.list("weird:coll")).toEqual([{ id, value, version: 1 }]);
		expect(await store.cas("weird:coll", id, [value, "ß"], 1)).toBe(2);
		expect((await store.get("weird:coll", id))?.value).toEqual([value, "ß"]);
		await store.put("scalars", "s", "just a string");
		await store.put("scalars", "n", 0);
		expect(await store.list("scalars")).toEqual([
			{ id: "n", value: 0, version: 1 },
			{ id: "s", value: "just a string", version: 1 }
		]);
		await store.append("journal ✍", value);
		expect((await store.readLog("journal ✍"))[0].entry).toEqual(value);
	});

	it("answers ping while up and rejects as unavailable once closed", async () => {
		await expect(store.ping()).resolves.toBeUndefined();
		await store.close();
		await expect(store.ping()).rejects.toBeInstanceOf(StoreUnavailableError);
		await expect(store.get("nodes", "n1")).rejects.toBeInstanceOf(StoreUnavailableError);
	});
});

describe("SqliteStore", () => {
	let dir: string;

	beforeAll(() => {
		dir = fs.mkdtempSync(path.join(os.tmpdir(), "isa-sqlite-"));
	});
	afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

	it("keeps documents, versions and logs across close and reopen", async () => {
		const file = path.join(dir, "persist", "store.db");
		const first = new SqliteStore(file);
		await first.put("nodes", "n1", { gpus: 8 });
		await first.cas("nodes", "n1", { gpus: 4 }, 1);
		await first.append("audit", "one");
		await first.append("audit", "two");
		await first.close();

		const second = new SqliteStore(`sqlite://${file}`);
		expect(await second.get("nodes", "n1")).toEqual({ value: { gpus: 4 }, version: 2 });
		expect(await second.put("nodes", "n1", { gpus: 2 })).toBe(3);
		expect(await second.append("audit", "three")).toBe(3);
		expect((await second.readLog<string>("audit")).map(e => e.entry)).toEqual([
			"one",
			"two",
			"three"
		]);
		await second.close();
	});

	it("keeps nothing of a :memory: database after close", async () => {
		const mem = new SqliteStore(":memory:");
		await mem.put("nodes", "n1", 1);
		await mem.close();
		const again = new SqliteStore(":memory:");
		expect(await again.get("nodes", "n1")).toBeNull();
		await again.close();
	});

	it("shares one file between processes without losing an increment", async () => {
		const file = path.join(dir, "shared", "store.db");
		const module = path.resolve(__dirname, "../../services/shared/store/sqlite");
		const rounds = 1000;
		// Both children start their loops at the same moment, however long each took to boot.
		const startAt = Date.now() + 2000;
		// Alternates cas and transact, so both the single-statement and the BEGIN IMMEDIATE paths
		// meet the other process's writes.
		const child = `
			const { SqliteStore } = require(${JSON.stringify(module)});
			(async () => {
				const store = new SqliteStore(${JSON.stringify(file)});
				await new Promise(r => setTimeout(r, ${startAt} - Date.now()));
				for (let i = 0; i < ${rounds}; i++) {
					for (;;) {
						const cur = await store.get("counters", "c");
						const n = (cur ? cur.value.n : 0) + 1;
						const version = cur ? cur.version : 0;
						const ok = i % 2
							? (await store.cas("counters", "c", { n }, version)) !== null
							: await store.transact(
								[{ collection: "counters", id: "c", version }],
								[{ collection: "counters", id: "c", value: { n } }]
							);
						if (ok) break;
					}
					await store.append("audit", i);
				}
				await store.close();
			})().catch(err => { console.error(err); process.exit(1); });`;
		const run = () =>
			new Promise<number | null>((resolve, reject) => {
				const proc = spawn(
					process.execPath,
					["-r", "ts-node/register/transpile-only", "-e", child],
					{ stdio: ["ignore", "inherit", "inherit"] }
				);
				proc.on("error", reject);
				proc.on("exit", resolve);
			});
		expect(await Promise.all([run(), run()])).toEqual([0, 0]);

		const store = new SqliteStore(file);
		expect(await store.get("counters", "c")).toEqual({
			value: { n: 2 * rounds },
			version: 2 * rounds
		});
		const log = await store.readLog("audit", { limit: 2 * rounds });
		expect(log.map(e => e.seq)).toEqual(Array.from({ length: 2 * rounds }, (_, i) => i + 1));
		await store.close();
	});
});

describe("RedisStore", () => {
	let server: TestServer;

	beforeAll(async () => {
		server = await startRedis();
	});
	afterAll(() => server.stop());

	it("keeps stores with different prefixes apart", async () => {
		const a = new RedisStore(server.url, { prefix: "clusterA" });
		const b = new RedisStore(server.url, { prefix: "clusterB" });
		await a.put("nodes", "n1", "a");
		await a.append("audit", "a");
		expect(await b.get("nodes", "n1")).toBeNull();
		expect(await b.readLog("audit")).toEqual([]);
		expect(await b.append("audit", "b")).toBe(1);
		await Promise.all([a.close(), b.close()]);
	});

	it("fails fast while redis-server is down and recovers by itself when it is back", async () => {
		const store = new RedisStore(server.url, { prefix: "outage" });
		try {
			await store.put("nodes", "n1", "before");
			await server.stop();

			const started = Date.now();
			await expect(store.ping()).rejects.toBeInstanceOf(StoreUnavailableError);
			await expect(store.get("nodes", "n1")).rejects.toBeInstanceOf(StoreUnavailableError);
			await expect(store.cas("nodes", "n1", "during", 1)).rejects.toBeInstanceOf(
				StoreUnavailableError
			);
			expect(Date.now() - started).toBeLessThan(10_000);

			server = await startRedis(server.port);
			const deadline = Date.now() + 10_000;
			for (;;) {
				try {
					await store.ping();
					break;
				} catch (err) {
					expect(err).toBeInstanceOf(StoreUnavailableError);
					if (Date.now() > deadline) throw err;
					await sleep(100);
				}
			}
			// The new server kept nothing; the scripts load again on first use.
			expect(await store.get("nodes", "n1")).toBeNull();
			expect(await store.cas("nodes", "n1", "after", 0)).toBe(1);
			expect(await store.append("audit", "after")).toBe(1);
		} finally {
			await store.close();
		}
	});
});
