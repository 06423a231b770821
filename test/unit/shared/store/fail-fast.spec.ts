import { StoreUnavailableError } from "../../../../services/shared/errors";
import { failFastStore, SIZE_ALLOWANCE } from "../../../../services/shared/store/fail-fast";
import type { Store } from "../../../../services/shared/store";

/** A backend whose answers the test controls: "ok", "silent" (never answers), or an error. */
function fakeStore() {
	const state = { mode: "ok" as "ok" | "silent" | Error, calls: 0 };
	const answer = <T>(value: T) => {
		state.calls++;
		if (state.mode === "silent") return new Promise<T>(() => undefined);
		if (state.mode instanceof Error) return Promise.reject(state.mode);
		return Promise.resolve(value);
	};
	const store = {
		kind: "fake",
		get: () => answer(null),
		versions: () => answer([]),
		listVersions: () => answer(new Map()),
		list: () => answer([]),
		put: () => answer(1),
		cas: () => answer(1),
		delete: () => answer(true),
		transact: () => answer(true),
		append: () => answer(1),
		readLog: () => answer([]),
		appendAt: () => answer(true),
		trimLog: () => answer(0),
		ping: () => answer(undefined),
		close: () => Promise.resolve()
	} as unknown as Store;
	return { store, state };
}

const OPTS = { timeout: 100, probeInterval: 20, threshold: 1 };

describe("failFastStore", () => {
	it("fails a silent call after the timeout, then every call at once, not retryable", async () => {
		const { store, state } = fakeStore();
		const changes: Array<[boolean, string]> = [];
		const s = failFastStore(store, { ...OPTS, onChange: (o, r) => changes.push([o, r]) });
		state.mode = "silent";
		const started = Date.now();
		const first = await s.get("c", "a").catch((e: unknown) => e);
		expect(Date.now() - started).toBeGreaterThanOrEqual(95);
		expect(first).toBeInstanceOf(StoreUnavailableError);
		expect(first).toMatchObject({
			code: 503,
			type: "STORE_UNAVAILABLE",
			retryable: true,
			message: "The store is unavailable: it did not answer within 100ms",
			data: { circuit: "open" }
		});
		const calls = state.calls;
		const t = Date.now();
		await expect(s.put("c", "a", 1)).rejects.toMatchObject({ data: { circuit: "open" } });
		expect(Date.now() - t).toBeLessThan(20);
		expect(state.calls).toBe(calls);
		expect(changes).toEqual([[true, "it did not answer within 100ms"]]);
		await s.close();
	});

	it("fails the calls still waiting when the circuit opens", async () => {
		const { store, state } = fakeStore();
		const s = failFastStore(store, { ...OPTS, timeout: 1000 });
		state.mode = "silent";
		const waiting = s.list("c").catch((e: unknown) => e);
		state.mode = new StoreUnavailableError("Redis at h:1 is not reachable");
		const started = Date.now();
		await expect(s.get("c", "a")).rejects.toMatchObject({
			retryable: true,
			data: { circuit: "open" }
		});
		expect(await waiting).toMatchObject({ data: { circuit: "open" } });
		expect(Date.now() - started).toBeLessThan(500);
		await s.close();
	});

	it("closes again when a probe gets an answer", async () => {
		const { store, state } = fakeStore();
		const changes: boolean[] = [];
		const s = failFastStore(store, { ...OPTS, onChange: o => changes.push(o) });
		state.mode = new StoreUnavailableError("down");
		await expect(s.ping()).rejects.toBeInstanceOf(StoreUnavailableError);
		await new Promise(r => setTimeout(r, 60));
		await expect(s.get("c", "a")).rejects.toMatchObject({ data: { circuit: "open" } });
		state.mode = "ok";
		for (let i = 0; i < 50 && changes.length < 2; i++)
			await new Promise(r => setTimeout(r, 10));
		expect(changes).toEqual([true, false]);
		await expect(s.get("c", "a")).resolves.toBeNull();
		await s.close();
	});

	it("keeps the circuit closed for answers that say no (a refusal, LOADING)", async () => {
		const { store, state } = fakeStore();
		const s = failFastStore(store, OPTS);
		const loading = new StoreUnavailableError("Redis is loading", { reply: "LOADING" });
		state.mode = loading;
		await expect(s.get("c", "a")).rejects.toBe(loading);
		state.mode = new Error("a fault of ours");
		await expect(s.get("c", "a")).rejects.toThrow("a fault of ours");
		state.mode = "ok";
		await expect(s.put("c", "a", 1)).resolves.toBe(1);
		await s.close();
	});

	it("opens only after `threshold` consecutive silent calls", async () => {
		const { store, state } = fakeStore();
		const s = failFastStore(store, { ...OPTS, threshold: 2 });
		state.mode = new StoreUnavailableError("down");
		await expect(s.get("c", "a")).rejects.toMatchObject({ retryable: true });
		await expect(s.get("c", "a")).rejects.toMatchObject({
			retryable: true,
			data: { circuit: "open" }
		});
		await s.close();
	});
});

describe("failFastStore's timeout by size", () => {
	it("gives a transaction SIZE_ALLOWANCE ms more per check and write", async () => {
		const { store } = fakeStore();
		let release: (v: boolean) => void = () => undefined;
		store.transact = () => new Promise<boolean>(r => (release = r));
		const s = failFastStore(store, { ...OPTS, timeout: 50 });
		const writes = Array.from({ length: 1000 / SIZE_ALLOWANCE }, (_, i) => ({
			collection: "c",
			id: String(i),
			value: 1
		}));
		const done = s.transact([], writes);
		// Past the plain timeout, within its allowance of 1 s more.
		await new Promise(r => setTimeout(r, 200));
		release(true);
		await expect(done).resolves.toBe(true);
		await s.close();
	});
});
