import { ServiceBroker, Strategies } from "moleculer";
import type { ServiceRegistry } from "moleculer";
import {
	CapacityStrategy,
	CapacityTable,
	DEFAULT_CAPACITY_OPTIONS,
	capacityTableOf,
	freeCapacity,
	pickByCapacity
} from "../../../strategies/capacity";
import { EVENTS } from "../../../services/shared/events";
import { eventually } from "../../helpers/cluster";
import type { NodeReport } from "../../../services/shared/types";

const GiB = 1024 ** 3;

/** A report of a node with 8 cores and 32 GiB, `cpu` cores and `memGiB` GiB in use. */
function report(nodeID: string, cpu: number, memGiB = 0): NodeReport {
	return {
		nodeID,
		hostname: `${nodeID}.local`,
		labels: {},
		capacity: { cpu: 8, memory: 32 * GiB, gpus: [] },
		usage: { cpu, cpuPercent: (cpu / 8) * 100, memory: memGiB * GiB, gpus: [], loadAvg: [] },
		interval: 2000,
		sentAt: 0
	};
}

/** A stand-in for the broker Moleculer passes to a strategy: only the createService it calls. */
function fakeBroker() {
	return { createService: jest.fn() } as unknown as ServiceBroker & { createService: jest.Mock };
}

function strategy(opts = {}) {
	return new CapacityStrategy({} as ServiceRegistry, fakeBroker(), opts);
}

/** Endpoints as the strategy sees them: only `node.id` matters. */
function endpoints(...nodeIDs: string[]): any[] {
	return nodeIDs.map(id => ({ id: `${id}:work`, node: { id } }));
}

describe("freeCapacity", () => {
	it("is the scarcer of free CPU and free memory", () => {
		expect(freeCapacity(report("n", 2, 8))).toBeCloseTo(0.75);
		expect(freeCapacity(report("n", 2, 24))).toBeCloseTo(0.25);
	});

	it("stays within 0–1 and counts a resource the node lacks as full", () => {
		expect(freeCapacity(report("n", 16))).toBe(0);
		expect(
			freeCapacity({ ...report("n", 0), capacity: { cpu: 0, memory: GiB, gpus: [] } })
		).toBe(0);
	});
});

describe("CapacityTable", () => {
	it("keeps the latest report per node, fresh for maxAge", () => {
		const table = new CapacityTable();
		table.update(report("n1", 4), 1000);
		table.update(report("n1", 2), 2000);
		expect(table.freeOf("n1", 2000, 10_000)).toBeCloseTo(0.75);
		expect(table.freeOf("n1", 12_000, 10_000)).toBeCloseTo(0.75);
		expect(table.freeOf("n1", 12_001, 10_000)).toBeNull();
		expect(table.freeOf("n2", 2000, 10_000)).toBeNull();
	});

	it("forgets a removed node", () => {
		const table = new CapacityTable();
		table.update(report("n1", 4), 0);
		table.remove("n1");
		expect(table.freeOf("n1", 0, 10_000)).toBeNull();
		expect(table.size).toBe(0);
	});

	it("ignores malformed reports", () => {
		const table = new CapacityTable();
		table.update({ nodeID: "n1" } as NodeReport, 0);
		table.update({ ...report("n2", 1), usage: { cpu: "x" } } as unknown as NodeReport, 0);
		table.update(undefined as unknown as NodeReport, 0);
		expect(table.size).toBe(0);
	});
});

describe("pickByCapacity", () => {
	const opts = DEFAULT_CAPACITY_OPTIONS;

	it("picks the candidate on the node with the most free capacity", () => {
		const table = new CapacityTable();
		table.update(report("busy", 7), 0);
		table.update(report("free", 1), 0);
		table.update(report("mid", 4), 0);
		const list = endpoints("busy", "free", "mid");
		for (let i = 0; i < 20; i++) expect(pickByCapacity(list, table, 0, opts)).toBe(list[1]);
	});

	it("weighs memory too: idle CPU does not make up for full memory", () => {
		const table = new CapacityTable();
		table.update(report("cpu-idle", 0, 30), 0);
		table.update(report("balanced", 4, 16), 0);
		const list = endpoints("cpu-idle", "balanced");
		expect(pickByCapacity(list, table, 0, opts)).toBe(list[1]);
	});

	it("gives up when fewer than two sampled candidates have a fresh report", () => {
		const table = new CapacityTable();
		table.update(report("old", 0), 0);
		table.update(report("fresh", 7), 20_000);
		const list = endpoints("old", "fresh", "silent");
		expect(pickByCapacity(list, table, 20_000, opts)).toBeNull();
		expect(pickByCapacity(endpoints("a", "b"), new CapacityTable(), 0, opts)).toBeNull();
	});

	it("compares only the sample, so the emptiest node does not take every call", () => {
		const table = new CapacityTable();
		const ids = ["n0", "n1", "n2", "n3", "n4"];
		ids.forEach((id, i) => table.update(report(id, i), 0));
		const list = endpoints(...ids);

		// Floyd's sampling of 2 out of 5 asks random(4) then random(5): this draws n3 and n4.
		const draws = [3, 4, 0];
		const pick = pickByCapacity(list, table, 0, { ...opts, sampleCount: 2 }, () =>
			draws.shift()!
		);
		expect(pick).toBe(list[3]);

		const counts = new Map<string, number>();
		for (let i = 0; i < 3000; i++) {
			const id = pickByCapacity(list, table, 0, opts)!.node.id;
			counts.set(id, (counts.get(id) ?? 0) + 1);
		}
		// With 3 of 5 sampled, n0 wins 60% of the time, n1 30%, n2 10%; the two busiest never.
		expect(counts.get("n0")).toBeGreaterThan(1500);
		expect(counts.get("n0")).toBeLessThan(2100);
		expect(counts.get("n2")).toBeGreaterThan(150);
		expect(counts.has("n3")).toBe(false);
		expect(counts.has("n4")).toBe(false);
	});

	it("breaks ties, and near ties within tieMargin, at random", () => {
		const table = new CapacityTable();
		table.update(report("a", 2), 0);
		table.update(report("b", 2.2), 0);
		table.update(report("c", 2), 0);
		const seen = (list: any[], o = opts) => {
			const ids = new Set<string>();
			for (let i = 0; i < 200; i++) ids.add(pickByCapacity(list, table, 0, o)!.node.id);
			return [...ids].sort();
		};
		// a and c are equal, b is 0.025 behind them.
		expect(seen(endpoints("a", "b", "c"))).toEqual(["a", "b", "c"]);
		expect(seen(endpoints("a", "b", "c"), { ...opts, tieMargin: 0 })).toEqual(["a", "c"]);
		expect(seen(endpoints("a", "b"), { ...opts, tieMargin: 0 })).toEqual(["a"]);
	});
});

describe("CapacityStrategy", () => {
	it("has cpu-usage's defaults, and takes options", () => {
		expect(strategy().opts).toEqual({ sampleCount: 3, maxAge: 10_000, tieMargin: 0.05 });
		expect(strategy({ sampleCount: 5, maxAge: 4000 }).opts).toEqual({
			sampleCount: 5,
			maxAge: 4000,
			tieMargin: 0.05
		});
	});

	it("selects the endpoint on the freest node", () => {
		const s = strategy();
		s.table.update(report("busy", 6), Date.now());
		s.table.update(report("free", 1), Date.now());
		const list = endpoints("busy", "free");
		expect(s.select(list)).toBe(list[1]);
		expect(s.select(list)).toBe(list[1]);
		expect(s.select(list)).toBe(list[1]);
	});

	it("goes round-robin while reports are stale or missing", () => {
		const s = strategy({ maxAge: 1000 });
		s.table.update(report("busy", 6), Date.now() - 5000);
		s.table.update(report("free", 1), Date.now() - 5000);
		const list = endpoints("busy", "free", "silent");
		expect([s.select(list), s.select(list), s.select(list), s.select(list)]).toEqual([
			list[0],
			list[1],
			list[2],
			list[0]
		]);
	});

	it("is registered by name", () => {
		const resolve = (Strategies as unknown as { resolve(name: string): unknown }).resolve;
		expect(resolve("Capacity")).toBe(CapacityStrategy);
	});
});

describe("capacityTableOf", () => {
	it("gives all strategies of a broker one table, filled by one service", () => {
		const broker = fakeBroker();
		const a = new CapacityStrategy({} as ServiceRegistry, broker);
		const b = new CapacityStrategy({} as ServiceRegistry, broker);
		expect(a.table).toBe(b.table);
		expect(capacityTableOf(broker)).toBe(a.table);
		expect(broker.createService).toHaveBeenCalledTimes(1);

		const schema = broker.createService.mock.calls[0][0];
		expect(schema.name).toBe("$isa-capacity");
		schema.events[EVENTS.nodeReport]({ params: report("n1", 4) });
		expect(a.table.freeOf("n1", Date.now(), 1000)).toBeCloseTo(0.5);
		schema.events["$node.disconnected"]({ params: { node: { id: "n1" } } });
		expect(a.table.size).toBe(0);
	});
});

describe("CapacityStrategy between brokers", () => {
	/** Each test gets its own namespace and brokers, since one of them stops a worker. */
	let run = 0;
	let caller: ServiceBroker;
	let workers: ServiceBroker[];
	let table: CapacityTable;

	const node = (namespace: string, nodeID: string, strategy?: typeof CapacityStrategy) =>
		new ServiceBroker({
			namespace,
			nodeID,
			transporter: "Fake",
			logger: false,
			...(strategy ? { registry: { strategy } } : {})
		});

	/** Each worker broadcasts its report, as its agent would, until the caller has them. */
	async function reportUsage(cpu: Record<string, number>) {
		const reports = workers.map(w => report(w.nodeID, cpu[w.nodeID]));
		await eventually(
			async () => {
				await Promise.all(
					workers.map((w, i) => w.broadcast(EVENTS.nodeReport, reports[i]))
				);
				return reports.every(
					r => table.freeOf(r.nodeID, Date.now(), 1000) === freeCapacity(r)
				);
			},
			5000,
			"the workers' reports at the caller"
		);
	}

	async function callTally(n: number) {
		const tally: Record<string, number> = {};
		for (let i = 0; i < n; i++) {
			const id: string = await caller.call("work.whoami");
			tally[id] = (tally[id] ?? 0) + 1;
		}
		return tally;
	}

	/** A caller that balances with the capacity strategy, and two workers w1 and w2. */
	beforeEach(async () => {
		const namespace = `capacity-${process.pid}-${++run}`;
		caller = node(namespace, "caller", CapacityStrategy);
		workers = [node(namespace, "w1"), node(namespace, "w2")];
		for (const worker of workers) {
			worker.createService({
				name: "work",
				actions: { whoami: () => worker.nodeID }
			});
		}
		table = capacityTableOf(caller);
		await Promise.all([caller, ...workers].map(b => b.start()));
		// waitForServices is satisfied by one worker; the tests need the caller to know both.
		await eventually(
			async () =>
				caller.registry
					.getServiceList({ onlyAvailable: true })
					.filter(s => s.name === "work").length === workers.length,
			5000,
			"both workers' service at the caller"
		);
	});
	afterEach(() => Promise.all([caller, ...workers].map(b => b.stop())));

	it("sends the calls to the worker whose node is free", async () => {
		await reportUsage({ w1: 7, w2: 1 });
		expect(await callTally(50)).toEqual({ w2: 50 });

		await reportUsage({ w1: 1, w2: 7 });
		expect(await callTally(50)).toEqual({ w1: 50 });
	});

	it("forgets a node that leaves", async () => {
		await reportUsage({ w1: 1, w2: 1 });
		await workers[1].stop();
		await eventually(
			async () => table.freeOf("w2", Date.now(), Infinity) === null,
			5000,
			"w2 to be forgotten"
		);
		expect(table.freeOf("w1", Date.now(), 1000)).not.toBeNull();
		expect(await callTally(5)).toEqual({ w1: 5 });
	});
});
