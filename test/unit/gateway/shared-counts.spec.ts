/**
 * SharedCounts' reading of Redis's answers at a window's edges, on a model of the three
 * commands it sends (SET NX PX, INCRBY, PTTL) with Redis's expiry rule and a clock the test
 * moves: a key lives while now <= its expiry, PTTL says 0 in its last millisecond, and an
 * answer comes a millisecond after the commands ran. Real
 * Redis is in test/integration/shared-counts.spec.ts; an edge a millisecond wide is not
 * reached there on purpose.
 */
import type Redis from "ioredis";
import { SharedCounts } from "../../../services/gateway/shared-counts";

const WINDOW = 1000;

/** One key's value and expiry, as Redis keeps them. */
interface Entry {
	value: number;
	expiresAt: number;
}

function modelRedis(clock: { now: number }) {
	const keys = new Map<string, Entry>();
	const live = (key: string) => {
		const e = keys.get(key);
		if (e && clock.now > e.expiresAt) keys.delete(key);
		return keys.get(key);
	};
	const multi = () => {
		const ops: Array<() => [null, unknown]> = [];
		const tx = {
			set(key: string, value: number, _px: "PX", ms: number, _nx: "NX") {
				ops.push(() => {
					if (!live(key)) keys.set(key, { value, expiresAt: clock.now + ms });
					return [null, "OK"];
				});
				return tx;
			},
			incrby(key: string, n: number) {
				ops.push(() => {
					const e = live(key)!;
					e.value += n;
					return [null, e.value];
				});
				return tx;
			},
			pttl(key: string) {
				ops.push(() => [null, live(key)!.expiresAt - clock.now]);
				return tx;
			},
			exec: async () => {
				const answers = ops.map(op => op());
				// The answer arrives a millisecond after Redis ran the commands.
				clock.now += 1;
				return answers;
			}
		};
		return tx;
	};
	return { status: "ready", multi, pexpire: async () => 1 } as unknown as Redis;
}

describe("SharedCounts at a window's edges", () => {
	it("starts the next window when Redis answers in the last millisecond of a full one", async () => {
		const clock = { now: 0 };
		const counts = new SharedCounts(modelRedis(clock), "t:rate", WINDOW, () => clock.now);
		const limit = 2;
		const allowed = async () => (await counts.hit("t:edge", limit)).consumed <= limit;
		// Redis made the key at 0 and answered at 1: this gateway's window ends at 1001.
		expect([await allowed(), await allowed(), await allowed()]).toEqual([true, true, false]);
		// A refused count, sent with the batch that reaches Redis as the key has 0 ms left.
		clock.now = WINDOW;
		expect(await allowed()).toBe(false);
		await counts.flush();
		// The key has expired: the next request opens a new window, not the rest of a full one.
		clock.now = WINDOW + 2;
		expect(await allowed()).toBe(true);
		await counts.stop();
	});

	it("keeps the shared window's end, not its own guess, from the first answer on", async () => {
		const clock = { now: 0 };
		const redis = modelRedis(clock);
		const [a, b] = [0, 1].map(() => new SharedCounts(redis, "t:rate", WINDOW, () => clock.now));
		// The other gateway opened the window 600 ms before this one's first request.
		await b.hit("t:late", 10);
		await b.flush();
		clock.now = 600;
		expect((await a.hit("t:late", 10)).msBeforeNext).toBe(WINDOW);
		await a.flush();
		expect((await a.hit("t:late", 10)).msBeforeNext).toBe(WINDOW - 600);
		await Promise.all([a.stop(), b.stop()]);
	});
});
