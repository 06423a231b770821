import { Gathered, Gatherer } from "../../../services/scheduler/gather";

type Group = Gathered<string, string>[];

/**
 * A serial queue like the scheduler's, and a Gatherer on it: `together` answers the items
 * without "!" (and says which groups it saw), `alone` answers what it left.
 */
function setup(together?: (group: Group) => Promise<Group>) {
	let tail: Promise<unknown> = Promise.resolve();
	const queue = (task: () => Promise<void>) => {
		const run = tail.then(task);
		tail = run.catch(() => undefined);
		return run;
	};
	const groups: string[][] = [];
	const gatherer = new Gatherer<string, string>(
		queue,
		together ??
			(async group => {
				groups.push(group.map(g => g.item));
				const left = group.filter(g => g.item.endsWith("!"));
				for (const g of group) if (!left.includes(g)) g.resolve(`${g.item}@${g.index}`);
				return left;
			}),
		async item => {
			if (item === "fails!") throw new Error("no room");
			return `${item} alone`;
		}
	);
	return { gatherer, groups, queue };
}

describe("Gatherer", () => {
	it("puts requests that arrive while a group waits into that group", async () => {
		const { gatherer, groups } = setup();
		const answers = await Promise.all(["a", "b!", "c"].map(x => gatherer.add(x)));
		expect(groups).toEqual([["a", "b!", "c"]]);
		expect(answers).toEqual(["a@0", "b! alone", "c@2"]);
	});

	it("answers a lone request by itself, and each left request with its own outcome", async () => {
		const { gatherer, groups } = setup();
		expect(await gatherer.add("a")).toBe("a alone");
		const results = await Promise.allSettled(["fails!", "b!"].map(x => gatherer.add(x)));
		expect(results).toEqual([
			{ status: "rejected", reason: new Error("no room") },
			{ status: "fulfilled", value: "b! alone" }
		]);
		expect(groups).toEqual([["fails!", "b!"]]);
	});

	it("starts a new group once the waiting one is full", async () => {
		const groups: string[][] = [];
		let tail: Promise<unknown> = Promise.resolve();
		const gatherer = new Gatherer<string, string>(
			task => {
				const run = tail.then(task);
				tail = run.catch(() => undefined);
				return run;
			},
			async group => {
				groups.push(group.map(g => g.item));
				for (const g of group) g.resolve(g.item);
				return [];
			},
			async item => item,
			2
		);
		await Promise.all(["a", "b", "c", "d", "e"].map(x => gatherer.add(x)));
		expect(groups).toEqual([
			["a", "b"],
			["c", "d"]
		]);
	});

	it("starts a new group for requests that arrive once a group runs", async () => {
		let release!: () => void;
		const blocked = new Promise<void>(resolve => (release = resolve));
		const groups: string[][] = [];
		const { gatherer, queue } = setup(async group => {
			groups.push(group.map(g => g.item));
			for (const g of group) g.resolve(g.item);
			return [];
		});
		void queue(() => blocked);
		const first = [gatherer.add("a"), gatherer.add("b")];
		await new Promise(resolve => setImmediate(resolve));
		// The queue is blocked: "a" and "b" wait; once it is free they run, and these two
		// arrive while they run.
		release();
		await new Promise(resolve => setImmediate(resolve));
		const later = [gatherer.add("c"), gatherer.add("d")];
		await Promise.all([...first, ...later]);
		expect(groups).toEqual([
			["a", "b"],
			["c", "d"]
		]);
	});

	it("waits for what was queued before the group", async () => {
		const { gatherer, queue } = setup();
		const order: string[] = [];
		const earlier = queue(async () => {
			await new Promise(resolve => setTimeout(resolve, 10));
			order.push("earlier task");
		});
		const answer = gatherer.add("a").then(a => order.push(a));
		await Promise.all([earlier, answer]);
		expect(order).toEqual(["earlier task", "a alone"]);
	});

	it("rejects the requests a failing group left unsettled, and goes on", async () => {
		const { gatherer } = setup(async group => {
			group[0].resolve("done");
			throw new Error("store down");
		});
		const results = await Promise.allSettled([gatherer.add("a"), gatherer.add("b")]);
		expect(results).toEqual([
			{ status: "fulfilled", value: "done" },
			{ status: "rejected", reason: new Error("store down") }
		]);
		await expect(gatherer.add("c")).resolves.toBe("c alone");
	});

	it("takes waiting requests round-robin by key, so a flood does not fill a group first", async () => {
		let release!: () => void;
		const blocked = new Promise<void>(resolve => (release = resolve));
		let tail: Promise<unknown> = Promise.resolve();
		const queue = (task: () => Promise<void>) => {
			const run = tail.then(task);
			tail = run.catch(() => undefined);
			return run;
		};
		const groups: string[][] = [];
		const gatherer = new Gatherer<string, string>(
			queue,
			async group => {
				groups.push(group.map(g => g.item));
				for (const g of group) g.resolve(`${g.item}@${g.index}`);
				return [];
			},
			async item => item,
			3,
			item => item[0]
		);
		void queue(() => blocked);
		const flood = Array.from({ length: 6 }, (_, i) => gatherer.add(`a${i}`));
		const quiet = gatherer.add("b0");
		release();
		await Promise.all([...flood, quiet]);
		expect(groups).toEqual([
			["a0", "b0", "a1"],
			["a2", "a3", "a4"]
		]);
		// Each request's index is its place in its own group.
		await expect(quiet).resolves.toBe("b0@1");
	});
});
