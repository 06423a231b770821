import { Errors } from "moleculer";
import {
	openStore,
	RedisStore,
	register,
	resolve,
	SqliteStore,
	Store
} from "../../../../services/shared/store";

/** A backend of its own, to see that registered names reach `resolve` and `openStore`. */
class MemStore extends SqliteStore {
	constructor(readonly url: string) {
		super(":memory:");
	}
}

describe("store backends", () => {
	const opened: Store[] = [];
	afterEach(async () => {
		await Promise.all(opened.splice(0).map(s => s.close()));
	});
	const open = (url: string, opts?: { prefix?: string }) => {
		const store = openStore(url, opts);
		opened.push(store);
		return store;
	};

	it("resolves the built-in backends by name, case-insensitively", () => {
		expect(resolve("redis")).toBe(RedisStore);
		expect(resolve("Redis")).toBe(RedisStore);
		expect(resolve("SQLITE")).toBe(SqliteStore);
	});

	it("throws for an unknown backend", () => {
		expect(() => resolve("postgres")).toThrow(Errors.BrokerOptionsError);
		expect(() => resolve("postgres")).toThrow("Invalid store type 'postgres'.");
	});

	it("opens redis:// and rediss:// URLs as RedisStore, with the prefix", () => {
		const store = open("redis://127.0.0.1:1", { prefix: "c1" });
		expect(store).toBeInstanceOf(RedisStore);
		expect((store as RedisStore).prefix).toBe("c1");
		expect(open("REDISS://127.0.0.1:1")).toBeInstanceOf(RedisStore);
		expect((opened[1] as RedisStore).prefix).toBe("isa");
	});

	it("opens paths and :memory: as SqliteStore", () => {
		const mem = open(":memory:");
		expect(mem).toBeInstanceOf(SqliteStore);
		expect(mem.kind).toBe("sqlite");
		expect((open("sqlite://:memory:") as SqliteStore).file).toBe(":memory:");
	});

	it("rejects a URL whose scheme names no backend", () => {
		expect(() => openStore("postgres://db/isa")).toThrow(Errors.BrokerOptionsError);
	});

	it("routes a registered backend by name and by URL scheme, and lets it replace one", () => {
		register("Mem", MemStore);
		expect(resolve("mem")).toBe(MemStore);
		const store = open("mem://anything");
		expect(store).toBeInstanceOf(MemStore);
		expect((store as MemStore).url).toBe("mem://anything");

		register("redis", MemStore);
		expect(open("redis://127.0.0.1:1")).toBeInstanceOf(MemStore);
		register("redis", RedisStore);
		expect(resolve("redis")).toBe(RedisStore);
	});
});
