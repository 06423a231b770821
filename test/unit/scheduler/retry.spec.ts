import { ConflictError, ERR_CONFLICT } from "../../../services/shared/errors";
import {
	backoff,
	CONFLICT,
	MAX_CONFLICTS,
	retryOnConflict
} from "../../../services/scheduler/retry";

describe("retryOnConflict", () => {
	// No waiting between attempts: the backoff's random share is 0.
	beforeEach(() => jest.spyOn(Math, "random").mockReturnValue(0));
	afterEach(() => jest.restoreAllMocks());

	const kept = () => new ConflictError("The workload kept changing; try again.", { id: "w1" });

	it("answers what the first attempt that did not lose answers", async () => {
		const seen: number[] = [];
		const answer = await retryOnConflict(async n => {
			seen.push(n);
			return n < 2 ? CONFLICT : `won at ${n}`;
		}, kept);
		expect(answer).toBe("won at 2");
		expect(seen).toEqual([0, 1, 2]);
	});

	it("counts undefined as success: a change with nothing to answer does not run again", async () => {
		const attempt = jest.fn(async () => undefined);
		await expect(retryOnConflict(attempt, kept)).resolves.toBeUndefined();
		expect(attempt).toHaveBeenCalledTimes(1);
	});

	it("throws the caller's ConflictError after MAX_CONFLICTS lost attempts", async () => {
		const attempt = jest.fn(async () => CONFLICT);
		const err = await retryOnConflict(attempt, kept).catch((e: unknown) => e);
		expect(MAX_CONFLICTS).toBe(20);
		expect(attempt).toHaveBeenCalledTimes(20);
		expect(err).toBeInstanceOf(ConflictError);
		expect(err).toMatchObject({
			message: "The workload kept changing; try again.",
			code: 409,
			type: ERR_CONFLICT,
			data: { id: "w1" }
		});
	});

	it("gives up quietly without an error to throw", async () => {
		const attempt = jest.fn(async () => CONFLICT);
		await expect(retryOnConflict(attempt)).resolves.toBeUndefined();
		expect(attempt).toHaveBeenCalledTimes(20);
	});

	it("stops at an attempt that throws, with its error", async () => {
		const attempt = jest.fn(async (n: number) => {
			if (n === 1) throw new Error("store down");
			return CONFLICT;
		});
		await expect(retryOnConflict(attempt, kept)).rejects.toThrow("store down");
		expect(attempt).toHaveBeenCalledTimes(2);
	});

	it("backs off between attempts, longer each time, not before the first", async () => {
		jest.spyOn(Math, "random").mockReturnValue(0.5);
		const events: string[] = [];
		jest.spyOn(global, "setTimeout").mockImplementation(((fn: () => void, ms: number) => {
			events.push(`wait ${ms}`);
			fn();
		}) as unknown as typeof setTimeout);
		await retryOnConflict(async n => {
			events.push(`attempt ${n}`);
			return n < 2 ? CONFLICT : "ok";
		}, kept);
		expect(events).toEqual(["attempt 0", "wait 0.5", "attempt 1", "wait 1", "attempt 2"]);
	});
});

describe("backoff", () => {
	afterEach(() => jest.restoreAllMocks());

	/** The ms backoff(attempt) waits with the random share at one half. */
	async function waitOf(attempt: number): Promise<number> {
		jest.spyOn(Math, "random").mockReturnValue(0.5);
		const timer = jest.spyOn(global, "setTimeout");
		await backoff(attempt);
		return timer.mock.lastCall![1] as number;
	}

	it("waits a random share of 2^attempt ms", async () => {
		expect(await waitOf(0)).toBe(0.5);
		expect(await waitOf(3)).toBe(4);
	});

	it("waits 50 ms at most", async () => {
		expect(await waitOf(15)).toBe(25);
	});
});
