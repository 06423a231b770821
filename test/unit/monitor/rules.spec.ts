import {
	formatSelector,
	makeRule,
	matches,
	parseSelector,
	RuleInput
} from "../../../services/monitor/alerts";
import { InvalidInputError } from "../../../services/shared/errors";
import { thrown } from "../../helpers/errors";

const failure = (fn: () => unknown) => thrown<InvalidInputError>(fn);

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
			createdBy: "ann"
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
});
