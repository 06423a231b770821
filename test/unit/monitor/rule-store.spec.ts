import { COLLECTIONS } from "../../../services/shared/collections";
import {
	ConflictError,
	ForbiddenError,
	InvalidInputError,
	NotFoundError
} from "../../../services/shared/errors";
import type { Principal } from "../../../services/shared/principal";
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

	describe("ownership", () => {
		const user = (tenant: string, role: Principal["roles"][number]): Principal => ({
			sub: `${role}@${tenant}`,
			tenant,
			roles: [role],
			exp: 0
		});
		const admin = user("ops", "admin");
		const acme = user("acme", "operator");
		const globex = user("globex", "operator");
		const acmeViewer = user("acme", "viewer");

		it("makes an admin's rules the cluster's and an operator's its tenant's", async () => {
			const c = await rules.create(input("c"), { createdBy: "root", now: 1, user: admin });
			const a = await rules.create(input("a"), { createdBy: "ann", now: 2, user: acme });
			expect(c.rule).toMatchObject({ owner: "cluster" });
			expect(c.rule.tenant).toBeUndefined();
			expect(a.rule).toMatchObject({ owner: "tenant", tenant: "acme" });
		});

		it("lists the cluster's rules and the tenant's own; admins and internal calls all", async () => {
			await rules.create(input("c"), { createdBy: "root", now: 1, user: admin });
			await rules.create(input("a"), { createdBy: "ann", now: 2, user: acme });
			await rules.create(input("g"), { createdBy: "gus", now: 3, user: globex });
			// A rule stored before owners existed is the cluster's.
			const legacy = { ...(await rules.list())[0], id: "old", name: "old", createdAt: 0 };
			delete (legacy as { owner?: string }).owner;
			await store.put(COLLECTIONS.alertRules, "old", legacy);
			const names = async (u?: Principal) => (await rules.list(u)).map(r => r.name);
			expect(await names(acmeViewer)).toEqual(["old", "c", "a"]);
			expect(await names(globex)).toEqual(["old", "c", "g"]);
			expect(await names(admin)).toEqual(["old", "c", "a", "g"]);
			expect(await names()).toEqual(["old", "c", "a", "g"]);
		});

		it("keeps names and idempotency keys apart per tenant, not from cluster rules", async () => {
			await rules.create(input("same"), { createdBy: "ann", now: 1, user: acme });
			// Another tenant's name is no conflict: 409 would tell that it exists.
			const g = await rules.create(input("same"), { createdBy: "gus", now: 2, user: globex });
			expect(g.created).toBe(true);
			await rules.create(input("shared"), { createdBy: "root", now: 3, user: admin });
			const err = await rules
				.create(input("shared"), { createdBy: "ann", now: 4, user: acme })
				.catch(e => e);
			expect(err).toBeInstanceOf(ConflictError);
			// The same key from two tenants makes two rules.
			const opts = { idempotencyKey: "k", createdBy: "x", now: 5 };
			const ka = await rules.create(input("ka"), { ...opts, user: acme });
			const kg = await rules.create(input("kg"), { ...opts, user: globex });
			expect(kg.created).toBe(true);
			expect(kg.rule.id).not.toBe(ka.rule.id);
			expect(ruleId("k", "acme")).toBe(ka.rule.id);
		});

		it("deletes: 404 for another tenant's rule, 403 for a cluster rule unless an admin", async () => {
			const a = await rules.create(input("a"), { createdBy: "ann", now: 1, user: acme });
			const c = await rules.create(input("c"), { createdBy: "root", now: 2, user: admin });
			const hidden = await rules.delete(a.rule.id, globex).catch(e => e);
			expect(hidden).toBeInstanceOf(NotFoundError);
			expect(hidden).toMatchObject({
				code: 404,
				type: "NOT_FOUND",
				data: { kind: "Alert rule", id: a.rule.id }
			});
			const forbidden = await rules.delete(c.rule.id, acme).catch(e => e);
			expect(forbidden).toBeInstanceOf(ForbiddenError);
			expect(forbidden).toMatchObject({
				code: 403,
				type: "FORBIDDEN",
				data: { kind: "Alert rule", id: c.rule.id, owner: "cluster" }
			});
			expect(await rules.list()).toHaveLength(2);
			await rules.delete(a.rule.id, acme);
			await rules.delete(c.rule.id, admin);
			expect(await rules.list()).toEqual([]);
		});
	});
});
