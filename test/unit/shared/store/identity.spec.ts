import {
	adoptedIdentity,
	judgeIdentity,
	mismatchMessage,
	newIdentity,
	parseIdentity,
	type ClusterIdentity
} from "../../../../services/shared/store/identity";

const c1: ClusterIdentity = { clusterId: "c1", epoch: 1, createdAt: 10 };
const c1e2: ClusterIdentity = { clusterId: "c1", epoch: 2, createdAt: 20 };
const c2: ClusterIdentity = { clusterId: "c2", epoch: 1, createdAt: 30 };

describe("judgeIdentity", () => {
	it("initialises a brand-new cluster: nothing stored, nothing remembered", () => {
		expect(judgeIdentity(null, null)).toEqual({ state: "initialise" });
	});

	it("takes the stored identity when nothing is remembered (a new process of the cluster)", () => {
		expect(judgeIdentity(c1, null)).toEqual({ state: "ok", identity: c1 });
	});

	it("takes the remembered identity and a later epoch of it (an adoption)", () => {
		expect(judgeIdentity(c1, c1)).toEqual({ state: "ok", identity: c1 });
		expect(judgeIdentity(c1e2, c1)).toEqual({ state: "ok", identity: c1e2 });
	});

	it("refuses a store without identity that this process knew (restarted empty)", () => {
		expect(judgeIdentity(null, c1)).toEqual({
			state: "mismatch",
			problem: "missing",
			expected: c1,
			found: null
		});
	});

	it("refuses another cluster's store, and an older epoch (an old backup)", () => {
		expect(judgeIdentity(c2, c1)).toMatchObject({ state: "mismatch", problem: "foreign" });
		expect(judgeIdentity(c1, c1e2)).toMatchObject({
			state: "mismatch",
			problem: "stale",
			expected: c1e2,
			found: c1
		});
	});

	it("takes an adopted identity that supersedes the remembered cluster id", () => {
		const adopted = { ...c2, epoch: 3, supersedes: ["c1"] };
		expect(judgeIdentity(adopted, c1)).toEqual({ state: "ok", identity: adopted });
	});
});

describe("adoptedIdentity", () => {
	it("keeps the first known cluster id, moves past every epoch and supersedes the others", () => {
		expect(adoptedIdentity([c1, null, c2], "fresh", 99)).toEqual({
			clusterId: "c1",
			epoch: 2,
			createdAt: 99,
			supersedes: ["c2"]
		});
		expect(adoptedIdentity([c1e2, c1], "fresh", 99)).toEqual({
			clusterId: "c1",
			epoch: 3,
			createdAt: 99
		});
	});

	it("makes a fresh id when nobody knows one", () => {
		expect(adoptedIdentity([null, undefined], "fresh", 5)).toEqual(newIdentity("fresh", 5));
	});

	it("carries superseded ids on, so an adoption of an adoption is still accepted", () => {
		const adopted = adoptedIdentity([{ ...c2, supersedes: ["c0"] }, c1], "x", 1);
		expect(adopted.supersedes).toEqual(["c0", "c1"]);
		expect(judgeIdentity(adopted, { clusterId: "c0", epoch: 7, createdAt: 0 }).state).toBe(
			"ok"
		);
	});
});

describe("parseIdentity", () => {
	it("reads an identity and refuses anything else", () => {
		expect(parseIdentity(c1)).toEqual(c1);
		expect(parseIdentity({ ...c1, supersedes: ["a"] })).toEqual({ ...c1, supersedes: ["a"] });
		for (const bad of [
			null,
			"c1",
			{},
			{ ...c1, clusterId: "" },
			{ ...c1, epoch: 0 },
			{ ...c1, epoch: 1.5 },
			{ ...c1, createdAt: "now" },
			{ ...c1, supersedes: [1] }
		])
			expect(parseIdentity(bad)).toBeNull();
	});
});

describe("mismatchMessage", () => {
	it("says what is wrong and how to fix it", () => {
		const missing = judgeIdentity(null, c1);
		if (missing.state !== "mismatch") throw new Error("expected a mismatch");
		const text = mismatchMessage(missing);
		expect(text).toContain("no cluster identity");
		expect(text).toContain("npm run adopt");
		expect(text).toContain("POST /api/v1/cluster/adopt");
		const stale = judgeIdentity(c1, c1e2);
		if (stale.state !== "mismatch") throw new Error("expected a mismatch");
		expect(mismatchMessage(stale)).toContain("old backup");
	});
});
