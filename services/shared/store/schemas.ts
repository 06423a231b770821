/**
 * The schema of each collection whose documents come from clients: the shape a document must
 * have to be written, and to be read back. Not strict, so that a field added later (an owner, an
 * audit stamp) does not make older code refuse newer documents; every document is also bounded
 * in depth. A collection without an entry here is written and read as it is.
 */
import Validator from "fastest-validator";
import { COLLECTIONS } from "../collections";
import { deeperThan } from "../depth";
import { RESOURCE_TYPES } from "../../registry/model";
import { OPS, SEVERITIES } from "../../monitor/alerts";

/** Deeper than any document the API can make (its bodies nest at most 64 levels). */
export const MAX_DOCUMENT_DEPTH = 100;

/** The problems of a document, or an empty list when it is fine. */
export type DocCheck = (value: unknown) => string[];

const str = { type: "string" };
const num = { type: "number" };
const healthCheck = {
	type: "object",
	props: { interval: num, timeout: num, healthyThreshold: num, unhealthyThreshold: num }
};

const SCHEMAS: Record<string, Record<string, unknown>> = {
	[COLLECTIONS.resources]: {
		id: str,
		name: str,
		type: { type: "enum", values: [...RESOURCE_TYPES] },
		endpoint: str,
		config: { type: "object" },
		healthCheck,
		createdAt: num,
		updatedAt: num
	},
	[COLLECTIONS.services]: {
		name: str,
		type: str,
		endpoints: { type: "array", items: str },
		healthCheck,
		resources: { type: "object" },
		dependencies: { type: "array", items: str },
		createdAt: num,
		updatedAt: num
	},
	[COLLECTIONS.tenants]: {
		id: str,
		name: str,
		quota: {
			type: "object",
			props: {
				cpu: { ...num, optional: true },
				memory: { ...num, optional: true },
				gpu: { ...num, optional: true },
				workloads: { ...num, optional: true }
			}
		},
		rateLimits: {
			type: "object",
			optional: true,
			props: { reads: { ...num, optional: true }, writes: { ...num, optional: true } }
		},
		createdAt: num
	},
	[COLLECTIONS.alertRules]: {
		id: str,
		name: str,
		metric: str,
		op: { type: "enum", values: [...OPS] },
		threshold: num,
		forMs: num,
		severity: { type: "enum", values: [...SEVERITIES] },
		labels: { type: "object" },
		createdAt: num
	}
};

/** A check of the schema and the depth bound. */
function compile(schema: Record<string, unknown>): DocCheck {
	const check = new Validator().compile({ $$root: true, type: "object", props: schema });
	return value => {
		if (deeperThan(value, MAX_DOCUMENT_DEPTH))
			return [`nested deeper than ${MAX_DOCUMENT_DEPTH} levels`];
		const result = check(value);
		return result === true ? [] : (result as Array<{ message?: string }>).map(e => e.message!);
	};
}

/** Collection name → its check. */
export const DOC_CHECKS: ReadonlyMap<string, DocCheck> = new Map(
	Object.entries(SCHEMAS).map(([collection, schema]) => [collection, compile(schema)])
);
