/**
 * Runs the changes of this process one after another, so that concurrent requests queue
 * instead of retrying against each other. The scheduler's own work (rounds, syncs,
 * evacuations) always queues; a client's request that would queue a task of its own
 * (`runBounded`) is refused with 503 OVERLOADED while `limit` tasks wait, so that a flood of
 * them cannot push the scheduler's own work back without end.
 *
 * Two lanes: a task in the `urgent` lane runs before every `normal` one still waiting (never
 * before the one running). The scheduler puts a light tenant's create there (a tenant with
 * hardly anything in flight, lifecycle.ts), so that it waits for the task that runs and not
 * for the groups and rounds of another tenant's flood queued ahead of it. After URGENT_IN_A_ROW
 * urgent tasks a waiting normal one runs, so that many light tenants together cannot hold the
 * scheduler's own work back either.
 *
 * What this trades: a light tenant's workload is placed in a round of its own, before the
 * normal round queued at that moment, whatever the priorities of the workloads in it (a few
 * ms of other creates). Priority orders placement within a round and among the workloads that
 * wait for room, as before.
 */
import { OverloadedError } from "../shared/errors";
import { RETRY_AFTER_S } from "../shared/admission";
import { nextTurn } from "./repository";

export type Lane = "urgent" | "normal";

/** Urgent tasks run in a row while normal ones wait. */
export const URGENT_IN_A_ROW = 4;

type Task = () => Promise<void>;

const noop = (): void => undefined;

export class SerialQueue {
	private readonly lanes: Record<Lane, Task[]> = { urgent: [], normal: [] };
	/** Tasks queued or running. */
	private length = 0;
	private draining = false;
	/** Urgent tasks run since the last normal one. */
	private urgentRun = 0;
	/** Each task queued or running, settled when it is done (see idle). */
	private readonly pending = new Set<Promise<unknown>>();

	constructor(private readonly limit = Infinity) {}

	run<T>(fn: () => Promise<T>, lane: Lane = "normal"): Promise<T> {
		const result = new Promise<T>((resolve, reject) => {
			this.length++;
			this.lanes[lane].push(() => Promise.resolve().then(fn).then(resolve, reject));
			if (!this.draining) void this.drain();
		});
		const done = result.then(noop, noop);
		this.pending.add(done);
		void done.then(() => this.pending.delete(done));
		return result;
	}

	/** run(), or OverloadedError while `limit` tasks are queued or running. */
	runBounded<T>(fn: () => Promise<T>, lane: Lane = "normal"): Promise<T> {
		if (this.length >= this.limit)
			return Promise.reject(
				new OverloadedError({
					queue: "the scheduler's queue",
					limit: this.limit,
					retryAfter: RETRY_AFTER_S
				})
			);
		return this.run(fn, lane);
	}

	/** Resolves once everything queued so far has run. */
	async idle(): Promise<void> {
		await Promise.all(this.pending);
	}

	private async drain(): Promise<void> {
		this.draining = true;
		for (;;) {
			// A turn of the event loop before each task: on the embedded store every read and
			// write settles at once, so without it a queue of tasks would run back to back in
			// one macrotask, and requests (another tenant's create, a health check) would wait
			// for all of them rather than for the one running. The next task is chosen after
			// the turn, so an urgent one that came meanwhile goes first. An urgent task (a light
			// tenant's few creates, or their round) runs without one, up to URGENT_IN_A_ROW in a
			// row: a turn under load is the wait for every request ready on the sockets.
			if (!(this.lanes.urgent.length > 0 && this.urgentRun < URGENT_IN_A_ROW))
				await nextTurn();
			const task = this.next();
			if (!task) break;
			// A task settles its own caller's promise and never rejects.
			await task();
			this.length--;
		}
		this.draining = false;
	}

	/** Whether the next task is an urgent one. */
	private urgentNext(): boolean {
		const { urgent, normal } = this.lanes;
		return urgent.length > 0 && (this.urgentRun < URGENT_IN_A_ROW || normal.length === 0);
	}

	private next(): Task | undefined {
		if (this.urgentNext()) {
			this.urgentRun++;
			return this.lanes.urgent.shift();
		}
		this.urgentRun = 0;
		return this.lanes.normal.shift();
	}
}
