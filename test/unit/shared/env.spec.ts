import { loadEnv, parseLabels } from "../../../services/shared/env";

describe("loadEnv", () => {
	it("has defaults that start a single node on loopback", () => {
		const env = loadEnv({});
		expect(env).toMatchObject({
			host: "127.0.0.1",
			port: 3000,
			transporter: null,
			services: null,
			reportInterval: 2000,
			jwtSecret: null
		});
		expect(env.store).toMatch(/data[/\\]isa\.db$/);
	});

	it("reads every documented variable", () => {
		const env = loadEnv({
			NODEID: "gpu-1",
			PORT: "4000",
			HOST: "0.0.0.0",
			TRANSPORTER: "nats://127.0.0.1:4222",
			STORE: "redis://127.0.0.1:6379",
			SERVICES: "agent, nodes",
			NAMESPACE: "prod",
			ISA_NODE_LABELS: "zone=eu-1,gpu=a100",
			ISA_REPORT_INTERVAL: "0.5",
			ISA_JWT_SECRET: "s",
			ISA_JWT_PREVIOUS_SECRETS: "old-1, old-2",
			ISA_JWT_JWKS: "/etc/isa/jwks.json",
			ISA_JWT_ISSUER: "isa",
			ISA_JWT_AUDIENCE: "isa-api",
			ISA_JWT_CLOCK_TOLERANCE: "1m",
			ISA_TENANT: "lab",
			ISA_TOKEN: "t0k",
			ISA_APPLY: "configs/isa-platform.yaml"
		});
		expect(env).toMatchObject({
			nodeID: "gpu-1",
			port: 4000,
			host: "0.0.0.0",
			transporter: "nats://127.0.0.1:4222",
			store: "redis://127.0.0.1:6379",
			services: ["agent", "nodes"],
			namespace: "prod",
			labels: { zone: "eu-1", gpu: "a100" },
			reportInterval: 500,
			jwtSecret: "s",
			jwtPreviousSecrets: ["old-1", "old-2"],
			jwtJwks: "/etc/isa/jwks.json",
			jwtIssuer: "isa",
			jwtAudience: "isa-api",
			jwtClockTolerance: 60,
			tenant: "lab",
			token: "t0k",
			applyFile: "configs/isa-platform.yaml"
		});
		expect(loadEnv({}).jwtClockTolerance).toBe(30);
	});

	it("says what is wrong with a bad value", () => {
		expect(() => loadEnv({ PORT: "http" })).toThrow(/PORT='http' is not a number/);
		expect(() => loadEnv({ SERVICES: "agent,shceduler" })).toThrow(
			/unknown services: shceduler/
		);
		expect(() => parseLabels("zone eu")).toThrow(/key=value/);
		expect(() => loadEnv({ ISA_JWT_CLOCK_TOLERANCE: "soon" })).toThrow(
			/ISA_JWT_CLOCK_TOLERANCE 'soon' is not a duration/
		);
		expect(() => loadEnv({ STORE: "redis-sentinel://s1:26379" })).toThrow(
			/STORE redis-sentinel:\/\/s1:26379: the primary's name is missing/
		);
		expect(() => loadEnv({ ISA_REDIS_WAIT_REPLICAS: "1.5" })).toThrow(
			/ISA_REDIS_WAIT_REPLICAS='1.5' is not a whole number/
		);
	});

	it("reads the Redis replicas a write waits for: none by default, 1 s at most", () => {
		expect(loadEnv({}).redisWait).toEqual({ replicas: 0, timeoutMs: 1000 });
		expect(
			loadEnv({ ISA_REDIS_WAIT_REPLICAS: "2", ISA_REDIS_WAIT_TIMEOUT: "250ms" }).redisWait
		).toEqual({ replicas: 2, timeoutMs: 250 });
	});

	it("reads ISA_DISRUPTION_THRESHOLD as a share or a percentage, 50% by default", () => {
		expect(loadEnv({}).disruptionThreshold).toBe(0.5);
		expect(loadEnv({ ISA_DISRUPTION_THRESHOLD: "0.75" }).disruptionThreshold).toBe(0.75);
		expect(loadEnv({ ISA_DISRUPTION_THRESHOLD: "30%" }).disruptionThreshold).toBe(0.3);
		for (const bad of ["1.5", "-0.1", "half", "%", "120%"])
			expect(() => loadEnv({ ISA_DISRUPTION_THRESHOLD: bad })).toThrow(
				expect.objectContaining({
					type: "INVALID_INPUT",
					data: { name: "ISA_DISRUPTION_THRESHOLD", value: bad }
				})
			);
	});

	it("reads the HTTP server's deadlines as durations: 10 s for headers, 30 s in all", () => {
		expect(loadEnv({})).toMatchObject({
			httpHeadersTimeout: 10_000,
			httpRequestTimeout: 30_000
		});
		expect(
			loadEnv({ ISA_HTTP_HEADERS_TIMEOUT: "2s", ISA_HTTP_REQUEST_TIMEOUT: "1m" })
		).toMatchObject({ httpHeadersTimeout: 2000, httpRequestTimeout: 60_000 });
		expect(() => loadEnv({ ISA_HTTP_HEADERS_TIMEOUT: "0" })).toThrow(
			/ISA_HTTP_HEADERS_TIMEOUT must be a positive duration/
		);
		expect(() => loadEnv({ ISA_HTTP_HEADERS_TIMEOUT: "1m" })).toThrow(
			/must not be longer than ISA_HTTP_REQUEST_TIMEOUT/
		);
	});

	it("reads the shutdown grace (10 s) and the transporter's start wait (30 s) as durations", () => {
		expect(loadEnv({})).toMatchObject({
			shutdownGrace: 10_000,
			transporterConnectTimeout: 30_000
		});
		expect(
			loadEnv({ ISA_SHUTDOWN_GRACE: "0", ISA_TRANSPORTER_TIMEOUT: "500ms" })
		).toMatchObject({ shutdownGrace: 0, transporterConnectTimeout: 500 });
		expect(() => loadEnv({ ISA_SHUTDOWN_GRACE: "soon" })).toThrow(/ISA_SHUTDOWN_GRACE/);
		expect(() => loadEnv({ ISA_TRANSPORTER_TIMEOUT: "0" })).toThrow(
			/ISA_TRANSPORTER_TIMEOUT must be a positive duration/
		);
	});

	it("reads the leader lease (8 s), at least 1 s", () => {
		expect(loadEnv({}).leaderLease).toBe(8000);
		expect(loadEnv({ ISA_LEADER_LEASE: "15s" }).leaderLease).toBe(15_000);
		expect(() => loadEnv({ ISA_LEADER_LEASE: "500ms" })).toThrow(
			/ISA_LEADER_LEASE must be at least 1s/
		);
	});

	it("audits by default, keeps 1,000,000 records for 90 days, and reads the audit switches", () => {
		expect(loadEnv({})).toMatchObject({
			audit: true,
			auditKey: null,
			auditMaxRecords: 1_000_000,
			auditMaxAge: 90 * 86_400_000,
			trustProxy: false
		});
		expect(
			loadEnv({
				ISA_AUDIT: "off",
				ISA_AUDIT_KEY: "k",
				ISA_AUDIT_MAX_RECORDS: "0",
				ISA_AUDIT_MAX_AGE: "0",
				ISA_TRUST_PROXY: "true",
				SERVICES: "audit,gateway"
			})
		).toMatchObject({
			audit: false,
			auditKey: "k",
			auditMaxRecords: null,
			auditMaxAge: null,
			trustProxy: true,
			services: ["audit", "gateway"]
		});
		expect(loadEnv({ ISA_AUDIT_MAX_AGE: "7d" }).auditMaxAge).toBe(7 * 86_400_000);
		expect(() => loadEnv({ ISA_AUDIT: "maybe" })).toThrow(/ISA_AUDIT='maybe' is not on or off/);
		expect(() => loadEnv({ ISA_AUDIT_MAX_AGE: "long" })).toThrow(/ISA_AUDIT_MAX_AGE/);
	});

	it("limits reads 50/s and writes 10/s per tenant, half of that per token, 20 failed tokens a minute", () => {
		expect(loadEnv({}).rateLimits).toEqual({
			enabled: true,
			tenant: { reads: 50, writes: 10 },
			subjectShare: 0.5,
			authFailures: 20
		});
		expect(
			loadEnv({
				ISA_RATE_LIMITS: "off",
				ISA_RATE_READS: "200",
				ISA_RATE_WRITES: "40",
				ISA_RATE_SUBJECT_SHARE: "100%",
				ISA_RATE_AUTH_FAILURES: "5"
			}).rateLimits
		).toEqual({
			enabled: false,
			tenant: { reads: 200, writes: 40 },
			subjectShare: 1,
			authFailures: 5
		});
		expect(() => loadEnv({ ISA_RATE_READS: "0" })).toThrow(/ISA_RATE_READS/);
		expect(() => loadEnv({ ISA_RATE_SUBJECT_SHARE: "0" })).toThrow(/more than 0/);
		expect(() => loadEnv({ ISA_RATE_LIMITS: "maybe" })).toThrow(/not on or off/);
		expect(loadEnv({ ISA_TRUST_PROXY: "10.0.0.0/8" }).trustProxy).toMatchObject({
			list: ["10.0.0.0/8"]
		});
	});

	it("keeps down nodes 24 h by default; ISA_NODE_RETENTION is a duration, 0 keeps them", () => {
		expect(loadEnv({}).nodeRetention).toBe(86_400_000);
		expect(loadEnv({ ISA_NODE_RETENTION: "90m" }).nodeRetention).toBe(90 * 60_000);
		expect(loadEnv({ ISA_NODE_RETENTION: "0" }).nodeRetention).toBeNull();
		expect(() => loadEnv({ ISA_NODE_RETENTION: "soon" })).toThrow(
			expect.objectContaining({
				type: "INVALID_INPUT",
				data: expect.objectContaining({ field: "ISA_NODE_RETENTION" })
			})
		);
	});

	it("says whether STORE was given, apart from the embedded default", () => {
		expect(loadEnv({}).storeGiven).toBe(false);
		expect(loadEnv({ STORE: "redis://127.0.0.1:6379" }).storeGiven).toBe(true);
	});

	it("reads the queues' bounds as whole numbers and ISA_SHED_LAG as a duration (0: off)", () => {
		expect(loadEnv({})).toMatchObject({
			queueCreates: 1000,
			queueTenantCreates: 100,
			queueScheduler: 1000,
			queueHealthChecks: 64,
			shedLag: 200
		});
		expect(loadEnv({ ISA_QUEUE_TENANT_CREATES: "8" }).queueTenantCreates).toBe(8);
		expect(loadEnv({ ISA_SHED_LAG: "1s" }).shedLag).toBe(1000);
		expect(loadEnv({ ISA_SHED_LAG: "0" }).shedLag).toBeNull();
		expect(loadEnv({}).shedBusy).toBe(0.5);
		expect(loadEnv({ ISA_SHED_BUSY: "80%" }).shedBusy).toBe(0.8);
		for (const off of ["0", "1"]) expect(loadEnv({ ISA_SHED_BUSY: off }).shedBusy).toBeNull();
		expect(() => loadEnv({ ISA_SHED_BUSY: "1.5" })).toThrow(
			expect.objectContaining({
				type: "INVALID_INPUT",
				data: expect.objectContaining({ name: "ISA_SHED_BUSY" })
			})
		);
		for (const value of ["0", "2.5", "many"])
			expect(() => loadEnv({ ISA_QUEUE_CREATES: value })).toThrow(
				expect.objectContaining({
					type: "INVALID_INPUT",
					data: expect.objectContaining({ name: "ISA_QUEUE_CREATES" })
				})
			);
	});
});

describe("bus and store credentials", () => {
	it("reads ISA_NATS_*, ISA_REDIS_* and ISA_CLUSTER_KEY", () => {
		const env = loadEnv({
			TRANSPORTER: "tls://n:4222",
			ISA_NATS_CA: "/ca.pem",
			ISA_NATS_CERT: "/c.pem",
			ISA_NATS_KEY: "/c.key",
			ISA_NATS_USER: "isa",
			ISA_NATS_PASSWORD: "pw",
			STORE: "rediss://r:6380",
			ISA_REDIS_CA: "/rca.pem",
			ISA_REDIS_PASSWORD: "rpw",
			ISA_CLUSTER_KEY: "k"
		});
		expect(env.nats).toEqual({
			tls: { ca: "/ca.pem", cert: "/c.pem", key: "/c.key" },
			user: "isa",
			password: "pw",
			token: null,
			creds: null,
			nkey: null
		});
		expect(env.redis).toEqual({
			tls: { ca: "/rca.pem", cert: null, key: null },
			username: null,
			password: "rpw"
		});
		expect(env.clusterKey).toBe("k");
	});

	it("refuses settings that do not go together", () => {
		expect(() => loadEnv({ ISA_NATS_CERT: "/c.pem" })).toThrow(
			/ISA_NATS_CERT and ISA_NATS_KEY/
		);
		expect(() => loadEnv({ ISA_NATS_PASSWORD: "pw" })).toThrow(/needs ISA_NATS_USER/);
		expect(() => loadEnv({ ISA_NATS_USER: "u", ISA_NATS_TOKEN: "t" })).toThrow(
			/one kind of NATS credentials, not ISA_NATS_USER and ISA_NATS_TOKEN/
		);
		expect(() => loadEnv({ ISA_REDIS_USERNAME: "u" })).toThrow(/needs ISA_REDIS_PASSWORD/);
		// A CA for a plain connection would leave the store in clear text.
		expect(() => loadEnv({ STORE: "redis://r:6379", ISA_REDIS_CA: "/ca.pem" })).toThrow(
			/not a rediss:\/\/ URL/
		);
	});

	it("serves HTTPS with ISA_TLS_CERT and ISA_TLS_KEY together; a client CA needs them", () => {
		expect(loadEnv({})).toMatchObject({ tlsCert: null, tlsKey: null, tlsClientCa: null });
		expect(
			loadEnv({ ISA_TLS_CERT: "/c.pem", ISA_TLS_KEY: "/k.pem", ISA_TLS_CLIENT_CA: "/ca.pem" })
		).toMatchObject({ tlsCert: "/c.pem", tlsKey: "/k.pem", tlsClientCa: "/ca.pem" });
		expect(() => loadEnv({ ISA_TLS_CERT: "/c.pem" })).toThrow(
			/ISA_TLS_CERT and ISA_TLS_KEY go together/
		);
		expect(() => loadEnv({ ISA_TLS_KEY: "/k.pem" })).toThrow(
			expect.objectContaining({ data: { name: "ISA_TLS_CERT" } })
		);
		expect(() => loadEnv({ ISA_TLS_CLIENT_CA: "/ca.pem" })).toThrow(
			/ISA_TLS_CLIENT_CA needs ISA_TLS_CERT and ISA_TLS_KEY/
		);
	});
});
