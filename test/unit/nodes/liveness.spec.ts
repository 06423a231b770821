import {
	GRACE_INTERVALS,
	type Judged,
	Liveness,
	MISSED_REPORTS,
	RECONNECT_WAIT
} from "../../../services/nodes/liveness";
import { Inventory } from "../../../services/nodes/inventory";

const INTERVAL = 1000;
const WINDOW = MISSED_REPORTS * INTERVAL;
const GRACE = GRACE_INTERVALS * INTERVAL + RECONNECT_WAIT;

function node(id: string, lastSeen: number, over: Partial<Judged> = {}): Judged {
	return { id, status: "ready", lastSeen, reportInterval: INTERVAL, ...over };
}

/** Liveness that started long ago (its start-up grace is over). */
const started = (threshold?: number) => new Liveness(-1_000_000, { threshold });

describe("Liveness", () => {
	it("declares one silent node of four down once its window has passed", () => {
		const l = started();
		const nodes = [node("a", 0), node("b", 10_000), node("c", 10_000), node("d", 10_000)];
		expect(l.judge(nodes, WINDOW)).toEqual({ down: [], held: [], reason: null });
		expect(l.judge(nodes, WINDOW + 1)).toEqual({ down: ["a"], held: [], reason: null });
	});

	it("declares one of two down: half is not more than the default 50%", () => {
		const l = started();
		expect(l.judge([node("a", 0), node("b", 10_000)], WINDOW + 1).down).toEqual(["a"]);
	});

	it("holds every silent node while its own transporter is disconnected", () => {
		const l = started();
		l.transport(false, 0);
		const nodes = [node("a", 0), node("b", 0), node("c", 10_000), node("d", 10_000)];
		expect(l.judge(nodes, 12_000)).toEqual({ down: [], held: ["a", "b"], reason: "blind" });
		// Even when every node is silent, and long after.
		expect(l.judge(nodes, 600_000).down).toEqual([]);
	});

	it("counts silence from the reconnect, and declares nobody down within the grace", () => {
		const l = started();
		l.transport(false, 0);
		l.transport(true, 15_000);
		// b reported after the reconnect; a not yet.
		const nodes = [node("a", 0), node("b", 15_500), node("c", 15_500), node("d", 15_500)];
		expect(l.blind(15_000 + GRACE - 1, nodes)).toBe(true);
		expect(l.judge(nodes, 15_000 + WINDOW + 1)).toEqual({
			down: [],
			held: ["a"],
			reason: "blind"
		});
		expect(l.judge(nodes, 15_000 + GRACE - 1).down).toEqual([]);
		// After the grace, a's window counts from the reconnect: it is down now.
		const after = 15_000 + Math.max(GRACE, WINDOW) + 1;
		const fresh = nodes.map(n => (n.id === "a" ? n : { ...n, lastSeen: after - 100 }));
		expect(l.judge(fresh, after).down).toEqual(["a"]);
	});

	it("takes the grace from the slowest live reporter", () => {
		const l = started();
		const slow = [node("a", 0, { reportInterval: 5000 }), node("b", 0)];
		expect(l.grace(slow)).toBe(GRACE_INTERVALS * 5000 + RECONNECT_WAIT);
		expect(l.grace([])).toBe(GRACE_INTERVALS * 2000 + RECONNECT_WAIT);
	});

	it("holds, as a disruption, more than half of the nodes going silent at once", () => {
		const l = started();
		const nodes = [node("a", 0), node("b", 0), node("c", 0), node("d", 10_000)];
		expect(l.judge(nodes, WINDOW + 1)).toEqual({
			down: [],
			held: ["a", "b", "c"],
			reason: "disruption"
		});
		// Both of two: the whole cluster went silent.
		expect(started().judge([node("a", 0), node("b", 0)], WINDOW + 1).reason).toBe("disruption");
	});

	it("counts a node declared down in this window as silent: two deaths a sweep apart", () => {
		const l = started();
		const inv = new Inventory();
		for (const id of ["a", "b", "c"])
			inv.applyReport(
				{
					nodeID: id,
					hostname: id,
					labels: {},
					capacity: { cpu: 1, memory: 1, gpus: [] },
					usage: null as never,
					interval: INTERVAL,
					sentAt: 0
				},
				id === "b" ? 500 : id === "c" ? 60_000 : 0
			);
		// a: 1 of 3 silent, down.
		expect(inv.sweep(WINDOW + 1, l).map(c => c.node.id)).toEqual(["a"]);
		// b, half a window later: a and b of the three that were up: held.
		const { changes, verdict } = inv.judged(WINDOW + 501, l);
		expect(changes).toEqual([]);
		expect(verdict).toEqual({ down: [], held: ["b"], reason: "disruption" });
		// A window after a went down, b alone is one of two: down.
		expect(inv.sweep(2 * WINDOW + 2, l).map(c => c.node.id)).toEqual(["b"]);
	});

	it("follows a configured threshold", () => {
		const nodes = [node("a", 0), node("b", 10_000), node("c", 10_000)];
		expect(started(0.2).judge(nodes, WINDOW + 1).reason).toBe("disruption");
		expect(started(1).judge([node("a", 0)], WINDOW + 1).down).toEqual(["a"]);
	});

	it("has a start-up grace: a node that just started has heard nobody yet", () => {
		const l = new Liveness(0);
		const nodes = [node("a", -100_000), node("b", 0), node("c", 0)];
		expect(l.judge(nodes, 1000).held).toEqual([]);
		expect(l.blind(1000, nodes)).toBe(true);
	});

	describe("stalls of this process", () => {
		// Threshold 1: a lone silent node is never held as a disruption here.
		it("moves every node's deadline by the time this process stood still", () => {
			const l = started(1);
			const nodes = [node("a", 0), node("b", 0), node("c", 0)];
			// Stood still 10 s until 10.5 s: the reports sent meanwhile wait unread.
			l.stalled(10_000, 10_500);
			expect(l.judge(nodes, 10_500)).toEqual({ down: [], held: [], reason: null });
			// Not heard for the window after the stall either: silent again, down.
			expect(l.judge(nodes, 10_000 + WINDOW)).toEqual({ down: [], held: [], reason: null });
			expect(l.judge([node("a", 0)], 10_001 + WINDOW).down).toEqual(["a"]);
		});

		it("counts only the part of a stall after the node was last heard", () => {
			const l = started(1);
			// A stall of 5 s ending at 6 s excuses only the 2 s after a report at 4 s.
			l.stalled(5000, 6000);
			expect(l.stalledSince(4000)).toBe(2000);
			expect(l.stalledSince(0)).toBe(5000);
			expect(l.stalledSince(6000)).toBe(0);
			expect(l.judge([node("a", 4000)], 4000 + WINDOW + 2000).down).toEqual([]);
			expect(l.judge([node("a", 4000)], 4000 + WINDOW + 2001).down).toEqual(["a"]);
		});

		it("still declares down a node that was silent before the stall", () => {
			const l = started(1);
			l.stalled(200, 10_000);
			expect(l.judge([node("a", 0)], 10_000).down).toEqual(["a"]);
		});

		it("keeps a sweep after a stall from declaring nodes down (Inventory)", () => {
			const l = started(1);
			const inv = new Inventory();
			for (const id of ["a", "b"])
				inv.applyReport(
					{
						nodeID: id,
						hostname: id,
						labels: {},
						capacity: { cpu: 1, memory: 1, gpus: [] },
						usage: null as never,
						interval: INTERVAL,
						sentAt: 0
					},
					1000
				);
			// The sweep's timer ran first after 8 s standing still: the lag it measured comes first.
			l.stalled(8000, 9100);
			expect(inv.sweep(9100, l)).toEqual([]);
			expect(inv.sweep(9100 + WINDOW, l).map(c => c.node.id)).toEqual(["a", "b"]);
		});
	});
});
