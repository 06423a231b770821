/**
 * The record of announced alerts: the pure difference (`noticesFor`) and the leader's fenced
 * ledger over a real (in-memory SQLite) store, handed from one leader to the next.
 */
import { Alert, AlertRule, makeRule } from "../../../services/monitor/alerts";
import { LedgerDoc, Notice, NoticeLedger, noticesFor } from "../../../services/monitor/notices";
import { COLLECTIONS } from "../../../services/shared/collections";
import { SqliteStore, VersionCheck } from "../../../services/shared/store";

const rule = (id: string, webhook?: string): AlertRule =>
	makeRule(
		{
			name: `rule ${id}`,
			metric: "node.status",
			op: "==",
			threshold: 0,
			for: 0,
			severity: "critical",
			...(webhook ? { notify: { webhook } } : {})
		},
		{ id, now: 0, createdBy: "test" }
	);

function alert(id: string, r: AlertRule, node: string): Alert {
	return {
		owner: "cluster",
		id,
		ruleId: r.id,
		rule: r.name,
		severity: r.severity,
		series: `node.status{node="${node}"}`,
		labels: { node },
		op: r.op,
		threshold: r.threshold,
		state: "firing",
		since: 10,
		activeAt: 10,
		firedAt: 10,
		value: 0
	};
}

const HOOK = "http://127.0.0.1:9/hook";
const withHook = rule("r1", HOOK);
const silent = rule("r2");

/** Firing alerts as the evaluator gives them, by key. */
function firing(...alerts: [string, Alert, AlertRule][]) {
	return new Map(alerts.map(([key, a, r]) => [key, { alert: a, rule: r }]));
}

const summary = (ns: Notice[]) => ns.map(n => `${n.seq} ${n.id}`);

describe("noticesFor", () => {
	const empty: LedgerDoc = { seq: 0, firing: {}, outbox: [] };

	it("announces what began firing, once; only webhook notices go to the outbox", () => {
		const now = firing(
			["k1", alert("a1", withHook, "n1"), withHook],
			["k2", alert("a2", silent, "n2"), silent]
		);
		const first = noticesFor(empty, now, 100);
		expect(summary(first.notices)).toEqual(["1 a1.firing", "2 a2.firing"]);
		expect(first.next.outbox.map(n => n.id)).toEqual(["a1.firing"]);
		expect(Object.keys(first.next.firing)).toEqual(["k1", "k2"]);
		// The same alerts next round: nothing new.
		const again = noticesFor(first.next, now, 200);
		expect(again.notices).toEqual([]);
		expect(again.next.seq).toBe(2);
	});

	it("resolves an announced alert no longer firing with the id it was announced with", () => {
		const start = noticesFor(empty, firing(["k1", alert("a1", withHook, "n1"), withHook]), 100);
		// Another copy's evaluator knows the same alert under another id: the record decides.
		const later = noticesFor(start.next, firing(), 500);
		expect(summary(later.notices)).toEqual(["2 a1.resolved"]);
		expect(later.notices[0].alert).toMatchObject({
			id: "a1",
			state: "resolved",
			resolvedAt: 500,
			since: 500
		});
		expect(later.notices[0].rule).toEqual({ id: "r1", name: "rule r1", webhook: HOOK });
		expect(later.next.firing).toEqual({});
		expect(later.next.outbox.map(n => n.id)).toEqual(["a1.firing", "a1.resolved"]);
	});
});

describe("NoticeLedger", () => {
	let store: SqliteStore;
	/** The term document's version each ledger's leader holds. */
	const fenceAt = (version: number) => (): VersionCheck => ({
		collection: COLLECTIONS.leaders,
		id: "monitor.term",
		version
	});
	beforeEach(async () => {
		store = new SqliteStore(":memory:");
		await store.put(COLLECTIONS.leaders, "monitor.term", { term: 1 });
	});
	afterEach(() => store.close());

	const ledger = (version: number, dropped: string[] = []) =>
		new NoticeLedger({
			store,
			fence: fenceAt(version),
			maxOutbox: 3,
			onDropped: n => dropped.push(n.id)
		});

	it("hands what was announced and not delivered to the next leader", async () => {
		const one = ledger(1);
		expect(await one.load()).toEqual([]);
		const a1 = firing(["k1", alert("a1", withHook, "n1"), withHook]);
		expect(summary(await one.sync(a1, 100))).toEqual(["1 a1.firing"]);
		expect(await one.sync(a1, 200)).toEqual([]);

		// The leader dies before the webhook got through; the next one takes over (term 2).
		await store.put(COLLECTIONS.leaders, "monitor.term", { term: 2 });
		const two = ledger(2);
		expect((await two.load()).map(n => n.id)).toEqual(["a1.firing"]);
		// The alert resolved while nobody led: announced once, by the new leader.
		expect(summary(await two.sync(firing(), 300))).toEqual(["2 a1.resolved"]);
		// The old leader's writes are fenced out: nothing announced, nothing written.
		expect(await one.sync(firing(["k9", alert("a9", withHook, "n9"), withHook]), 400)).toEqual(
			[]
		);
		const doc = await store.get<LedgerDoc>(COLLECTIONS.alertNotices, "ledger");
		expect(doc?.value.outbox.map(n => n.id)).toEqual(["a1.firing", "a1.resolved"]);
	});

	it("takes settled notices off the outbox with its next write", async () => {
		const one = ledger(1);
		await one.load();
		const a1 = firing(["k1", alert("a1", withHook, "n1"), withHook]);
		await one.sync(a1, 100);
		one.settle("a1.firing");
		expect(await one.sync(a1, 200)).toEqual([]);
		const doc = await store.get<LedgerDoc>(COLLECTIONS.alertNotices, "ledger");
		expect(doc?.value.outbox).toEqual([]);
		expect(Object.keys(doc?.value.firing ?? {})).toEqual(["k1"]);
	});

	it("keeps at most maxOutbox notices, dropping the oldest", async () => {
		const dropped: string[] = [];
		const one = ledger(1, dropped);
		await one.load();
		const alerts: [string, Alert, AlertRule][] = [];
		for (const n of ["a", "b", "c", "d", "e"]) {
			alerts.push([`k-${n}`, alert(n, withHook, n), withHook]);
			await one.sync(firing(...alerts), 100);
		}
		expect(dropped).toEqual(["a.firing", "b.firing"]);
		const doc = await store.get<LedgerDoc>(COLLECTIONS.alertNotices, "ledger");
		expect(doc?.value.outbox.map(n => n.id)).toEqual(["c.firing", "d.firing", "e.firing"]);
	});

	it("announces nothing before it loaded the record", async () => {
		const one = ledger(1);
		expect(one.loaded).toBe(false);
		expect(await one.sync(firing(["k1", alert("a1", withHook, "n1"), withHook]), 100)).toEqual(
			[]
		);
		expect(await store.get(COLLECTIONS.alertNotices, "ledger")).toBeNull();
	});
});
