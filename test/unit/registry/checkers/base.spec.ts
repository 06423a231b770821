import {
	CheckTarget,
	localPath,
	parseEndpoint,
	ProbeChecker,
	Scope,
	splitCredentials
} from "../../../../services/registry/checkers/base";

const target = (more: Partial<CheckTarget> = {}): CheckTarget => ({
	type: "unit",
	endpoint: "unit://app:s3cret@host:1",
	config: {},
	timeoutMs: 1000,
	...more
});

/** A checker whose probe is the test's function. */
class FakeChecker extends ProbeChecker {
	constructor(private readonly run: (t: CheckTarget, scope: Scope) => Promise<void>) {
		super();
	}
	protected probe(t: CheckTarget, scope: Scope): Promise<void> {
		return this.run(t, scope);
	}
}

describe("ProbeChecker", () => {
	it("is ok when the probe resolves, with the latency measured", async () => {
		const result = await new FakeChecker(async () => undefined).check(target());
		expect(result.ok).toBe(true);
		expect(result.error).toBeUndefined();
		expect(result.latencyMs).toBeGreaterThanOrEqual(0);
	});

	it("turns a thrown error into one line with the target's secrets masked", async () => {
		const result = await new FakeChecker(async () => {
			throw new Error("login as app with\n  s3cret refused");
		}).check(target());
		expect(result).toMatchObject({ ok: false, error: "login as app with *** refused" });
	});

	it("names each distinct cause of an AggregateError once", async () => {
		const refused = new Error("connect ECONNREFUSED");
		const result = await new FakeChecker(async () => {
			throw new AggregateError([refused, refused, new Error("connect EHOSTUNREACH")]);
		}).check(target());
		expect(result.error).toBe("connect ECONNREFUSED; connect EHOSTUNREACH");
	});

	it("cuts a long error line to 300 characters", async () => {
		const result = await new FakeChecker(async () => {
			throw new Error("x".repeat(1000));
		}).check(target());
		expect(result.error).toHaveLength(300);
		expect(result.error!.endsWith("…")).toBe(true);
	});

	it("times a probe out, naming its step, and closes what it opened", async () => {
		const closed: string[] = [];
		const started = Date.now();
		const result = await new FakeChecker((_t, scope) => {
			scope.onClose(() => closed.push("first"));
			scope.onClose(() => closed.push("second"));
			scope.step = "handshake";
			return new Promise<void>(() => undefined);
		}).check(target({ timeoutMs: 50 }));
		expect(result).toMatchObject({ ok: false, error: "timed out after 50 ms (handshake)" });
		expect(Date.now() - started).toBeLessThan(1000);
		expect(closed).toEqual(["second", "first"]);
	});

	it("closes on success too, and a failing close does not change the result", async () => {
		const closed: string[] = [];
		const result = await new FakeChecker(async (_t, scope) => {
			scope.onClose(() => closed.push("client"));
			scope.onClose(() => {
				throw new Error("already closed");
			});
		}).check(target());
		expect(result.ok).toBe(true);
		expect(closed).toEqual(["client"]);
	});
});

describe("Scope", () => {
	it("closes at once what is handed to it after it closed (a late connect)", async () => {
		const scope = new Scope();
		await scope.close();
		let closed = false;
		scope.onClose(() => {
			closed = true;
		});
		await new Promise(resolve => setImmediate(resolve));
		expect(closed).toBe(true);
	});
});

describe("endpoint helpers", () => {
	it("adds the default scheme to host:port, and refuses what is no URL", () => {
		expect(parseEndpoint("cache:6379", "redis").href).toBe("redis://cache:6379");
		expect(parseEndpoint("http://svc:8080/x", "tcp").href).toBe("http://svc:8080/x");
		expect(() => parseEndpoint("http://bad host/", "http")).toThrow(
			"invalid endpoint 'http://bad host/'"
		);
	});

	it("takes credentials from the URL (decoded), else from config, and strips them", () => {
		const fromUrl = splitCredentials(
			target({ endpoint: "postgres://app:p%40ss@db:5432/x", config: { user: "other" } }),
			"postgres"
		);
		expect(fromUrl).toMatchObject({ user: "app", password: "p@ss" });
		expect(fromUrl.url.href).toBe("postgres://db:5432/x");

		const fromConfig = splitCredentials(
			target({ endpoint: "db:5432", config: { username: "u", password: "pw" } }),
			"postgres"
		);
		expect(fromConfig).toMatchObject({ user: "u", password: "pw" });
		expect(splitCredentials(target({ endpoint: "db", config: { user: "v" } }), "x").user).toBe(
			"v"
		);

		const none = splitCredentials(target({ endpoint: "db:1", config: { password: "" } }), "x");
		expect(none.user).toBeUndefined();
		expect(none.password).toBeUndefined();
	});

	it("reads a local path from scheme:///path or a bare path", () => {
		expect(localPath("duckdb:///var/lib/a%20b.duckdb", "duckdb")).toBe("/var/lib/a b.duckdb");
		expect(localPath("FILE:///data", "file")).toBe("/data");
		expect(localPath("/data/x.duckdb", "duckdb")).toBe("/data/x.duckdb");
	});
});
