/**
 * The fastest-validator schemas of the scheduler's actions (API.md: /api/v1/workloads), with
 * the types of the params they let through. Values that come as query strings are converted.
 */
import { pageParams, quantity } from "../shared/params";
import { MAX_REPLICAS, RESOURCE_LIMITS } from "../shared/limits";

const resources = {
	type: "object",
	strict: true,
	props: {
		cpu: quantity(),
		memory: quantity(),
		gpu: {
			type: "number",
			integer: true,
			min: 0,
			max: RESOURCE_LIMITS.gpu.max,
			optional: true
		},
		gpuMemory: quantity(true)
	}
};

/** A duration as a client writes it: seconds, or a string such as "3s" (shared/duration.ts). */
const durationRules = [
	{ type: "number", min: 0 },
	{ type: "string", min: 1, max: 32 }
];

const labelMap = {
	type: "record",
	key: { type: "string", max: 128 },
	value: { type: "string", max: 256 }
};

/** scheduler.create: a WorkloadInput (workload.ts). */
export const createParams = {
	$$strict: true,
	name: {
		type: "string",
		min: 1,
		max: 128,
		pattern: /^[a-z0-9]([a-z0-9._-]*[a-z0-9])?$/i
	},
	kind: { type: "enum", values: ["service", "process"] },
	service: {
		type: "object",
		optional: true,
		strict: true,
		props: {
			module: { type: "string", min: 1, max: 256 },
			// The Moleculer service name the module declares (default: see serviceName).
			name: {
				type: "string",
				min: 1,
				max: 128,
				pattern: /^[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*$/,
				optional: true
			}
		}
	},
	process: {
		type: "object",
		optional: true,
		strict: true,
		props: {
			command: { type: "string", min: 1, max: 1024 },
			args: {
				type: "array",
				items: { type: "string", max: 4096 },
				max: 256,
				optional: true
			},
			env: { ...labelMap, optional: true }
		}
	},
	resources,
	replicas: { type: "number", integer: true, min: 0, max: MAX_REPLICAS, optional: true },
	priority: { type: "number", integer: true, min: -1000, max: 1000, optional: true },
	placement: {
		type: "object",
		optional: true,
		strict: true,
		props: {
			strategy: { type: "enum", values: ["binpack", "spread"], optional: true },
			nodeSelector: { ...labelMap, optional: true },
			antiAffinity: { type: "boolean", optional: true }
		}
	},
	// Nomad's `disconnect` block: durations (seconds, or "3s", "5m"), checked by newWorkload.
	disconnect: {
		type: "object",
		optional: true,
		strict: true,
		props: {
			stopAfter: { type: "multi", rules: durationRules, optional: true },
			replaceAfter: { type: "multi", rules: durationRules, optional: true }
		}
	},
	restart: {
		type: "object",
		optional: true,
		strict: true,
		props: {
			policy: {
				type: "enum",
				values: ["always", "on-failure", "never"],
				optional: true
			},
			maxRestarts: {
				type: "number",
				integer: true,
				min: 0,
				max: 1000,
				optional: true
			}
		}
	}
};

export const listParams = {
	$$strict: true,
	tenant: { type: "string", max: 128, optional: true },
	...pageParams(10000)
};

export interface ListParams {
	tenant?: string;
	limit?: number;
	offset?: number;
}

/** scheduler.get and scheduler.remove. */
export const idParams = { $$strict: true, id: { type: "string", min: 1, max: 64 } };

export interface IdParams {
	id: string;
}

export const scaleParams = {
	$$strict: true,
	id: { type: "string", min: 1, max: 64 },
	replicas: { type: "number", integer: true, min: 0, max: MAX_REPLICAS }
};

export interface ScaleParams {
	id: string;
	replicas: number;
}

export const logsParams = {
	$$strict: true,
	id: { type: "string", min: 1, max: 64 },
	replica: { type: "number", integer: true, min: 0, optional: true, convert: true },
	limit: {
		type: "number",
		integer: true,
		min: 1,
		max: 1000,
		optional: true,
		convert: true
	}
};

export interface LogsParams {
	id: string;
	replica?: number;
	limit?: number;
}

/** scheduler.usage (internal). */
export const usageParams = { tenant: { type: "string", min: 1 } };

/** scheduler.placedOn (internal). */
export const placedOnParams = { node: { type: "string", min: 1 } };
