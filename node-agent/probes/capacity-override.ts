/**
 * The `ISA_NODE_CAPACITY` override, for simulation only: it lets tests and benchmarks run many
 * agents on one machine, each pretending to be a node of any shape, GPUs included.
 */
import { InvalidInputError } from "../../services/shared/errors";
import type { Capacity, GpuCapacity, Usage } from "../../services/shared/types";
import { parseCpu, parseSize } from "../../services/shared/units";

const VARIABLE = "ISA_NODE_CAPACITY";
const EXAMPLE =
	`${VARIABLE}='{"cpu": 8, "memory": "32Gi", "gpus": 2}' or ` +
	`${VARIABLE}='{"cpu": "4000m", "memory": "16Gi", ` +
	`"gpus": [{"model": "NVIDIA H100 80GB HBM3", "memory": "80Gi"}]}'`;
const DEFAULT_GPU_MODEL = "Simulated GPU";
const DEFAULT_GPU_MEMORY = 80 * 1024 ** 3;

function invalid(problem: string, field: string, value: unknown): InvalidInputError {
	return new InvalidInputError(`${VARIABLE}: ${problem}. For example: ${EXAMPLE}`, {
		field,
		value
	});
}

function isObject(value: unknown): value is Record<string, unknown> {
	return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Unknown keys are refused, so that a typo ("memroy") is not silently a default. */
function checkKeys(object: Record<string, unknown>, allowed: string[], where: string): void {
	const unknown = Object.keys(object).find(key => !allowed.includes(key));
	if (unknown !== undefined)
		throw invalid(
			`unknown field '${unknown}' in ${where}, expected ${allowed.join(", ")}`,
			unknown,
			object[unknown]
		);
}

/** A positive amount through a shared parser, whose message is kept and given the example. */
function amount(
	parse: (value: number | string, field: string) => number,
	value: unknown,
	field: string,
	what: string
): number {
	if (typeof value !== "number" && typeof value !== "string")
		throw invalid(`${field} must be ${what}, not ${JSON.stringify(value)}`, field, value);
	let parsed: number;
	try {
		parsed = parse(value, field);
	} catch (err) {
		throw invalid((err as Error).message.replace(/\.$/, ""), field, value);
	}
	if (parsed <= 0) throw invalid(`${field} must be more than zero`, field, value);
	return parsed;
}

function parseGpus(value: unknown): GpuCapacity[] {
	const generic = { model: DEFAULT_GPU_MODEL, memory: DEFAULT_GPU_MEMORY };
	let shapes: { model: string; memory: number }[];
	if (typeof value === "number") {
		if (!Number.isInteger(value) || value < 0)
			throw invalid(`gpus must be a whole number of GPUs, not ${value}`, "gpus", value);
		shapes = Array.from({ length: value }, () => generic);
	} else if (Array.isArray(value)) {
		shapes = value.map((gpu, i) => {
			const field = `gpus[${i}]`;
			if (!isObject(gpu))
				throw invalid(
					`${field} must be an object such as {"model": "...", "memory": "80Gi"}`,
					field,
					gpu
				);
			checkKeys(gpu, ["model", "memory"], field);
			if (
				gpu.model !== undefined &&
				(typeof gpu.model !== "string" || gpu.model.trim() === "")
			)
				throw invalid(
					`${field}.model must be a non-empty string`,
					`${field}.model`,
					gpu.model
				);
			return {
				model: gpu.model ?? generic.model,
				memory:
					gpu.memory === undefined
						? generic.memory
						: amount(parseSize, gpu.memory, `${field}.memory`, "a size")
			};
		});
	} else {
		throw invalid("gpus must be a count or a list of GPUs", "gpus", value);
	}
	return shapes.map((shape, index) => ({ index, uuid: `SIM-GPU-${index}`, ...shape }));
}

/** The capacity that `ISA_NODE_CAPACITY` (JSON) declares; InvalidInputError if it is not one. */
export function parseCapacityOverride(json: string): Capacity {
	let value: unknown;
	try {
		value = JSON.parse(json);
	} catch (err) {
		throw invalid(`not valid JSON (${(err as Error).message})`, VARIABLE, json);
	}
	if (!isObject(value)) throw invalid("must be a JSON object", VARIABLE, value);
	checkKeys(value, ["cpu", "memory", "gpus"], "the object");
	if (value.cpu === undefined) throw invalid("cpu is missing", "cpu", undefined);
	if (value.memory === undefined) throw invalid("memory is missing", "memory", undefined);
	return {
		cpu: amount(parseCpu, value.cpu, "cpu", "cores or millicores"),
		memory: amount(parseSize, value.memory, "memory", "a size"),
		gpus: value.gpus === undefined ? [] : parseGpus(value.gpus)
	};
}

/** The usage a simulated node reports: nothing busy, its GPUs idle. */
export function simulatedUsage(capacity: Capacity): Usage {
	return {
		cpu: 0,
		cpuPercent: 0,
		memory: 0,
		gpus: capacity.gpus.map(gpu => ({
			index: gpu.index,
			utilization: 0,
			memoryUsed: 0,
			temperature: null
		})),
		loadAvg: [0, 0, 0]
	};
}
