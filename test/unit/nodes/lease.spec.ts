import fs from "fs";
import os from "os";
import path from "path";
import {
	judgeLease,
	LEASE_INTERVALS,
	LeaseHolder,
	leaseWanted,
	NodeLease,
	NodeLeaseDoc,
	pidAlive
} from "../../../services/nodes/lease";
import { COLLECTIONS } from "../../../services/shared/collections";
import { loadEnv } from "../../../services/shared/env";
import { NodeIdTakenError } from "../../../services/shared/errors";
import { SqliteStore } from "../../../services/shared/store/sqlite";

const INTERVAL = 1000;

function holder(over: Partial<LeaseHolder> = {}): LeaseHolder {
	return {
		holder: "h-a",
		hostname: "host-a",
		pid: 100,
		bootId: "boot-1",
		pidNamespace: "pid:[1]",
		startedAt: 0,
		...over
	};
}

function doc(over: Partial<NodeLeaseDoc> = {}): NodeLeaseDoc {
	return { nodeID: "n1", ...holder(), renewedAt: 0, expiresAt: 5000, ...over };
}

describe("judgeLease", () => {
	const me = holder({ holder: "h-b", pid: 200 });
	const dead = () => false;
	const alive = () => true;

	it("takes a free lease, its own, and an expired one", () => {
		expect(judgeLease(null, me, 0, alive)).toEqual({ take: true, reason: "free" });
		expect(judgeLease(doc({ holder: "h-b" }), me, 0, alive)).toEqual({
			take: true,
			reason: "mine"
		});
		expect(judgeLease(doc({ expiresAt: 5000 }), me, 5000, alive)).toEqual({
			take: true,
			reason: "expired"
		});
	});

	it("takes over at once from a holder on this host whose pid is gone, or is its own", () => {
		expect(judgeLease(doc(), me, 1000, dead)).toEqual({ take: true, reason: "holder-gone" });
		// A container restarted in place runs as the same pid as the holder that died.
		expect(judgeLease(doc({ pid: 200 }), me, 1000, alive)).toEqual({
			take: true,
			reason: "holder-gone"
		});
	});

	it("refuses a live lease, and never reads a pid of another host, boot or pid namespace", () => {
		const held = (d: NodeLeaseDoc) => ({ take: false, held: d });
		expect(judgeLease(doc(), me, 1000, alive)).toEqual(held(doc()));
		for (const other of [
			doc({ hostname: "host-b" }),
			doc({ bootId: "boot-2" }),
			doc({ pidNamespace: "pid:[2]" })
		])
			expect(judgeLease(other, me, 1000, dead)).toEqual(held(other));
	});
});

describe("pidAlive", () => {
	it("sees this process and not a pid that has ended", async () => {
		expect(pidAlive(process.pid)).toBe(true);
		const { spawn } = await import("child_process");
		const child = spawn(process.execPath, ["-e", ""]);
		await new Promise(resolve => child.once("exit", resolve));
		expect(pidAlive(child.pid!)).toBe(false);
	});
});

describe("leaseWanted", () => {
	it("leases where a store is named or used: not an agent alone on the embedded default", () => {
		expect(leaseWanted(loadEnv({}))).toBe(true);
		expect(leaseWanted(loadEnv({ SERVICES: "nodes,gateway" }))).toBe(true);
		expect(leaseWanted(loadEnv({ SERVICES: "agent" }))).toBe(false);
		expect(leaseWanted(loadEnv({ SERVICES: "agent", STORE: "redis://127.0.0.1:1" }))).toBe(
			true
		);
	});
});

describe("NodeLease on a real SQLite store", () => {
	let dir: string;
	let store: SqliteStore;
	let clock: number;
	/** Runs while a newcomer waits: what the established node does meanwhile. */
	let meanwhile: () => Promise<void>;
	let slept: number;

	const lease = (me: LeaseHolder, alive: (pid: number) => boolean = () => true) =>
		new NodeLease(store, "n1", {
			interval: INTERVAL,
			me,
			now: () => clock,
			alive,
			sleep: async ms => {
				slept += ms;
				clock += ms;
				await meanwhile();
			}
		});
	const stored = async () => (await store.get<NodeLeaseDoc>(COLLECTIONS.nodeLeases, "n1"))?.value;

	beforeEach(() => {
		dir = fs.mkdtempSync(path.join(os.tmpdir(), "isa-lease-"));
		store = new SqliteStore(path.join(dir, "isa.db"));
		clock = 10_000;
		slept = 0;
		meanwhile = async () => {};
	});
	afterEach(async () => {
		await store.close();
		fs.rmSync(dir, { recursive: true, force: true });
	});

	it(`takes a free lease for ${LEASE_INTERVALS} report intervals, naming its holder`, async () => {
		const a = lease(holder());
		await a.acquire();
		expect(await stored()).toEqual({
			nodeID: "n1",
			...holder(),
			renewedAt: 10_000,
			expiresAt: 10_000 + LEASE_INTERVALS * INTERVAL
		});
		clock += INTERVAL;
		expect(await a.renew()).toBeNull();
		expect((await stored())?.expiresAt).toBe(11_000 + LEASE_INTERVALS * INTERVAL);
	});

	it("refuses a newcomer as soon as it sees the live holder renew, and leaves the holder's lease alone", async () => {
		const a = lease(holder());
		await a.acquire();
		const before = await stored();
		meanwhile = async () => {
			if (clock - (await stored())!.renewedAt >= INTERVAL) await a.renew();
		};
		const b = lease(holder({ holder: "h-b", hostname: "host-b", pid: 200, startedAt: 9000 }));
		const err = await b.acquire().then(
			() => null,
			(e: unknown) => e
		);
		expect(err).toBeInstanceOf(NodeIdTakenError);
		expect(err).toMatchObject({
			code: 409,
			type: "NODE_ID_TAKEN",
			data: { nodeID: "n1", hostname: "host-a", pid: 100, startedAt: 0 }
		});
		expect((err as Error).message).toMatch(
			/NODEID 'n1' is held by a live node \(hostname host-a, pid 100, since 1970-01-01T00:00:00\.000Z\)/
		);
		// Refused within about one report interval, well before the lease could lapse.
		expect(slept).toBeLessThanOrEqual(INTERVAL + 250);
		const after = await stored();
		expect(after).toMatchObject({ holder: before!.holder, pid: 100, hostname: "host-a" });
		expect(await a.renew()).toBeNull();
	});

	it("takes over a lease whose holder stays silent for its whole lifetime, whatever the clocks say", async () => {
		await lease(holder()).acquire();
		// The newcomer's clock is behind: by its clock the lease is still young.
		clock -= 3000;
		const b = lease(holder({ holder: "h-b", hostname: "host-b", pid: 200 }));
		await b.acquire();
		expect(slept).toBeGreaterThanOrEqual(LEASE_INTERVALS * INTERVAL);
		expect(await stored()).toMatchObject({ holder: "h-b", hostname: "host-b" });
	});

	it("takes an expired lease at once; the old holder, back, learns that it lost it", async () => {
		const a = lease(holder());
		await a.acquire();
		clock += LEASE_INTERVALS * INTERVAL;
		const b = lease(holder({ holder: "h-b", hostname: "host-b", pid: 200 }));
		await b.acquire();
		expect(slept).toBe(0);
		expect(await a.renew()).toMatchObject({ holder: "h-b", hostname: "host-b", pid: 200 });
		expect(await stored()).toMatchObject({ holder: "h-b" });
	});

	it("restarted on the same host after kill -9, takes over at once from its dead pid", async () => {
		await lease(holder()).acquire();
		const restarted = lease(holder({ holder: "h-b", pid: 300 }), pid => pid !== 100);
		await restarted.acquire();
		expect(slept).toBe(0);
		expect(await stored()).toMatchObject({ holder: "h-b", pid: 300 });
	});

	it("gives the lease back on a clean stop, so that a restart anywhere takes it at once", async () => {
		const a = lease(holder());
		await a.acquire();
		const b = lease(holder({ holder: "h-b", hostname: "host-b" }));
		// A release by someone who does not hold it changes nothing.
		await b.release();
		expect(await stored()).toMatchObject({ holder: "h-a" });
		await a.release();
		expect(await stored()).toBeUndefined();
		await b.acquire();
		expect(slept).toBe(0);
		expect(await stored()).toMatchObject({ holder: "h-b" });
	});

	it("takes a free lease when its holder releases it while the newcomer watches", async () => {
		const a = lease(holder());
		await a.acquire();
		meanwhile = () => a.release();
		const b = lease(holder({ holder: "h-b", hostname: "host-b" }));
		await b.acquire();
		expect(slept).toBeLessThan(LEASE_INTERVALS * INTERVAL);
		expect(await stored()).toMatchObject({ holder: "h-b" });
	});

	it("writes its lease again when the store lost it, and after a lapse nobody used", async () => {
		const a = lease(holder());
		await a.acquire();
		await store.delete(COLLECTIONS.nodeLeases, "n1");
		expect(await a.renew()).toBeNull();
		expect(await stored()).toMatchObject({ holder: "h-a" });
		clock += 10 * LEASE_INTERVALS * INTERVAL; // SIGSTOP for a long while, nobody came
		expect(await a.renew()).toBeNull();
		expect(await stored()).toMatchObject({ holder: "h-a", renewedAt: clock });
	});

	it("lets exactly one of two newcomers that race for a free lease have it", async () => {
		const a = lease(holder());
		const b = lease(holder({ holder: "h-b", hostname: "host-b", pid: 200 }));
		// The winner renews while the loser watches.
		meanwhile = async () => {
			const winner = (await stored())?.holder === "h-a" ? a : b;
			await winner.renew();
		};
		const results = await Promise.allSettled([a.acquire(), b.acquire()]);
		expect(results.map(r => r.status).sort()).toEqual(["fulfilled", "rejected"]);
		const rejected = results.find(r => r.status === "rejected") as PromiseRejectedResult;
		expect(rejected.reason).toBeInstanceOf(NodeIdTakenError);
	});

	it("keeps renewing on a timer, and says when a live node took the lease", async () => {
		const real = new NodeLease(store, "n1", { interval: 20, me: holder() });
		await real.acquire();
		const first = (await stored())!.renewedAt;
		const lost = new Promise<NodeLeaseDoc>(resolve => {
			const stop = real.keep(resolve, () => undefined);
			void (async () => {
				await new Promise(r => setTimeout(r, 100));
				expect((await stored())!.renewedAt).toBeGreaterThan(first);
				// Another node takes it (as if this one had been silent past its lifetime).
				const current = await store.get<NodeLeaseDoc>(COLLECTIONS.nodeLeases, "n1");
				await store.cas(
					COLLECTIONS.nodeLeases,
					"n1",
					doc({ holder: "h-b", hostname: "host-b", expiresAt: Date.now() + 60_000 }),
					current!.version
				);
				setTimeout(stop, 1000).unref();
			})();
		});
		expect(await lost).toMatchObject({ holder: "h-b", hostname: "host-b" });
	});
});
