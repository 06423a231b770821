import { COLLECTIONS } from "../../../services/shared/collections";
import { ConflictError, InvalidInputError, NotFoundError } from "../../../services/shared/errors";
import { SqliteStore, Store } from "../../../services/shared/store";
import type { RuleInput } from "../../../services/monitor/alerts";
import { ruleId, RuleStore } from "../../../services/monitor/rule-store";

const input = (name: string, extra: Partial<RuleInput> = {}): RuleInput => ({
	name,
	metric: "node.status",
	op: "==",
	threshold: 0,
	for: "30s",
	severity: "critical",
	...extra
});

describe("RuleStore", () => {
	let store: Store;
	let rules: RuleStore;
	let warnings: string[];
	beforeEach(() => {
		store = new SqliteStore(":memory:");
		warnings = [];
		rules = new RuleStore(store, { warn: (...a) => warnings.push(a.join(" ")) });
	});
	afterEach(() => store.close());

	it("creates rules and lists them oldest first", async () => {
		const b = await rules.create(input("b"), { createdBy: "ann", now: 2 });
		const a = await rules.create(input("a"), { createdBy: "bob", now: 1 });
		expect(b.created).toBe(true);
		expect(b.rule).toMatchObject({ name: "b", createdBy: "ann", createdAt: 2, forMs: 30_000 });
		expect((await rules.list()).map(r => r.id)).toEqual([a.rule.id, b.rule.id]);
	});

	it("answers a retried create with the same key with the first rule, not a new one", async () => {
		const first = await rules.create(input("a"), {
			idempotencyKey: "k1",
			createdBy: "ann",
			now: 1
		});
		const again = await rules.create(input("a"), {
			idempotencyKey: "k1",
			createdBy: "ann",
			now: 5
		});
		expect(first.rule.id).toBe(ruleId("k1"));
		expect(again).toEqual({ rule: first.rule, created: false });
		expect(await rules.list()).toHaveLength(1);
	});

	it("derives a stable id from a key, and a random one without", () => {
		expect(ruleId("k1")).toBe(ruleId("k1"));
		expect(ruleId("k1")).toMatch(/^[0-9a-f]{32}$/);
		expect(ruleId()).not.toBe(ruleId());
	});

	it("refuses a taken name with ConflictError (409)", async () => {
		await rules.create(input("a"), { createdBy: "ann", now: 1 });
		const err = await rules.create(input("a"), { createdBy: "ann", now: 2 }).catch(e => e);
		expect(err).toBeInstanceOf(ConflictError);
		expect(err).toMatchObject({
			code: 409,
			type: "CONFLICT",
			message: "An alert rule named 'a' exists already.",
			data: { name: "a" }
		});
	});

	it("refuses a bad metric with InvalidInputError before writing anything", async () => {
		const err = await rules
			.create(input("a", { metric: "nope" }), { createdBy: "ann", now: 1 })
			.catch(e => e);
		expect(err).toBeInstanceOf(InvalidInputError);
		expect(err.data).toMatchObject({ field: "metric", metric: "nope" });
		expect(await rules.list()).toEqual([]);
	});

	it("deletes a rule, and throws NotFoundError for an unknown one", async () => {
		const { rule } = await rules.create(input("a"), { createdBy: "ann", now: 1 });
		await rules.delete(rule.id);
		expect(await rules.list()).toEqual([]);
		const err = await rules.delete(rule.id).catch(e => e);
		expect(err).toBeInstanceOf(NotFoundError);
		expect(err).toMatchObject({ code: 404, data: { kind: "Alert rule", id: rule.id } });
	});

	it("skips stored rules whose metric does not parse, with a warning", async () => {
		const { rule } = await rules.create(input("a"), { createdBy: "ann", now: 1 });
		await store.put(COLLECTIONS.alertRules, "old", {
			...rule,
			id: "old",
			metric: "gone.metric"
		});
		expect((await rules.usable()).map(r => r.id)).toEqual([rule.id]);
		expect(warnings).toHaveLength(1);
		expect(warnings[0]).toMatch(/^Alert rule 'old' skipped: Invalid metric 'gone.metric'/);
	});
});
