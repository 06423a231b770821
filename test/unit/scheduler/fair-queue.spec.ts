import { Errors } from "moleculer";
import { OverloadedError } from "../../../services/shared/errors";
import { Admission, FairQueue, RETRY_AFTER_S } from "../../../services/scheduler/fair-queue";

describe("FairQueue", () => {
	it("takes one item of each key in turn, each key's own in arrival order", () => {
		const q = new FairQueue<string>();
		for (let i = 1; i <= 5; i++) q.push("a", `a${i}`);
		q.push("b", "b1");
		q.push("c", "c1");
		q.push("b", "b2");
		expect(q.size).toBe(8);
		expect(q.take(100)).toEqual(["a1", "b1", "c1", "a2", "b2", "a3", "a4", "a5"]);
		expect(q.size).toBe(0);
	});

	it("puts a flooding key's thousands behind a quiet key's one", () => {
		const q = new FairQueue<string>();
		for (let i = 0; i < 5000; i++) q.push("flood", `f${i}`);
		q.push("quiet", "q");
		expect(q.take(2)).toEqual(["f0", "q"]);
	});

	it("starts the next take with the key whose turn it was", () => {
		const q = new FairQueue<string>();
		for (const k of ["a", "b", "c"]) for (let i = 1; i <= 3; i++) q.push(k, `${k}${i}`);
		expect(q.take(2)).toEqual(["a1", "b1"]);
		expect(q.take(2)).toEqual(["c1", "a2"]);
		q.push("d", "d1");
		expect(q.take(4)).toEqual(["b2", "c2", "a3", "d1"]);
		expect(q.take(4)).toEqual(["b3", "c3"]);
		expect(q.take(4)).toEqual([]);
	});
});

describe("Admission", () => {
	const overloaded = (fn: () => unknown, queue: string, limit: number) => {
		let err: unknown;
		try {
			fn();
		} catch (e) {
			err = e;
		}
		expect(err).toBeInstanceOf(OverloadedError);
		expect(err).toBeInstanceOf(Errors.MoleculerRetryableError);
		expect(err).toMatchObject({
			code: 503,
			type: "OVERLOADED",
			data: { queue, limit, retryAfter: RETRY_AFTER_S }
		});
	};

	it("refuses a tenant past its own bound while another tenant is still let in", () => {
		const a = new Admission("the creates", { total: 10, perTenant: 2 });
		a.enter("flood");
		a.enter("flood");
		overloaded(() => a.enter("flood"), "the creates of tenant 'flood'", 2);
		expect(() => a.enter("quiet")).not.toThrow();
		expect(a.inside("flood")).toBe(2);
		expect(a.inside()).toBe(3);
	});

	it("refuses everyone past the total, and lets in again once requests leave", () => {
		const a = new Admission("the creates", { total: 3, perTenant: 2 });
		const leaves = [a.enter("x"), a.enter("x"), a.enter("y")];
		overloaded(() => a.enter("z"), "the creates", 3);
		leaves[0]();
		leaves[0]();
		expect(a.inside("x")).toBe(1);
		expect(a.inside()).toBe(2);
		expect(() => a.enter("z")).not.toThrow();
		for (const leave of leaves) leave();
		expect(a.inside("x")).toBe(0);
		expect(a.inside("y")).toBe(0);
	});
});
