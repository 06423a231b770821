/**
 * Alert rules in the store, which every monitor instance reads: listing, creation (idempotent
 * with an Idempotency-Key, names unique), deletion, and the read that the evaluation uses.
 *
 * Ownership (services/shared/principal.ts): an admin's rules are the cluster's, an operator's
 * its tenant's. A user lists the cluster's rules and its own tenant's; another tenant's rule is
 * absent to it (404 on delete, no 409 for its name, no shared idempotency key), and a cluster
 * rule is deleted by admins only (403). Calls without a user are the cluster's own: they see all.
 */
import crypto from "crypto";
import { COLLECTIONS } from "../shared/collections";
import { ConflictError, ForbiddenError, NotFoundError } from "../shared/errors";
import { changeRight, isClusterOwned, ownerFor, type Principal } from "../shared/principal";
import type { Store } from "../shared/store";
import { AlertRule, makeRule, parseSelector, RuleInput } from "./alerts";
import { ruleVisible } from "./queries";

/**
 * The id of a new rule: derived from the Idempotency-Key when there is one, else random. A
 * tenant's keys are its own: the same key from two tenants makes two rules.
 */
export function ruleId(idempotencyKey?: string, tenant?: string): string {
	if (!idempotencyKey) return crypto.randomUUID();
	const scope = tenant === undefined ? "" : `tenant\u0000${tenant}\u0000`;
	return crypto
		.createHash("sha256")
		.update(`alert-rule\u0000${scope}${idempotencyKey}`)
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

	/** Every rule `user` may see, oldest first. */
	async list(user?: Principal): Promise<AlertRule[]> {
		return (await this.store.list<AlertRule>(COLLECTIONS.alertRules))
			.map(d => d.value)
			.filter(rule => ruleVisible(rule, user))
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
	 * Creates a rule owned by `user`'s tenant, or the cluster's for an admin (or no user):
	 * InvalidInputError for a bad metric, op or `for`, ConflictError for a name taken by a rule
	 * the user can see. A retried create with the same idempotency key gets the same id and
	 * resolves to the rule stored the first time, with `created: false`.
	 */
	async create(
		input: RuleInput,
		opts: { idempotencyKey?: string; createdBy: string; now: number; user?: Principal }
	): Promise<{ rule: AlertRule; created: boolean }> {
		const owner = opts.user ? ownerFor(opts.user) : { owner: "cluster" as const };
		const id = ruleId(opts.idempotencyKey, isClusterOwned(owner) ? undefined : owner.tenant);
		const rule = makeRule(input, { id, now: opts.now, createdBy: opts.createdBy, owner });
		const existing = await this.store.list<AlertRule>(COLLECTIONS.alertRules);
		const same = existing.find(d => d.id === id);
		if (same) return { rule: same.value, created: false };
		if (existing.some(d => d.value.name === rule.name && ruleVisible(d.value, opts.user)))
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

	/**
	 * Deletes a rule: NotFoundError for an unknown id or another tenant's rule, ForbiddenError
	 * for a cluster rule (the defaults too) when `user` is no admin.
	 */
	async delete(id: string, user?: Principal): Promise<void> {
		const doc = await this.store.get<AlertRule>(COLLECTIONS.alertRules, id);
		const right = doc && user ? changeRight(user, doc.value) : "change";
		if (!doc || right === "hidden") throw new NotFoundError("Alert rule", id);
		if (right === "forbidden")
			throw new ForbiddenError("Only an admin changes the cluster's alert rules.", {
				kind: "Alert rule",
				id,
				owner: "cluster"
			});
		if (!(await this.store.delete(COLLECTIONS.alertRules, id)))
			throw new NotFoundError("Alert rule", id);
	}
}
