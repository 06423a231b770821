import {
	collectSecrets,
	redactConfig,
	redactText,
	redactUrl
} from "../../../services/registry/secrets";

describe("redactUrl", () => {
	it.each([
		["postgres://app:s3cret@db:5432/x", "postgres://app:***@db:5432/x"],
		["redis://:s3cret@cache:6379/0", "redis://:***@cache:6379/0"],
		["bolt://neo4j:p%40ss@graph:7687", "bolt://neo4j:***@graph:7687"],
		// An unencoded "@" in the password: the authority ends at its last "@".
		["postgres://app:p@ss@db/x", "postgres://app:***@db/x"],
		[
			"https://s3.local/b?X-Amz-Security-Token=abc&region=eu&key=k1",
			"https://s3.local/b?X-Amz-Security-Token=***&region=eu&key=***"
		],
		[
			"postgres://db/x?sslmode=require&password=pw&secret=s&token=t",
			"postgres://db/x?sslmode=require&password=***&secret=***&token=***"
		],
		["http://qdrant:6333/#api_key=abc", "http://qdrant:6333/#api_key=***"]
	])("%s → %s", (url, redacted) => expect(redactUrl(url)).toBe(redacted));

	it.each([
		["a URL without credentials", "http://svc:8080/health?verbose=1"],
		["a user name alone", "postgres://postgres@db:5432/postgres"],
		["a path", "/var/lib/isa/data.duckdb"],
		["host:port", "cache:6379"]
	])("keeps %s as it is", (_what, url) => expect(redactUrl(url)).toBe(url));
});

describe("redactConfig", () => {
	it("masks values under secret keys at any depth, whatever their type", () => {
		const config = {
			username: "app",
			password: "pw",
			apiKey: "k",
			accessToken: 42,
			tls: { ca: "/etc/ca.pem", passphrase: "pp", clientSecret: "cs" },
			credentials: { user: "u", pass: "p" },
			replicas: [{ host: "r1", Password: "x" }],
			keyPrefix: "isa:",
			timeoutMs: 100
		};
		expect(redactConfig(config)).toEqual({
			username: "app",
			password: "***",
			apiKey: "***",
			accessToken: "***",
			tls: { ca: "/etc/ca.pem", passphrase: "***", clientSecret: "***" },
			credentials: "***",
			replicas: [{ host: "r1", Password: "***" }],
			keyPrefix: "***",
			timeoutMs: 100
		});
	});

	it("redacts URLs in other values and leaves the input alone", () => {
		const config = { upstream: "http://u:pw@svc/x", hosts: ["redis://:pw@a:6379"] };
		expect(redactConfig(config)).toEqual({
			upstream: "http://u:***@svc/x",
			hosts: ["redis://:***@a:6379"]
		});
		expect(config.upstream).toBe("http://u:pw@svc/x");
	});

	it("passes scalars and null through", () => {
		expect(redactConfig(null)).toBeNull();
		expect(redactConfig(7)).toBe(7);
		expect(redactConfig({ enabled: true, nothing: null })).toEqual({
			enabled: true,
			nothing: null
		});
	});
});

describe("collectSecrets", () => {
	it("finds the URL password, secret query values and secret config strings", () => {
		const secrets = collectSecrets("postgres://app:p%40ss@db/x?sslpassword=sp&mode=a", {
			password: "cfg-pw",
			nested: { token: "tok", note: "not secret" },
			mirror: "redis://:mirror-pw@m:6379",
			port: 5432
		});
		expect(secrets.sort()).toEqual(
			["p%40ss", "p@ss", "sp", "cfg-pw", "tok", "mirror-pw"].sort()
		);
	});

	it("finds nothing in an endpoint without secrets", () => {
		expect(collectSecrets("http://svc:8080/health", { path: "/x" })).toEqual([]);
	});
});

describe("redactText", () => {
	it("masks each secret, the longest first", () => {
		expect(redactText("auth failed for pw and pw2", ["pw", "pw2"])).toBe(
			"auth failed for *** and ***"
		);
	});

	it("masks passwords and secret parameters of URLs it quotes", () => {
		expect(
			redactText(
				"getaddrinfo ENOTFOUND db (postgres://app:hunter2@db:5432/x?token=t1 tried)",
				[]
			)
		).toBe("getaddrinfo ENOTFOUND db (postgres://app:***@db:5432/x?token=*** tried)");
	});

	it("leaves text without secrets as it is", () => {
		const text = "connect ECONNREFUSED 127.0.0.1:5432";
		expect(redactText(text, [])).toBe(text);
		expect(redactText(text, [""])).toBe(text);
	});
});
