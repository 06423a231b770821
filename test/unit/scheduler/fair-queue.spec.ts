import { FairQueue } from "../../../services/scheduler/fair-queue";

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
