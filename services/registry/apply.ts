/**
 * Declarative registration: a document with `services:` and `resources:` maps (YAML or JSON, the
 * shape of configs/isa-platform.yaml) becomes a plan of what to create, update or leave as it
 * is. Applying the same document twice changes nothing the second time. Pure.
 */
import Validator from "fastest-validator";
import { parse as parseYaml } from "yaml";
import { InvalidInputError } from "../shared/errors";
import {
	ExternalService,
	normalizeResource,
	normalizeService,
	Resource,
	ResourceInput,
	resourceParams,
	ServiceInput,
	serviceParams
} from "./model";

export interface ApplyDocument {
	services: ServiceInput[];
	resources: ResourceInput[];
}

export interface PlanStep<T> {
	input: T;
	change: "created" | "updated" | "unchanged";
	/** The existing resource's id, for updates. */
	id?: string;
}

/** What applying a document does: a step per resource and per service it names. */
export interface ApplyPlan {
	services: PlanStep<ServiceInput>[];
	resources: PlanStep<ResourceInput>[];
}

/** What `apply` answers: the names (`resource/x`, `service/y`) by change. */
export interface ApplyReport {
	created: string[];
	updated: string[];
	unchanged: string[];
	dryRun: boolean;
	changed: boolean;
}

const validator = new Validator();
const checkResource = validator.compile({ $$strict: true, ...resourceParams });
const checkService = validator.compile({ $$strict: true, ...serviceParams });

function entries(section: unknown, what: string): Array<[string, Record<string, unknown>]> {
	if (section == null) return [];
	if (typeof section !== "object" || Array.isArray(section))
		throw new InvalidInputError(`'${what}' must be a map of names to definitions.`, {
			field: what
		});
	return Object.entries(section as Record<string, unknown>).map(([name, def]) => {
		if (!def || typeof def !== "object" || Array.isArray(def))
			throw new InvalidInputError(`${what}.${name} must be a map.`, {
				field: `${what}.${name}`
			});
		return [name, def as Record<string, unknown>];
	});
}

function validated<T>(
	check: ReturnType<Validator["compile"]>,
	value: Record<string, unknown>,
	where: string
): T {
	const result = check(value);
	if (result !== true) {
		const errors = result as Array<{ field?: string; message?: string }>;
		throw new InvalidInputError(`${where}: ${errors.map(e => e.message).join("; ")}`, {
			field: where,
			errors
		});
	}
	return value as T;
}

/** The document's services and resources, each checked like the API checks them. */
export function parseApplyDocument(
	source: string | { services?: unknown; resources?: unknown }
): ApplyDocument {
	let doc: unknown = source;
	if (typeof source === "string") {
		try {
			doc = parseYaml(source);
		} catch (err) {
			throw new InvalidInputError(
				`The document is not valid YAML or JSON: ${(err as Error).message}`,
				{}
			);
		}
	}
	if (!doc || typeof doc !== "object" || Array.isArray(doc))
		throw new InvalidInputError(
			"The document must be a map with 'services' and/or 'resources'.",
			{}
		);
	const unknown = Object.keys(doc).filter(k => k !== "services" && k !== "resources");
	if (unknown.length)
		throw new InvalidInputError(
			`Unknown top-level key(s): ${unknown.join(", ")}; only services and resources.`,
			{ unknown }
		);
	const { services, resources } = doc as { services?: unknown; resources?: unknown };
	return {
		services: entries(services, "services").map(([name, def]) =>
			validated<ServiceInput>(checkService, { ...def, name }, `services.${name}`)
		),
		resources: entries(resources, "resources").map(([name, def]) =>
			validated<ResourceInput>(checkResource, { ...def, name }, `resources.${name}`)
		)
	};
}

function sameDefinition(a: object, b: object): boolean {
	// Who owns it is not part of the definition: the plan compares within one owner.
	const strip = ({
		createdAt: _c,
		updatedAt: _u,
		id: _i,
		owner: _o,
		tenant: _t,
		...rest
	}: Record<string, unknown>) => rest;
	return (
		JSON.stringify(strip(a as Record<string, unknown>)) ===
		JSON.stringify(strip(b as Record<string, unknown>))
	);
}

/** What applying `doc` would do, given what is registered now. Also checks every definition. */
export function planApply(
	doc: ApplyDocument,
	services: Map<string, ExternalService>,
	resources: Map<string, Resource>,
	now: number
): ApplyPlan {
	return {
		resources: doc.resources.map(input => {
			const existing = resources.get(input.name);
			const next = normalizeResource(input, existing?.id ?? "new", now);
			if (!existing) return { input, change: "created" as const };
			return {
				input,
				id: existing.id,
				change: sameDefinition(next, existing)
					? ("unchanged" as const)
					: ("updated" as const)
			};
		}),
		services: doc.services.map(input => {
			const existing = services.get(input.name);
			const next = normalizeService(input, now);
			if (!existing) return { input, change: "created" as const };
			return {
				input,
				change: sameDefinition(next, existing)
					? ("unchanged" as const)
					: ("updated" as const)
			};
		})
	};
}

/** The report of a plan, applied or (`dryRun`) not. */
export function applyReport(plan: ApplyPlan, dryRun: boolean): ApplyReport {
	const names = (change: string) => [
		...plan.resources.filter(s => s.change === change).map(s => `resource/${s.input.name}`),
		...plan.services.filter(s => s.change === change).map(s => `service/${s.input.name}`)
	];
	const report = {
		created: names("created"),
		updated: names("updated"),
		unchanged: names("unchanged"),
		dryRun
	};
	return { ...report, changed: report.created.length + report.updated.length > 0 };
}
