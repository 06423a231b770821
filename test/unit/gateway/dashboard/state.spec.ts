import { AlertEvaluator, makeRule } from "../../../../services/monitor/alerts";
import type { Sample } from "../../../../services/monitor/timeseries";
import {
	addClusterPoint,
	applyReports,
	applyResourceHealth,
	createState,
	gpuReservations,
	mergeNode,
	nodeMatches,
	replaceNodes,
	setAlerts,
	setWorkloads,
	sortedAlerts,
	sortedWorkloads,
	upsertAlert,
	workloadCounts
} from "../../../../services/gateway/dashboard/state";
import type { ResourceView } from "../../../../services/gateway/dashboard/types";
import { node, workload } from "./fixtures";

describe("dashboard state", () => {
	it("keeps a node's usage when the inventory's copy has none yet", () => {
		const before = node("a", { cpu: 4 });
		const restored = node("a", { usage: false, status: "draining" });
		expect(mergeNode(before, restored)).toEqual({ ...restored, usage: before.usage });
		const fresh = node("a", { cpu: 9 });
		expect(mergeNode(before, fresh)).toBe(fresh);
		expect(mergeNode(undefined, restored)).toBe(restored);
	});

	it("replaces the nodes with the list's, a chart sample each", () => {
		const s = createState();
		replaceNodes(s, [node("a"), node("b")], 1000);
		replaceNodes(s, [node("b", { cpu: 16 }), node("c")], 2000);
		expect([...s.nodes.keys()]).toEqual(["b", "c"]);
		expect(s.nodeHistory.get("b")).toEqual({
			t: [1, 2],
			cpu: [25, 50],
			mem: [25, 25],
			gpu: [null, null]
		});
	});

	it("applies a batch of reports to known nodes and tells of unknown ones", () => {
		const s = createState();
		replaceNodes(s, [node("a", { usage: false })], 1000);
		const usage = { cpu: 16, cpuPercent: 50, memory: 0, gpus: [] };
		const { changed, unknown } = applyReports(s, [
			{ nodeID: "a", usage, at: 5000 },
			{ nodeID: "new", usage, at: 5000 }
		]);
		expect([changed, unknown]).toEqual([["a"], true]);
		expect(s.nodes.get("a")!.usage).toEqual({ ...usage, loadAvg: [] });
		expect(s.nodeHistory.get("a")!.cpu).toEqual([0, 50]);
		expect(applyReports(s, [{ nodeID: "a", usage, at: 6000 }]).unknown).toBe(false);
	});

	it("adds a cluster point only while some node is up", () => {
		const s = createState();
		expect(addClusterPoint(s, 1000)).toBe(false);
		replaceNodes(s, [node("a", { status: "down" })], 1000);
		expect(addClusterPoint(s, 1000)).toBe(false);
		replaceNodes(s, [node("a", { cpu: 8, gpus: 2, gpuUtil: 10 })], 2000);
		expect(addClusterPoint(s, 2000)).toBe(true);
		expect(s.cluster).toEqual({ t: [2], cpu: [25], mem: [25], gpu: [10] });
	});

	it("filters nodes by id, hostname, status or key=value label", () => {
		const n = node("gpu-7", { status: "draining" });
		for (const f of ["", "gpu-7", "example", "drain", "zone=a"])
			expect([f, nodeMatches(n, f)]).toEqual([f, true]);
		expect(nodeMatches(n, "zone=b")).toBe(false);
	});

	it("marks the GPUs the placed replicas hold, not those of stopped ones", () => {
		const items = [
			workload("llm", 2, [
				{ node: "a", gpus: [0, 1], state: "running" },
				{ node: "b", gpus: [3], state: "starting" }
			]),
			workload("old", 1, [{ node: "a", gpus: [2], state: "stopped" }]),
			workload("cpu", 3, [{ node: "a", state: "running" }])
		];
		expect(gpuReservations(items)).toEqual(
			new Map([
				[
					"a",
					new Map([
						[0, "llm#0"],
						[1, "llm#0"]
					])
				],
				["b", new Map([[3, "llm#1"]])]
			])
		);
		const s = createState();
		setWorkloads(s, items);
		expect(s.reservations).toEqual(gpuReservations(items));
		expect(sortedWorkloads(s.workloads.values()).map(w => w.name)).toEqual([
			"old",
			"llm",
			"cpu"
		]);
	});

	it("counts workloads by the status the scheduler gives them", () => {
		const items = [
			workload("a", 1, [{ node: "n", state: "running" }]),
			workload("b", 2, [
				{ node: "n", state: "running" },
				{ node: null, state: "pending" }
			]),
			workload("c", 3, [{ node: "n", state: "failed" }])
		];
		expect(items.map(w => w.status)).toEqual(["running", "pending", "failed"]);
		expect(workloadCounts(items)).toEqual({
			running: 1,
			pending: 1,
			degraded: 0,
			failed: 1,
			stopped: 0
		});
	});

	it("orders alerts as the monitor lists them, and an announced one replaces its id", () => {
		let now = 1_000;
		const evaluator = new AlertEvaluator({ clock: () => now });
		const rule = (id: string, metric: string, forTime: number | string) =>
			makeRule(
				{ name: id, metric, op: ">", threshold: 50, for: forTime, severity: "warning" },
				{ id, now, createdBy: "test" }
			);
		const rules = [
			rule("hot", "node.gpu.temperature", 0),
			rule("busy", "node.cpu.usage", "1h")
		];
		const temp = (n: string): Sample => ({
			metric: "node.gpu.temperature",
			labels: { node: n, gpu: "0" },
			value: 90
		});
		const cpu: Sample = { metric: "node.cpu.usage", labels: { node: "n1" }, value: 70 };
		evaluator.evaluate(rules, [temp("n1"), temp("n2"), cpu]);
		now += 1000;
		evaluator.evaluate(rules, [temp("n1"), temp("n2"), temp("n3"), cpu]);
		now += 1000;
		const [resolved] = evaluator
			.evaluate(rules, [temp("n2"), temp("n3"), cpu])
			.map(t => t.alert);
		const listed = evaluator.list();
		expect(listed.map(a => a.state)).toEqual(["firing", "firing", "pending", "resolved"]);
		expect(sortedAlerts([...listed].reverse())).toEqual(listed);
		expect(sortedAlerts(listed, 2)).toEqual(listed.slice(0, 2));

		const s = createState();
		setAlerts(
			s,
			listed.filter(a => a.id !== resolved.id)
		);
		s.alertsAvailable = false;
		upsertAlert(s, resolved);
		expect(s.alertsAvailable).toBe(true);
		expect(sortedAlerts(s.alerts.values())).toEqual(listed);
		upsertAlert(s, { ...resolved, state: "firing", since: now + 1 });
		expect(s.alerts.size).toBe(listed.length);
		expect(sortedAlerts(s.alerts.values())[0].id).toBe(resolved.id);
	});

	it("applies a resource's new health, even one without check times", () => {
		const s = createState();
		s.resources = [
			{
				id: "r1",
				name: "pg",
				health: { status: "healthy", checkedAt: 1, latencyMs: 3 }
			} as ResourceView
		];
		expect(applyResourceHealth(s, "r1", { status: "unknown" })).toBe(true);
		expect(s.resources[0].health).toEqual({
			status: "unknown",
			checkedAt: null,
			latencyMs: null
		});
		expect(applyResourceHealth(s, "r2", { status: "healthy" })).toBe(false);
	});
});
