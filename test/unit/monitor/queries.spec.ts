import { InvalidInputError } from "../../../services/shared/errors";
import type { Principal } from "../../../services/shared/principal";
import { alertVisible, ruleVisible, statsQuery, visible } from "../../../services/monitor/queries";

const viewer = (tenant: string): Principal => ({
	sub: "ann",
	tenant,
	roles: ["viewer"],
	exp: 0
});
const admin: Principal = { sub: "root", tenant: "ops", roles: ["admin"], exp: 0 };

describe("visible", () => {
	it("shows cluster series to everyone and a tenant's series to that tenant and admins", () => {
		expect(visible({ node: "n1" }, viewer("acme"))).toBe(true);
		expect(visible({ tenant: "acme" }, viewer("acme"))).toBe(true);
		expect(visible({ tenant: "acme" }, viewer("globex"))).toBe(false);
		expect(visible({ tenant: "acme" }, admin)).toBe(true);
		// An internal call (no user) sees everything.
		expect(visible({ tenant: "acme" }, undefined)).toBe(true);
	});
});

describe("ruleVisible and alertVisible", () => {
	const acmeRule = { owner: "tenant" as const, tenant: "acme" };
	const clusterRule = { owner: "cluster" as const };

	it("shows cluster rules (and rules without owner) to all, a tenant's to it and admins", () => {
		expect(ruleVisible(clusterRule, viewer("globex"))).toBe(true);
		expect(ruleVisible({}, viewer("globex"))).toBe(true);
		expect(ruleVisible(acmeRule, viewer("acme"))).toBe(true);
		expect(ruleVisible(acmeRule, viewer("globex"))).toBe(false);
		expect(ruleVisible(acmeRule, admin)).toBe(true);
		expect(ruleVisible(acmeRule, undefined)).toBe(true);
	});

	it("hides a cluster rule's alert about another tenant's series, and another tenant's rule's", () => {
		const onNode = { ...clusterRule, labels: { node: "n1" } };
		const onAcme = { ...clusterRule, labels: { tenant: "acme", workload: "w1" } };
		const acmeOwn = { ...acmeRule, labels: { tenant: "acme", node: "n1" } };
		expect(alertVisible(onNode, viewer("globex"))).toBe(true);
		expect(alertVisible(onAcme, viewer("acme"))).toBe(true);
		expect(alertVisible(onAcme, viewer("globex"))).toBe(false);
		expect(alertVisible(acmeOwn, viewer("acme"))).toBe(true);
		expect(alertVisible(acmeOwn, viewer("globex"))).toBe(false);
		// An alert of acme's rule is acme's even on a series that names nobody.
		expect(alertVisible({ ...acmeRule, labels: {} }, viewer("globex"))).toBe(false);
		expect(alertVisible(onAcme, admin)).toBe(true);
		// Alerts saved before owners existed are the cluster's.
		expect(alertVisible({ labels: { node: "n1" } }, viewer("globex"))).toBe(true);
	});
});

describe("statsQuery", () => {
	const now = 10_000_000;

	it("defaults to the last hour and the tier's own step", () => {
		expect(statsQuery({}, undefined, now)).toMatchObject({
			since: now - 3_600_000,
			now,
			step: undefined
		});
	});

	it("takes `since` as ms since the epoch or as a duration back, and `step` as a duration", () => {
		expect(statsQuery({ since: 5 }, undefined, now).since).toBe(5);
		expect(statsQuery({ since: "15m", step: "1m" }, undefined, now)).toMatchObject({
			since: now - 900_000,
			step: 60_000
		});
		expect(statsQuery({ step: 30 }, undefined, now).step).toBe(30_000);
	});

	it("filters by node, by selector and by what the user may see", () => {
		const { filter } = statsQuery(
			{ node: "n1", metric: 'workload.replicas{state="pending"}' },
			viewer("acme"),
			now
		);
		const labels = { node: "n1", tenant: "acme", state: "pending" };
		expect(filter!("workload.replicas", labels)).toBe(true);
		expect(filter!("workload.replicas", { ...labels, node: "n2" })).toBe(false);
		expect(filter!("workload.replicas", { ...labels, state: "running" })).toBe(false);
		expect(filter!("workload.replicas", { ...labels, tenant: "globex" })).toBe(false);
		expect(filter!("node.status", labels)).toBe(false);
	});

	it("throws InvalidInputError for a bad duration or selector", () => {
		expect(() => statsQuery({ since: "soon" }, undefined, now)).toThrow(InvalidInputError);
		expect(() => statsQuery({ metric: "nope" }, undefined, now)).toThrow(InvalidInputError);
	});
});
