/**
 * Alert rules in the store, which every monitor instance reads: listing, creation (idempotent
 * with an Idempotency-Key, names unique), deletion, and the read that the evaluation uses.
 */
import crypto from "crypto";
import { COLLECTIONS } from "../shared/collections";
import { ConflictError, NotFoundError } from "../shared/errors";
import type { Store } from "../shared/store";
import { AlertRule, makeRule, parseSelector, RuleInput } from "./alerts";

/** The id of a new rule: derived from the Idempotency-Key when there is one, else random. */
export function ruleId(idempotencyKey?: string): string {
	if (!idempotencyKey) return crypto.randomUUID();
	return crypto
		.createHash("sha256")
		.update(`alert-rule\u0000${idempotencyKey}`)
		.digest("hex")
		.slice(0, 32);
}

function byCreation(a: AlertRule, b: AlertRule): number {
	return a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

export class RuleStore {
	constructor(
		private readonly store: Store,
		private readonly logger: { warn(...args: unknown[]): void }
	) {}

	/** Every rule, oldest first. */
	async list(): Promise<AlertRule[]> {
		return (await this.store.list<AlertRule>(COLLECTIONS.alertRules))
			.map(d => d.value)
			.sort(byCreation);
	}

	/**
	 * The rules to evaluate, in id order. A stored rule whose metric no longer parses (a metric
	 * renamed since it was written) is skipped with a warning instead of failing the evaluation.
	 */
	async usable(): Promise<AlertRule[]> {
		return (await this.store.list<AlertRule>(COLLECTIONS.alertRules))
			.map(d => d.value)
			.filter(rule => {
				try {
					parseSelector(rule.metric);
					return true;
				} catch (err) {
					this.logger.warn(`Alert rule '${rule.id}' skipped:`, (err as Error).message);
					return false;
				}
			});
	}

	/**
	 * Creates a rule: InvalidInputError for a bad metric, op or `for`, ConflictError for a name
	 * taken by another rule. A retried create with the same idempotency key gets the same id and
	 * resolves to the rule stored the first time, with `created: false`.
	 */
	async create(
		input: RuleInput,
		opts: { idempotencyKey?: string; createdBy: string; now: number }
	): Promise<{ rule: AlertRule; created: boolean }> {
		const id = ruleId(opts.idempotencyKey);
		const rule = makeRule(input, { id, now: opts.now, createdBy: opts.createdBy });
		const existing = await this.store.list<AlertRule>(COLLECTIONS.alertRules);
		const same = existing.find(d => d.id === id);
		if (same) return { rule: same.value, created: false };
		if (existing.some(d => d.value.name === rule.name))
			throw new ConflictError(`An alert rule named '${rule.name}' exists already.`, {
				name: rule.name
			});
		if ((await this.store.cas(COLLECTIONS.alertRules, id, rule, 0)) === null) {
			// A concurrent retry with the same key wrote it first: answer with that rule.
			const raced = await this.store.get<AlertRule>(COLLECTIONS.alertRules, id);
			if (raced) return { rule: raced.value, created: false };
		}
		return { rule, created: true };
	}

	/** Deletes a rule; NotFoundError for an unknown id. */
	async delete(id: string): Promise<void> {
		if (!(await this.store.delete(COLLECTIONS.alertRules, id)))
			throw new NotFoundError("Alert rule", id);
	}
}
