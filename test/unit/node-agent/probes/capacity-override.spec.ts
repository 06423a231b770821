import { InvalidInputError } from "../../../../services/shared/errors";
import {
	parseCapacityOverride,
	simulatedUsage
} from "../../../../node-agent/probes/capacity-override";

const GI = 1024 ** 3;

describe("parseCapacityOverride", () => {
	it("makes up generic GPUs from a count", () => {
		expect(parseCapacityOverride('{"cpu": 8, "memory": "32Gi", "gpus": 2}')).toEqual({
			cpu: 8,
			memory: 32 * GI,
			gpus: [
				{ index: 0, uuid: "SIM-GPU-0", model: "Simulated GPU", memory: 80 * GI },
				{ index: 1, uuid: "SIM-GPU-1", model: "Simulated GPU", memory: 80 * GI }
			]
		});
	});

	it("takes millicores, bytes and a list of GPUs", () => {
		expect(
			parseCapacityOverride(
				'{"cpu":"4000m","memory":17179869184,"gpus":[{"model":"NVIDIA H100 80GB HBM3","memory":"80Gi"}]}'
			)
		).toEqual({
			cpu: 4,
			memory: 16 * GI,
			gpus: [{ index: 0, uuid: "SIM-GPU-0", model: "NVIDIA H100 80GB HBM3", memory: 80 * GI }]
		});
	});

	it("fills in what a listed GPU leaves out", () => {
		const { gpus } = parseCapacityOverride(
			'{"cpu": 2, "memory": "4Gi", "gpus": [{}, {"memory": "24Gi"}, {"model": "NVIDIA L4"}]}'
		);
		expect(gpus).toEqual([
			{ index: 0, uuid: "SIM-GPU-0", model: "Simulated GPU", memory: 80 * GI },
			{ index: 1, uuid: "SIM-GPU-1", model: "Simulated GPU", memory: 24 * GI },
			{ index: 2, uuid: "SIM-GPU-2", model: "NVIDIA L4", memory: 80 * GI }
		]);
	});

	it("has no GPU when gpus is left out or zero", () => {
		expect(parseCapacityOverride('{"cpu": 0.5, "memory": "512Mi"}')).toEqual({
			cpu: 0.5,
			memory: 512 * 1024 ** 2,
			gpus: []
		});
		expect(parseCapacityOverride('{"cpu": 1, "memory": "1Gi", "gpus": 0}').gpus).toEqual([]);
		expect(parseCapacityOverride('{"cpu": 1, "memory": "1Gi", "gpus": []}').gpus).toEqual([]);
	});

	it.each([
		["not JSON", "{cpu: 8}", /not valid JSON/],
		["empty", "", /not valid JSON/],
		["an array", "[8]", /must be a JSON object/],
		["null", "null", /must be a JSON object/],
		["without cpu", '{"memory": "1Gi"}', /cpu is missing/],
		["without memory", '{"cpu": 1}', /memory is missing/],
		["a misspelt field", '{"cpu": 1, "memroy": "1Gi"}', /unknown field 'memroy'/],
		["cpu as words", '{"cpu": "lots", "memory": "1Gi"}', /cpu 'lots' is not a CPU amount/],
		[
			"cpu as a boolean",
			'{"cpu": true, "memory": "1Gi"}',
			/cpu must be cores or millicores, not true/
		],
		["zero cpu", '{"cpu": 0, "memory": "1Gi"}', /cpu must be more than zero/],
		["negative memory", '{"cpu": 1, "memory": -1}', /memory must be a non-negative number/],
		["an unknown unit", '{"cpu": 1, "memory": "12Zb"}', /memory '12Zb' is not a size/],
		[
			"a fraction of a GPU",
			'{"cpu": 1, "memory": "1Gi", "gpus": 1.5}',
			/gpus must be a whole number/
		],
		[
			"a negative GPU count",
			'{"cpu": 1, "memory": "1Gi", "gpus": -1}',
			/gpus must be a whole number/
		],
		[
			"gpus as a string",
			'{"cpu": 1, "memory": "1Gi", "gpus": "2"}',
			/gpus must be a count or a list/
		],
		[
			"a GPU that is not an object",
			'{"cpu": 1, "memory": "1Gi", "gpus": [3]}',
			/gpus\[0\] must be an object/
		],
		[
			"an empty model",
			'{"cpu": 1, "memory": "1Gi", "gpus": [{"model": ""}]}',
			/gpus\[0\]\.model must be a non-empty string/
		],
		[
			"a bad GPU memory",
			'{"cpu": 1, "memory": "1Gi", "gpus": [{}, {"memory": "lots"}]}',
			/gpus\[1\]\.memory 'lots' is not a size/
		],
		[
			"an unknown GPU field",
			'{"cpu": 1, "memory": "1Gi", "gpus": [{"vram": "80Gi"}]}',
			/unknown field 'vram' in gpus\[0\]/
		]
	])("refuses %s, showing a correct example", (_what, json, problem) => {
		let error: unknown;
		try {
			parseCapacityOverride(json);
		} catch (err) {
			error = err;
		}
		expect(error).toBeInstanceOf(InvalidInputError);
		const message = (error as Error).message;
		expect(message).toMatch(/^ISA_NODE_CAPACITY: /);
		expect(message).toMatch(problem);
		expect(message).toContain(
			`For example: ISA_NODE_CAPACITY='{"cpu": 8, "memory": "32Gi", "gpus": 2}'`
		);
	});

	it("gives examples that it accepts", () => {
		let message = "";
		try {
			parseCapacityOverride("{}");
		} catch (err) {
			message = (err as Error).message;
		}
		const examples = [...message.matchAll(/ISA_NODE_CAPACITY='([^']+)'/g)].map(m => m[1]);
		expect(examples).toHaveLength(2);
		for (const example of examples) expect(() => parseCapacityOverride(example)).not.toThrow();
	});
});

describe("simulatedUsage", () => {
	it("reports nothing busy and each GPU idle", () => {
		const capacity = parseCapacityOverride('{"cpu": 8, "memory": "32Gi", "gpus": 2}');
		expect(simulatedUsage(capacity)).toEqual({
			cpu: 0,
			cpuPercent: 0,
			memory: 0,
			gpus: [
				{ index: 0, utilization: 0, memoryUsed: 0, temperature: null },
				{ index: 1, utilization: 0, memoryUsed: 0, temperature: null }
			],
			loadAvg: [0, 0, 0]
		});
	});
});
