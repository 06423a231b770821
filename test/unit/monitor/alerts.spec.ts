import {
	AlertEvaluator,
	AlertRule,
	formatSelector,
	makeRule,
	matches,
	parseSelector,
	RuleInput,
	Transition
} from "../../../services/monitor/alerts";
import { InvalidInputError } from "../../../services/shared/errors";
import type { Sample } from "../../../services/monitor/timeseries";
import { thrown } from "../../helpers/errors";

const failure = (fn: () => unknown) => thrown<InvalidInputError>(fn);

function rule(id: string, input: Partial<RuleInput> = {}): AlertRule {
	return makeRule(
		{
			name: `rule ${id}`,
			metric: "node.gpu.temperature",
			op: ">",
			threshold: 85,
			for: "1m",
			severity: "warning",
			...input
		},
		{ id, now: 0, createdBy: "test" }
	);
}

const temp = (node: string, value: number, gpu = "0"): Sample => ({
	metric: "node.gpu.temperature",
	labels: { node, gpu },
	value
});

/** An evaluator on a clock the test moves. */
function setup(keepResolved?: number) {
	let now = 1_000_000;
	const ev = new AlertEvaluator({ clock: () => now, keepResolved });
	return {
		ev,
		at: (t: number) => (now = 1_000_000 + t),
		step: (rules: AlertRule[], samples: Sample[]) =>
			ev.evaluate(rules, samples).map((t: Transition) => `${t.status} ${t.alert.series}`)
	};
}

describe("AlertEvaluator", () => {
	const hot = rule("hot");

	it("goes pending, fires after `for`, and resolves when the condition ends", () => {
		const { ev, at, step } = setup();
		at(0);
		expect(step([hot], [temp("n1", 90)])).toEqual([]);
		expect(ev.list()).toMatchObject([
			{ state: "pending", since: 1_000_000, activeAt: 1_000_000, value: 90 }
		]);
		at(59_999);
		expect(step([hot], [temp("n1", 91)])).toEqual([]);
		at(60_000);
		expect(step([hot], [temp("n1", 92)])).toEqual([
			'firing node.gpu.temperature{gpu="0",node="n1"}'
		]);
		at(70_000);
		expect(step([hot], [temp("n1", 93)])).toEqual([]);
		const [firing] = ev.list();
		expect(firing).toMatchObject({
			ruleId: "hot",
			rule: "rule hot",
			severity: "warning",
			labels: { node: "n1", gpu: "0" },
			op: ">",
			threshold: 85,
			state: "firing",
			since: 1_060_000,
			activeAt: 1_000_000,
			firedAt: 1_060_000,
			value: 93
		});
		at(80_000);
		expect(step([hot], [temp("n1", 80)])).toEqual([
			'resolved node.gpu.temperature{gpu="0",node="n1"}'
		]);
		expect(ev.list()).toEqual([
			{ ...firing, state: "resolved", since: 1_080_000, resolvedAt: 1_080_000 }
		]);
	});

	it("drops a pending alert without a word when the condition ends before `for`", () => {
		const { ev, at, step } = setup();
		at(0);
		step([hot], [temp("n1", 90)]);
		at(30_000);
		expect(step([hot], [temp("n1", 50)])).toEqual([]);
		expect(ev.list()).toEqual([]);
		// A new episode starts its own `for`.
		at(40_000);
		step([hot], [temp("n1", 90)]);
		at(90_000);
		expect(step([hot], [temp("n1", 90)])).toEqual([]);
		at(100_000);
		expect(step([hot], [temp("n1", 90)])).toHaveLength(1);
	});

	it("fires at once with `for` 0, one alert per matching series, labels of the rule added", () => {
		const { ev, step } = setup();
		const now = rule("now", {
			metric: 'node.gpu.temperature{node!="n3"}',
			for: 0,
			severity: "critical",
			labels: { team: "ml" }
		});
		expect(
			step([now], [temp("n1", 90), temp("n1", 95, "1"), temp("n2", 10), temp("n3", 99)])
		).toEqual([
			'firing node.gpu.temperature{gpu="0",node="n1"}',
			'firing node.gpu.temperature{gpu="1",node="n1"}'
		]);
		expect(ev.list()[0].labels).toEqual({ node: "n1", gpu: "0", team: "ml" });
		expect(ev.firingBySeverity()).toEqual({ critical: 2, warning: 0, info: 0 });
	});

	it("compares with every op", () => {
		const cases: [RuleInput["op"], number, boolean][] = [
			[">", 85, false],
			[">=", 85, true],
			["<", 85, false],
			["<=", 85, true],
			["==", 85, true],
			["!=", 85, false]
		];
		for (const [op, threshold, fires] of cases)
			expect(
				setup().step([rule(op, { op, threshold, for: 0 })], [temp("n", 85)])
			).toHaveLength(fires ? 1 : 0);
	});

	it("resolves when the series goes away or the rule is deleted", () => {
		const { ev, step } = setup();
		const instant = rule("i", { for: 0 });
		step([instant], [temp("n1", 90), temp("n2", 90)]);
		expect(step([instant], [temp("n2", 90)])).toEqual([
			'resolved node.gpu.temperature{gpu="0",node="n1"}'
		]);
		const gone = ev.evaluate([], [temp("n2", 90)]);
		expect(gone).toHaveLength(1);
		// The deleted rule still comes with its resolution, so its webhook hears of it.
		expect(gone[0].rule).toBe(instant);
		expect(ev.list().map(a => a.state)).toEqual(["resolved", "resolved"]);
	});

	it("lists firing, then pending, then resolved, newest first; keeps few resolved", () => {
		const { ev, at, step } = setup(2);
		const instant = rule("i", { for: 0 });
		for (let i = 0; i < 3; i++) {
			at(i * 10);
			step([instant], [temp(`old${i}`, 90)]);
			step([instant], []);
		}
		at(100);
		step([hot, instant], [temp("a", 90)]);
		expect(ev.list().map(a => `${a.state} ${a.labels.node}`)).toEqual([
			"firing a",
			"pending a",
			"resolved old2",
			"resolved old1"
		]);
	});

	it("goes on from an export without announcing again", () => {
		const first = setup();
		first.at(0);
		first.step([hot], [temp("n1", 90)]);
		first.at(60_000);
		first.step([hot], [temp("n1", 90)]);
		const snapshot = JSON.parse(JSON.stringify(first.ev.export()));

		const second = setup();
		second.ev.import(snapshot);
		second.at(70_000);
		expect(second.step([hot], [temp("n1", 90)])).toEqual([]);
		expect(second.ev.list()[0]).toMatchObject({ state: "firing", firedAt: 1_060_000 });
		second.at(80_000);
		expect(second.step([hot], [])).toEqual([
			'resolved node.gpu.temperature{gpu="0",node="n1"}'
		]);
	});
});

describe("parseSelector", () => {
	it("reads a bare name", () => {
		expect(parseSelector("cluster.gpu.free")).toEqual({
			metric: "cluster.gpu.free",
			matchers: []
		});
	});

	it("reads matchers with = and !=, spaces, escapes and a trailing comma", () => {
		expect(parseSelector(' node.gpu.temperature { node = "n\\"1" , gpu!="0", } ')).toEqual({
			metric: "node.gpu.temperature",
			matchers: [
				{ label: "node", op: "=", value: 'n"1' },
				{ label: "gpu", op: "!=", value: "0" }
			]
		});
		expect(parseSelector("workloads{}")).toEqual({ metric: "workloads", matchers: [] });
	});

	it.each([
		["", "expected a metric name at position 0, found the end."],
		["9lives", "expected a metric name at position 0, found '9'."],
		['node.cpu.usage{node="n1"', "expected ',' or '}' at position 24, found the end."],
		['node.cpu.usage{node:"n1"}', "expected '=' or '!=' at position 19, found ':'."],
		["node.cpu.usage{node=n1}", "expected a value in double quotes at position 20, found 'n'."],
		['node.cpu.usage{node="n1}', "expected a closing '\"' at position 24, found the end."],
		['node.cpu.usage{node="n1"} > 3', "expected the end at position 26, found '>'."],
		['node.cpu.usage{,node="n1"}', "expected a label name or '}' at position 15, found ','."]
	])("refuses %j with 422 saying where", (text, message) => {
		const err = failure(() => parseSelector(text));
		expect(err).toBeInstanceOf(InvalidInputError);
		expect(err.code).toBe(422);
		expect(err.type).toBe("INVALID_INPUT");
		expect(err.message).toBe(`Invalid metric '${text}': ${message}`);
		expect(err.data).toMatchObject({ field: "metric", metric: text });
	});

	it("refuses an unknown metric, listing the known ones", () => {
		const err = failure(() => parseSelector("node.cpu.usag"));
		expect(err.message).toMatch(/unknown metric 'node.cpu.usag'; known: node.status, /);
		expect(err.data).toEqual({ field: "metric", metric: "node.cpu.usag" });
	});

	it("refuses a label the metric does not have", () => {
		const err = failure(() => parseSelector('node.cpu.usage{gpu="0"}'));
		expect(err.message).toBe(
			`Invalid metric 'node.cpu.usage{gpu="0"}': 'node.cpu.usage' has no label 'gpu' (it has node).`
		);
		expect(err.data).toEqual({
			field: "metric",
			metric: 'node.cpu.usage{gpu="0"}',
			position: 15
		});
	});
});

describe("formatSelector and matches", () => {
	it("formats canonically: labels in order, values escaped", () => {
		expect(formatSelector(parseSelector('node.gpu.temperature{node="a\\\\b",gpu!="1"}'))).toBe(
			'node.gpu.temperature{gpu!="1",node="a\\\\b"}'
		);
	});

	it("matches the name and every matcher; a missing label is the empty string", () => {
		const sel = parseSelector('service.health{name="api",endpoint!="http://b"}');
		expect(matches(sel, "service.health", { name: "api", endpoint: "http://a" })).toBe(true);
		expect(matches(sel, "service.health", { name: "api" })).toBe(true);
		expect(matches(sel, "service.health", { name: "api", endpoint: "http://b" })).toBe(false);
		expect(matches(sel, "resource.health", { name: "api" })).toBe(false);
		expect(matches(parseSelector('service.health{endpoint=""}'), "service.health", {})).toBe(
			true
		);
	});
});

describe("makeRule", () => {
	const input: RuleInput = {
		name: "hot",
		metric: 'node.gpu.temperature{ node="n1" }',
		op: ">",
		threshold: 85,
		for: "1m",
		severity: "warning",
		labels: { team: "ml" },
		notify: { webhook: "http://hooks.local/x" }
	};

	it("keeps the canonical selector, `for` as given and in ms", () => {
		expect(makeRule(input, { id: "r1", now: 5, createdBy: "ann" })).toEqual({
			id: "r1",
			name: "hot",
			metric: 'node.gpu.temperature{node="n1"}',
			op: ">",
			threshold: 85,
			for: "1m",
			forMs: 60_000,
			severity: "warning",
			labels: { team: "ml" },
			notify: { webhook: "http://hooks.local/x" },
			createdAt: 5,
			createdBy: "ann",
			owner: "cluster"
		});
	});

	it("makes a tenant's rule when given its owner, which may not label another tenant", () => {
		const owner = { owner: "tenant" as const, tenant: "acme" };
		const ids = { id: "r1", now: 5, createdBy: "ann", owner };
		expect(makeRule(input, ids)).toMatchObject({ owner: "tenant", tenant: "acme" });
		expect(makeRule({ ...input, labels: { tenant: "acme" } }, ids).tenant).toBe("acme");
		const err = failure(() => makeRule({ ...input, labels: { tenant: "globex" } }, ids));
		expect(err).toBeInstanceOf(InvalidInputError);
		expect(err.data).toEqual({ field: "labels.tenant", value: "globex" });
		// An admin's rule may carry any labels.
		expect(
			makeRule({ ...input, labels: { tenant: "globex" } }, { ...ids, owner: {} })
		).toMatchObject({
			owner: "cluster",
			labels: { tenant: "globex" }
		});
	});

	it("refuses a bad op, metric or for with 422 naming the field", () => {
		const ids = { id: "r1", now: 5, createdBy: "ann" };
		expect(failure(() => makeRule({ ...input, op: "=~" as never }, ids)).data).toEqual({
			field: "op",
			value: "=~"
		});
		expect(failure(() => makeRule({ ...input, metric: "nope" }, ids)).data.field).toBe(
			"metric"
		);
		expect(failure(() => makeRule({ ...input, for: "soon" }, ids)).data.field).toBe("for");
		expect(failure(() => makeRule({ ...input, threshold: NaN }, ids)).data.field).toBe(
			"threshold"
		);
	});

	it("refuses a threshold beyond ±1e15 with the range", () => {
		const ids = { id: "r1", now: 5, createdBy: "ann" };
		for (const threshold of [1e30, -1e16, Infinity]) {
			const err = failure(() => makeRule({ ...input, threshold }, ids));
			expect(err).toMatchObject({
				code: 422,
				data: { field: "threshold", min: -1e15, max: 1e15 }
			});
			expect(err.message).toMatch(/from -1000000000000000 to 1000000000000000/);
		}
		expect(makeRule({ ...input, threshold: -1e15 }, ids).threshold).toBe(-1e15);
	});
});

describe("AlertEvaluator and tenants", () => {
	const replicas = (tenant: string, workload: string, value: number): Sample => ({
		metric: "workload.replicas",
		labels: { workload, name: workload, tenant, state: "pending" },
		value
	});
	const acmeRule = (input: Partial<RuleInput> = {}): AlertRule =>
		makeRule(
			{
				name: "acme pending",
				metric: 'workload.replicas{state="pending"}',
				op: ">",
				threshold: 0,
				for: 0,
				severity: "warning",
				...input
			},
			{
				id: input.name ?? "acme",
				now: 0,
				createdBy: "ann",
				owner: { owner: "tenant", tenant: "acme" }
			}
		);

	it("evaluates a tenant's rule on its own series and the cluster's, never another tenant's", () => {
		const { ev, step } = setup();
		const samples = [replicas("acme", "a1", 1), replicas("globex", "g1", 3), temp("n1", 90)];
		expect(step([acmeRule()], samples)).toEqual([
			'firing workload.replicas{name="a1",state="pending",tenant="acme",workload="a1"}'
		]);
		expect(ev.list()).toEqual([
			expect.objectContaining({ owner: "tenant", tenant: "acme", labels: expect.any(Object) })
		]);
		// Node series are the cluster's: a tenant's rule sees them, labelled with its tenant.
		const hot = acmeRule({ metric: "node.gpu.temperature", threshold: 85 });
		const [t] = ev.evaluate([hot], samples);
		expect(t.alert.labels).toEqual({ node: "n1", gpu: "0", tenant: "acme" });
	});

	it("takes the service's view of a tenant when given one", () => {
		const { ev } = setup();
		const asked: string[] = [];
		const out = ev.evaluate([acmeRule(), acmeRule({ name: "again" })], [], tenant => {
			asked.push(tenant);
			return [replicas(tenant, "mine", 2)];
		});
		expect(out).toHaveLength(2);
		// One view per tenant and round, whatever the number of its rules.
		expect(asked).toEqual(["acme"]);
	});

	it("keeps the series' tenant in a cluster rule's alert, whatever the rule's labels", () => {
		const { ev } = setup();
		const cluster = makeRule(
			{
				name: "any pending",
				metric: "workload.replicas",
				op: ">",
				threshold: 0,
				for: 0,
				severity: "info",
				labels: { tenant: "acme", team: "ops" }
			},
			{ id: "c", now: 0, createdBy: "root" }
		);
		const [t] = ev.evaluate([cluster], [replicas("globex", "g1", 1)]);
		expect(t.alert).toMatchObject({
			owner: "cluster",
			labels: { tenant: "globex", team: "ops" }
		});
		expect(t.alert.tenant).toBeUndefined();
	});
});
