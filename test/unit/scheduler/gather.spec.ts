import { Gathered, Gatherer } from "../../../services/scheduler/gather";

/** A serial queue like the scheduler's, and the groups a Gatherer handed it. */
function setup(handle?: (group: Gathered<string, string>[]) => Promise<void>) {
	let tail: Promise<unknown> = Promise.resolve();
	const queue = (task: () => Promise<void>) => {
		const run = tail.then(task);
		tail = run.catch(() => undefined);
		return run;
	};
	const groups: string[][] = [];
	const gatherer = new Gatherer<string, string>(
		queue,
		handle ??
			(async group => {
				groups.push(group.map(g => g.item));
				for (const g of group) g.resolve(`${g.item}@${g.index}`);
			})
	);
	return { gatherer, groups, queue };
}

describe("Gatherer", () => {
	it("puts requests that arrive while a group waits into that group", async () => {
		const { gatherer, groups } = setup();
		const answers = await Promise.all(["a", "b", "c"].map(x => gatherer.add(x)));
		expect(groups).toEqual([["a", "b", "c"]]);
		expect(answers).toEqual(["a@0", "b@1", "c@2"]);
	});

	it("starts a new group for requests that arrive once a group runs", async () => {
		let release!: () => void;
		const blocked = new Promise<void>(resolve => (release = resolve));
		const groups: string[][] = [];
		const { gatherer } = setup(async group => {
			groups.push(group.map(g => g.item));
			if (groups.length === 1) await blocked;
			for (const g of group) g.resolve(g.item);
		});
		const first = gatherer.add("a");
		await new Promise(resolve => setImmediate(resolve));
		// "a" runs now: these two wait for it, together.
		const later = [gatherer.add("b"), gatherer.add("c")];
		release();
		await Promise.all([first, ...later]);
		expect(groups).toEqual([["a"], ["b", "c"]]);
	});

	it("waits for what was queued before the group", async () => {
		const { gatherer, groups, queue } = setup();
		const order: string[] = [];
		const earlier = queue(async () => {
			await new Promise(resolve => setTimeout(resolve, 10));
			order.push("earlier task");
		});
		const answer = gatherer.add("a").then(a => order.push(a));
		await Promise.all([earlier, answer]);
		expect(order).toEqual(["earlier task", "a@0"]);
		expect(groups).toEqual([["a"]]);
	});

	it("rejects the requests a failing handler left unsettled, and goes on", async () => {
		const { gatherer } = setup(async group => {
			group[0].resolve("done");
			if (group.length > 1) throw new Error("store down");
		});
		const results = await Promise.allSettled([gatherer.add("a"), gatherer.add("b")]);
		expect(results).toEqual([
			{ status: "fulfilled", value: "done" },
			{ status: "rejected", reason: new Error("store down") }
		]);
		await expect(gatherer.add("c")).resolves.toBe("done");
	});
});
