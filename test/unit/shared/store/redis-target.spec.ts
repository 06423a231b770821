import { isRedisUrl, redisTarget } from "../../../../services/shared/store/redis-target";

describe("redisTarget", () => {
	it("hands redis:// and rediss:// URLs to ioredis as they are", () => {
		expect(redisTarget("redis://:pw@cache:6380/2")).toEqual({
			url: "redis://:pw@cache:6380/2",
			options: {},
			address: "cache:6380"
		});
		expect(redisTarget("rediss://cache").address).toBe("cache:6379");
	});

	it("reads the sentinels, the primary's name, its database and its credentials", () => {
		const t = redisTarget("redis-sentinel://app:s%40cret@s1:26380,s2,[::1]:26381/isa-main/3");
		expect(t.url).toBeNull();
		expect(t.options).toEqual({
			sentinels: [
				{ host: "s1", port: 26380 },
				{ host: "s2", port: 26379 },
				{ host: "::1", port: 26381 }
			],
			name: "isa-main",
			failoverDetector: true,
			db: 3,
			username: "app",
			password: "s@cret"
		});
		expect(t.address).toBe(
			"the primary 'isa-main' of the sentinels s1:26380,s2:26379,::1:26381"
		);
		expect(redisTarget("redis-sentinel://:pw@s1/isa").options).toMatchObject({
			password: "pw"
		});
		expect(redisTarget("redis-sentinel://s1/isa").options).not.toHaveProperty("password");
	});

	it.each([
		["redis-sentinel://s1:26379", /the primary's name is missing/],
		["redis-sentinel://s1/isa/x", /only a database number/],
		["redis-sentinel://s1/isa/1/2", /only a database number/],
		["redis-sentinel://s1:port/isa", /'s1:port' is not host\[:port\]/]
	])("refuses %s with the form to use", (url, why) => {
		expect(() => redisTarget(url)).toThrow(why);
		expect(() => redisTarget(url)).toThrow(/redis-sentinel:\/\/host:26379,host:26379/);
	});

	it("never names the password in an error", () => {
		expect(() => redisTarget("redis-sentinel://:hunter2@s1")).toThrow(
			/STORE redis-sentinel:\/\/:?\*\*\*/
		);
		expect(() => redisTarget("redis-sentinel://:hunter2@s1")).not.toThrow(/hunter2/);
	});

	it("knows the three schemes", () => {
		expect(["redis://a", "REDISS://a", "redis-sentinel://a/b"].map(isRedisUrl)).toEqual([
			true,
			true,
			true
		]);
		expect(["sqlite://a", "/var/isa.db", "nats://a"].map(isRedisUrl)).toEqual([
			false,
			false,
			false
		]);
	});
});
