import { SerialQueue, URGENT_IN_A_ROW } from "../../../services/scheduler/serial-queue";

/** A task that records its name and waits for `release` before it ends. */
function gate() {
	let release!: () => void;
	const released = new Promise<void>(resolve => (release = resolve));
	return { release, wait: () => released };
}

describe("SerialQueue", () => {
	it("runs one task after another, also after one that failed", async () => {
		const queue = new SerialQueue();
		const order: string[] = [];
		const task =
			(name: string, fail = false) =>
			async () => {
				order.push(`${name} starts`);
				await new Promise(resolve => setTimeout(resolve, 5));
				order.push(`${name} ends`);
				if (fail) throw new Error(name);
				return name;
			};
		const a = queue.run(task("a"));
		const b = queue.run(task("b", true));
		const c = queue.run(task("c"));
		await expect(a).resolves.toBe("a");
		await expect(b).rejects.toThrow("b");
		await expect(c).resolves.toBe("c");
		await queue.idle();
		expect(order).toEqual(["a starts", "a ends", "b starts", "b ends", "c starts", "c ends"]);
	});

	it("refuses a bounded task with 503 OVERLOADED while `limit` tasks wait; its own work still queues", async () => {
		const queue = new SerialQueue(2);
		let release!: () => void;
		const blocked = new Promise<void>(resolve => (release = resolve));
		const first = queue.run(() => blocked);
		const second = queue.runBounded(async () => "second");
		await expect(queue.runBounded(async () => "third")).rejects.toMatchObject({
			code: 503,
			type: "OVERLOADED",
			data: { queue: "the scheduler's queue", limit: 2, retryAfter: 1 }
		});
		const own = queue.run(async () => "own");
		release();
		await first;
		await expect(second).resolves.toBe("second");
		await expect(own).resolves.toBe("own");
		await expect(queue.runBounded(async () => "again")).resolves.toBe("again");
	});

	it("runs an urgent task before the normal ones waiting, never before the one running", async () => {
		const queue = new SerialQueue();
		const order: string[] = [];
		const running = gate();
		const record = (name: string) => async () => void order.push(name);
		const first = queue.run(async () => {
			order.push("running");
			await running.wait();
		});
		const normal = [queue.run(record("normal 1")), queue.run(record("normal 2"))];
		await new Promise(resolve => setImmediate(resolve));
		const urgent = queue.run(record("urgent"), "urgent");
		running.release();
		await Promise.all([first, ...normal, urgent]);
		expect(order).toEqual(["running", "urgent", "normal 1", "normal 2"]);
	});

	it(`runs a waiting normal task after ${URGENT_IN_A_ROW} urgent ones in a row`, async () => {
		const queue = new SerialQueue();
		const order: string[] = [];
		const running = gate();
		const record = (name: string) => async () => void order.push(name);
		const first = queue.run(() => running.wait());
		await new Promise(resolve => setImmediate(resolve));
		const tasks = [queue.run(record("normal"))];
		for (let i = 0; i < URGENT_IN_A_ROW + 2; i++)
			tasks.push(queue.run(record(`urgent ${i}`), "urgent"));
		running.release();
		await Promise.all([first, ...tasks]);
		expect(order.indexOf("normal")).toBe(URGENT_IN_A_ROW);
		expect(order.filter(n => n.startsWith("urgent"))).toHaveLength(URGENT_IN_A_ROW + 2);
	});

	it("idle() waits for what was queued before it, in both lanes", async () => {
		const queue = new SerialQueue();
		const done: string[] = [];
		const slow = (name: string) => async () => {
			await new Promise(resolve => setTimeout(resolve, 5));
			done.push(name);
		};
		void queue.run(slow("normal"));
		void queue.run(slow("urgent"), "urgent");
		await queue.idle();
		expect(done.sort()).toEqual(["normal", "urgent"]);
		await expect(queue.idle()).resolves.toBeUndefined();
	});

	it("answers a task that throws at once with its error, and goes on", async () => {
		const queue = new SerialQueue();
		const thrown = queue.run(() => {
			throw new Error("at once");
		});
		await expect(thrown).rejects.toThrow("at once");
		await expect(queue.run(async () => "next")).resolves.toBe("next");
	});
});
