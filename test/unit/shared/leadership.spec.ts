/**
 * Leader election over a real (in-memory SQLite) store, with a clock per copy that the test
 * moves: who leads, when a standby takes over, and that a replaced leader's writes are fenced.
 */
import { COLLECTIONS } from "../../../services/shared/collections";
import { thisProcess } from "../../../services/shared/holder";
import { Leadership, LeadershipOptions } from "../../../services/shared/leadership";
import { SqliteStore, Store } from "../../../services/shared/store";

const LEASE = 8000;

interface Copy {
	election: Leadership;
	clock: { now: number };
	events: string[];
}

function copy(store: Store, name: string, opts: Partial<LeadershipOptions> = {}): Copy {
	const clock = { now: 0 };
	const events: string[] = [];
	const election = new Leadership({
		store,
		name: "monitor",
		// Another host by default: its pid cannot be looked up from here.
		me: { ...thisProcess(), hostname: `host-${name}`, nodeID: name },
		leaseMs: LEASE,
		clock: () => clock.now,
		onElected: term => void events.push(`elected ${term}`),
		onDeposed: reason => void events.push(`deposed: ${reason}`),
		...opts
	});
	return { election, clock, events };
}

/** Moves a copy's clock and lets it look once. */
async function look(c: Copy, advance = 0): Promise<void> {
	c.clock.now += advance;
	await c.election.tick();
}

/** A write only the leader of `c`'s term may make. */
function fencedWrite(store: Store, c: Copy, value: unknown): Promise<boolean> {
	return store.transact(
		[c.election.fence()],
		[{ collection: COLLECTIONS.monitor, id: "fenced", value }]
	);
}

describe("Leadership", () => {
	let store: SqliteStore;
	beforeEach(() => {
		store = new SqliteStore(":memory:");
	});
	afterEach(() => store.close());

	it("lets the first copy lead at once and keeps a second one standing by while it renews", async () => {
		const a = copy(store, "a");
		const b = copy(store, "b");
		await look(a);
		expect(a.election.isLeader).toBe(true);
		expect(a.election.term).toBe(1);
		expect(a.events).toEqual(["elected 1"]);
		for (let i = 0; i < 20; i++) {
			await look(a, 2000);
			await look(b, 2000);
		}
		expect(a.election.isLeader).toBe(true);
		expect(b.election.isLeader).toBe(false);
		expect(b.events).toEqual([]);
		expect(await fencedWrite(store, a, 1)).toBe(true);
	});

	it("takes over a lease left unrenewed for one lease of the standby's clock, and fences the old leader", async () => {
		const a = copy(store, "a");
		const b = copy(store, "b");
		await look(a);
		await look(b);
		// a stops renewing (it hangs or died); b watches the lease stay the same.
		await look(b, LEASE - 1);
		expect(b.election.isLeader).toBe(false);
		await look(b, 1);
		expect(b.election.isLeader).toBe(true);
		expect(b.election.term).toBe(2);
		expect(b.events).toEqual(["elected 2"]);
		// a's own clock ran as long: it stopped counting itself leader before b took over.
		a.clock.now += LEASE;
		expect(a.election.isLeader).toBe(false);
		// Its late writes fail in the store, and its next look finds it replaced.
		expect(await fencedWrite(store, a, "stale")).toBe(false);
		expect(await fencedWrite(store, b, "fresh")).toBe(true);
		await look(a);
		expect(a.events).toEqual(["elected 1", "deposed: another copy took over"]);
		expect((await store.get(COLLECTIONS.monitor, "fenced"))?.value).toBe("fresh");
	});

	it("counts a leader's share from the start of its last good renewal", async () => {
		const a = copy(store, "a");
		await look(a);
		a.clock.now += LEASE * 0.8 - 1;
		expect(a.election.isLeader).toBe(true);
		a.clock.now += 1;
		expect(a.election.isLeader).toBe(false);
		// Nobody took over: the next renewal makes it lead again in the same term.
		await look(a);
		expect(a.election.isLeader).toBe(true);
		expect(a.election.term).toBe(1);
	});

	it("takes over at once from a leader that resigned, or whose pid on this host is gone", async () => {
		const a = copy(store, "a");
		const b = copy(store, "b");
		await look(a);
		await look(b);
		await a.election.stop();
		expect(a.events).toEqual(["elected 1", "deposed: resigned"]);
		await look(b, 1);
		expect(b.election.term).toBe(2);

		// A lease held by a pid of this host that is gone (killed): no need to wait a lease.
		await store.put(COLLECTIONS.leaders, "monitor", {
			...thisProcess(),
			pid: 999_999,
			nodeID: "b",
			term: 2,
			renewedAt: 0
		});
		const c = copy(store, "c", { me: { ...thisProcess(), nodeID: "c" }, alive: () => false });
		await look(c);
		expect(c.election.term).toBe(3);
	});

	it("lets only one of two standbys win a race for the same lapsed lease", async () => {
		const a = copy(store, "a");
		const b = copy(store, "b");
		const c = copy(store, "c");
		await look(a);
		await Promise.all([look(b), look(c)]);
		await Promise.all([look(b, LEASE), look(c, LEASE)]);
		const leaders = [b, c].filter(x => x.election.isLeader);
		expect(leaders).toHaveLength(1);
		expect(leaders[0].election.term).toBe(2);
	});

	it("stops leading when the store cannot be reached for its share of the lease", async () => {
		const a = copy(store, "a");
		await look(a);
		const cas = jest.spyOn(store, "cas").mockRejectedValue(new Error("store away"));
		await look(a, 2000);
		expect(a.election.isLeader).toBe(true);
		await look(a, LEASE);
		expect(a.election.isLeader).toBe(false);
		expect(a.events).toEqual(["elected 1", "deposed: its lease could not be renewed"]);
		cas.mockRestore();
		// The lease still names this very process: back in the store, it takes it again at
		// once, in a new term (what it wrote under the old one may have been fenced meanwhile).
		await look(a);
		expect(a.election.term).toBe(2);
	});
});
