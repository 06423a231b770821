import { ReplyError } from "ioredis";
import { StoreRefusedError, StoreUnavailableError } from "../../../../services/shared/errors";
import { redisError } from "../../../../services/shared/store/redis-errors";

const reply = (message: string) => new ReplyError(message);
const SHA = "73fe5f4a70816dfea0be5ec3f884ef88ab5a689b";

describe("redisError", () => {
	it("answers a full Redis with 503 STORE_REFUSED in plain words, without the script", () => {
		const err = redisError(
			reply(
				`OOM command not allowed when used memory > 'maxmemory'. script: ${SHA}, on @user_script:3.`
			),
			"127.0.0.1:6379"
		);
		expect(err).toBeInstanceOf(StoreRefusedError);
		expect(err).toMatchObject({
			code: 503,
			type: "STORE_REFUSED",
			retryable: false,
			message:
				"The store refused the write: Redis is out of memory (maxmemory reached). Free memory in Redis or raise its maxmemory; nothing was written",
			data: { reply: "OOM" }
		});
		expect(JSON.stringify(err)).not.toContain(SHA);
	});

	it("answers a read-only replica with STORE_REFUSED naming the fix", () => {
		const err = redisError(
			reply("READONLY You can't write against a read only replica."),
			"r:6379"
		);
		expect(err).toMatchObject({
			type: "STORE_REFUSED",
			message: expect.stringContaining("Point STORE at the primary"),
			data: { reply: "READONLY" }
		});
	});

	it.each([
		["LOADING Redis is loading the dataset in memory", "loading its data set"],
		["BUSY Redis is busy running a script. You can only call SCRIPT KILL", "busy"],
		[
			"MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
			"primary"
		]
	])("answers %s with a retryable STORE_UNAVAILABLE that says Redis answered", (text, words) => {
		const err = redisError(reply(text), "r:6379");
		expect(err).toBeInstanceOf(StoreUnavailableError);
		expect(err).toMatchObject({
			code: 503,
			retryable: true,
			message: expect.stringContaining(words),
			data: { reply: text.split(" ")[0] }
		});
	});

	it("says the connection is down, or the answer is late, without ioredis's words", () => {
		const down = redisError(
			new Error(
				'Reached the max retries per request limit (which is 0). Refer to "maxRetriesPerRequest" option for details.'
			),
			"127.0.0.1:6379"
		);
		expect(down).toBeInstanceOf(StoreUnavailableError);
		expect(down).toMatchObject({
			message:
				"The store is unavailable: Redis at 127.0.0.1:6379 is not reachable (the connection is down)"
		});
		expect((down as StoreUnavailableError).data).not.toHaveProperty("reply");
		expect(redisError(new Error("Command timed out"), "h:1")).toMatchObject({
			message: "The store is unavailable: Redis at h:1 did not answer in time"
		});
	});

	it("passes any other reply on as it is: a fault of ours", () => {
		const err = reply("ERR wrong number of arguments for 'hset' command");
		expect(redisError(err, "h:1")).toBe(err);
	});
});
