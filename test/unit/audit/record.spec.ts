import {
	headerText,
	outcomeClass,
	requestIdFrom,
	summarizeBody,
	SUMMARY_BYTES,
	systemFields,
	targetOf
} from "../../../services/audit/record";

describe("audit record", () => {
	it("masks secrets in a body with the registry's rules, keeping the rest", () => {
		expect(
			summarizeBody({
				name: "db",
				endpoint: "postgres://app:pw@db:5432/x?sslpassword=p&mode=a",
				config: {
					password: "p",
					nested: { apiKey: { any: "thing" } },
					list: ["redis://:pw2@r"]
				},
				process: { env: { API_TOKEN: "t", HOME: "/h" } }
			})
		).toEqual({
			name: "db",
			endpoint: "postgres://app:***@db:5432/x?sslpassword=***&mode=a",
			config: { password: "***", nested: { apiKey: "***" }, list: ["redis://:***@r"] },
			process: { env: { API_TOKEN: "***", HOME: "/h" } }
		});
	});

	it("keeps a text body by its size only, bounds depth and size, drops empty bodies", () => {
		expect(summarizeBody("services:\n  a: {password: x}\n")).toEqual({ text: true, bytes: 29 });
		expect(summarizeBody(undefined)).toBeUndefined();
		expect(summarizeBody({})).toBeUndefined();
		expect(summarizeBody("")).toBeUndefined();
		let deep: unknown = "bottom";
		for (let i = 0; i < 3000; i++) deep = { d: deep };
		const summary = JSON.stringify(summarizeBody(deep));
		expect(summary).toContain('"…"');
		expect(summary.length).toBeLessThan(200);
		const big = summarizeBody({ a: "x".repeat(SUMMARY_BYTES), b: 1 });
		expect(big).toEqual({ truncated: true, bytes: expect.any(Number), keys: ["a", "b"] });
	});

	it("takes the target from the route's parameter, else the created object's id or name", () => {
		expect(targetOf({ id: "w1" }, { id: "other" })).toBe("w1");
		expect(targetOf({ key: "ui.banner" })).toBe("ui.banner");
		expect(targetOf({}, { id: "new-1", name: "n" })).toBe("new-1");
		expect(targetOf(undefined, { name: "svc" })).toBe("svc");
		expect(targetOf({ id: undefined }, null)).toBeNull();
	});

	it("keeps a printable X-Request-Id and bounds headers", () => {
		expect(requestIdFrom("abc-1", "gen")).toBe("abc-1");
		expect(requestIdFrom("has space", "gen")).toBe("gen");
		expect(requestIdFrom("x".repeat(129), "gen")).toBe("gen");
		expect(requestIdFrom(["a", "b"], "gen")).toBe("gen");
		expect(headerText("a".repeat(300))).toHaveLength(257);
		expect(headerText(undefined)).toBeNull();
	});

	it("classes outcomes: denied (401, 403, 429), failed, succeeded, unknown", () => {
		expect(outcomeClass({ status: 403, succeeded: false })).toBe("denied");
		expect(outcomeClass({ status: 429, succeeded: false })).toBe("denied");
		expect(outcomeClass({ status: 409, succeeded: false })).toBe("failed");
		expect(outcomeClass({ status: 201, succeeded: true })).toBe("succeeded");
		expect(outcomeClass({ status: null, succeeded: null })).toBe("unknown");
	});

	it("makes a system record with its actor and no request parts", () => {
		const r = systemFields({
			actor: "system:scheduler",
			action: "scheduler.reschedule",
			target: "w1",
			tenant: "t1",
			detail: "2 replicas left node n1",
			now: 0
		});
		expect(r).toMatchObject({
			kind: "system",
			actor: "system:scheduler",
			time: "1970-01-01T00:00:00.000Z",
			method: null,
			target: "w1",
			tenant: "t1",
			outcome: { status: null, succeeded: true },
			detail: "2 replicas left node n1"
		});
	});
});
