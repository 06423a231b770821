/**
 * Registered resources and external services as plain data: normalization of API input (sizes,
 * durations, defaults) and the shapes kept in the store. Pure.
 */
import { InvalidInputError } from "../shared/errors";
import { parseCpu, parseSize } from "../shared/units";
import { quantity } from "../shared/params";
import { parseDuration } from "../shared/duration";
import { HEALTH_CHECK_LIMITS, RESOURCE_LIMITS } from "../shared/limits";
import type { Owned } from "../shared/principal";

export const RESOURCE_TYPES = [
	"postgres",
	"neo4j",
	"vector_db",
	"object_store",
	"duckdb",
	"filesystem",
	"redis",
	"nats",
	"http",
	"tcp"
] as const;
export type ResourceType = (typeof RESOURCE_TYPES)[number];

export interface HealthCheckSpec {
	/** ms between two checks. */
	interval: number;
	/** ms before a check counts as failed. */
	timeout: number;
	/** Consecutive successes that make a target healthy (rise). */
	healthyThreshold: number;
	/** Consecutive failures that make it unhealthy (fall). */
	unhealthyThreshold: number;
	/** HTTP path of a service's health endpoint. */
	path?: string;
}

/** A resource; `owner`/`tenant` say whose (none: the cluster's, as before owners existed). */
export interface Resource extends Owned {
	id: string;
	name: string;
	type: ResourceType;
	endpoint: string;
	config: Record<string, unknown>;
	healthCheck: HealthCheckSpec;
	createdAt: number;
	updatedAt: number;
}

/** An external service; owned like a resource. */
export interface ExternalService extends Owned {
	name: string;
	type: string;
	endpoints: string[];
	healthCheck: HealthCheckSpec;
	/** What the service needs to run (for people and the scheduler): cpu cores, bytes. */
	resources: { cpu?: number; memory?: number; gpu?: number; storage?: number };
	dependencies: string[];
	createdAt: number;
	updatedAt: number;
}

export interface HealthCheckInput {
	interval?: number | string;
	timeout?: number | string;
	healthyThreshold?: number;
	unhealthyThreshold?: number;
	path?: string;
}

export interface ResourceInput {
	name: string;
	type: ResourceType;
	endpoint: string;
	config?: Record<string, unknown>;
	healthCheck?: HealthCheckInput;
}

export interface ServiceInput {
	name: string;
	type: string;
	endpoints: string[];
	healthCheck?: HealthCheckInput;
	resources?: {
		cpu?: number | string;
		memory?: number | string;
		gpu?: number;
		storage?: number | string;
	};
	dependencies?: string[];
}

export function normalizeHealthCheck(
	input: HealthCheckInput = {},
	field = "healthCheck"
): HealthCheckSpec {
	// Checks more often than every 500 ms would load the targets more than they tell.
	const interval = parseDuration(input.interval ?? "10s", {
		field: `${field}.interval`,
		...HEALTH_CHECK_LIMITS.interval
	});
	const timeout = parseDuration(input.timeout ?? "2s", {
		field: `${field}.timeout`,
		...HEALTH_CHECK_LIMITS.timeout
	});
	if (timeout > interval)
		throw new InvalidInputError(`${field}.timeout must not be longer than the interval.`, {
			field: `${field}.timeout`
		});
	return {
		interval,
		timeout,
		healthyThreshold: input.healthyThreshold ?? 1,
		unhealthyThreshold: input.unhealthyThreshold ?? 2,
		...(input.path ? { path: input.path } : {})
	};
}

function checkUrl(url: string, field: string, schemes?: string[]): void {
	let parsed: URL;
	try {
		parsed = new URL(url);
	} catch {
		throw new InvalidInputError(`${field} '${url}' is not a URL.`, { field });
	}
	if (schemes && !schemes.includes(parsed.protocol.replace(/:$/, "")))
		throw new InvalidInputError(`${field} must use ${schemes.join(" or ")}.`, { field });
}

/** Endpoints each type accepts: a URL of its scheme, or a path for file-backed ones. */
export function checkEndpoint(type: ResourceType, endpoint: string): void {
	const schemes: Partial<Record<ResourceType, string[]>> = {
		postgres: ["postgres", "postgresql"],
		neo4j: ["bolt", "neo4j", "bolt+s", "neo4j+s"],
		vector_db: ["http", "https"],
		object_store: ["http", "https"],
		redis: ["redis", "rediss"],
		nats: ["nats", "tls"],
		http: ["http", "https"]
	};
	if (schemes[type]) return checkUrl(endpoint, "endpoint", schemes[type]);
	if (type === "tcp" && !/^(tcp:\/\/)?[^\s:/]+:\d{1,5}$/.test(endpoint))
		throw new InvalidInputError("endpoint of a tcp resource must be host:port.", {
			field: "endpoint"
		});
	if ((type === "duckdb" || type === "filesystem") && !endpoint.trim())
		throw new InvalidInputError(`endpoint of a ${type} resource must be a path.`, {
			field: "endpoint"
		});
}

export function normalizeResource(
	input: ResourceInput,
	id: string,
	now: number,
	createdAt = now
): Resource {
	checkEndpoint(input.type, input.endpoint);
	return {
		id,
		name: input.name,
		type: input.type,
		endpoint: input.endpoint,
		config: input.config ?? {},
		healthCheck: normalizeHealthCheck(input.healthCheck),
		createdAt,
		updatedAt: now
	};
}

export function normalizeService(
	input: ServiceInput,
	now: number,
	createdAt = now
): ExternalService {
	input.endpoints.forEach((url, i) => checkUrl(url, `endpoints[${i}]`, ["http", "https"]));
	const r = input.resources ?? {};
	const resources: ExternalService["resources"] = {};
	// What a service needs is informational: 0 is allowed, but not past the limits.
	const { cpu, memory, storage } = RESOURCE_LIMITS;
	if (r.cpu != null)
		resources.cpu = parseCpu(r.cpu, "resources.cpu", { ...cpu, positive: false });
	if (r.memory != null)
		resources.memory = parseSize(r.memory, "resources.memory", { ...memory, positive: false });
	if (r.gpu != null) resources.gpu = r.gpu;
	if (r.storage != null) resources.storage = parseSize(r.storage, "resources.storage", storage);
	if ((input.dependencies ?? []).includes(input.name))
		throw new InvalidInputError(`Service '${input.name}' cannot depend on itself.`, {
			field: "dependencies"
		});
	return {
		name: input.name,
		type: input.type,
		endpoints: input.endpoints,
		healthCheck: normalizeHealthCheck({ path: "/health", ...input.healthCheck }),
		resources,
		dependencies: [...new Set(input.dependencies ?? [])],
		createdAt,
		updatedAt: now
	};
}

/** fastest-validator schemas of the API input, shared by the actions and `apply`. */
export const healthCheckSchema = {
	type: "object",
	optional: true,
	strict: true,
	props: {
		interval: [
			{ type: "number", positive: true },
			{ type: "string", max: 16 }
		],
		timeout: [
			{ type: "number", positive: true },
			{ type: "string", max: 16 }
		],
		healthyThreshold: { type: "number", integer: true, min: 1, max: 100, optional: true },
		unhealthyThreshold: { type: "number", integer: true, min: 1, max: 100, optional: true },
		path: { type: "string", max: 1024, pattern: /^\//, optional: true }
	}
};
// fastest-validator: a multi-rule field is optional only when each rule says so.
for (const key of ["interval", "timeout"] as const)
	(healthCheckSchema.props[key] as Array<Record<string, unknown>>).forEach(
		r => (r.optional = true)
	);

export const nameRule = {
	type: "string",
	min: 1,
	max: 128,
	pattern: /^[A-Za-z0-9][A-Za-z0-9._-]*$/
};

export const resourceParams = {
	name: nameRule,
	type: { type: "enum", values: RESOURCE_TYPES },
	endpoint: { type: "string", min: 1, max: 2048 },
	config: { type: "object", optional: true },
	healthCheck: healthCheckSchema
};

export const serviceParams = {
	name: nameRule,
	type: { type: "string", min: 1, max: 64 },
	endpoints: { type: "array", items: { type: "string", max: 2048 }, max: 64 },
	healthCheck: healthCheckSchema,
	resources: {
		type: "object",
		optional: true,
		strict: true,
		props: {
			cpu: quantity(true),
			memory: quantity(true),
			gpu: {
				type: "number",
				integer: true,
				min: 0,
				max: RESOURCE_LIMITS.gpu.max,
				optional: true
			},
			storage: quantity(true)
		}
	},
	dependencies: { type: "array", items: nameRule, max: 64, optional: true }
};
