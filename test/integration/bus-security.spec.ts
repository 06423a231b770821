/**
 * The control bus and the store, secured: a real nats-server with TLS (client certificates
 * required) and a user/password, a real redis-server on TLS only with `requirepass`, both with
 * certificates that openssl makes here. A gateway, a control node and an agent (OS processes)
 * form a cluster with the credentials; a client without them, or trusting another CA, cannot
 * connect; and a broker that joins with valid bus credentials but without the cluster key can
 * neither claim a user (an admin) nor act as the control plane.
 */
import fs from "fs";
import os from "os";
import path from "path";
import { Errors, ServiceBroker } from "moleculer";
import { connect, type ConnectionOptions } from "nats";
import { mintToken } from "../../services/gateway/jwt";
import { loadEnv } from "../../services/shared/env";
import { natsTransporter, redisConnection } from "../../services/shared/connections";
import { SignedPrincipals } from "../../services/shared/signed-principal";
import { RedisStore } from "../../services/shared/store";
import { makeCertificates, TestCertificates } from "../helpers/certs";
import { eventually, NodeProcess, startNode } from "../helpers/cluster";
import { freePort, startNats, startRedis, TestServer } from "../helpers/servers";

jest.setTimeout(60_000);

const SECRET = "bus-security-secret";
const CLUSTER_KEY = "bus-security-cluster-key";
const NATS_USER = "isa";
const NATS_PASSWORD = "bus-password";
const REDIS_PASSWORD = "store-password";
const ADMIN = { sub: "mallory", tenant: "t1", roles: ["admin"], exp: 4102444800 };

/** What a call rejects with. */
async function failure(promise: Promise<unknown>): Promise<Errors.MoleculerError> {
	try {
		await promise;
	} catch (err) {
		return err as Errors.MoleculerError;
	}
	throw new Error("The call did not fail.");
}

describe("bus and store with TLS and credentials", () => {
	let certs: TestCertificates;
	let nats: TestServer;
	let redis: TestServer;
	let port: number;
	let token: string;
	let common: Record<string, string>;
	const nodes: NodeProcess[] = [];
	const brokers: ServiceBroker[] = [];
	const dirs: string[] = [];

	const api = async (route: string, init: RequestInit = {}) => {
		const res = await fetch(`http://127.0.0.1:${port}${route}`, {
			...init,
			headers: {
				Authorization: `Bearer ${token}`,
				"Content-Type": "application/json"
			}
		});
		return { status: res.status, body: (await res.json()) as any };
	};
	const dataDir = () => {
		const dir = fs.mkdtempSync(path.join(os.tmpdir(), "isa-bus-"));
		dirs.push(dir);
		return dir;
	};

	/** A broker of the test's own on the bus, with the environment's bus settings. */
	async function joiner(
		name: string,
		env: Record<string, string>,
		middlewares: ServiceBroker["options"]["middlewares"] = []
	) {
		const broker = new ServiceBroker({
			nodeID: `${name}-${process.pid}`,
			namespace: common.NAMESPACE,
			transporter: natsTransporter(loadEnv(env)) as any,
			middlewares,
			logger: false
		});
		brokers.push(broker);
		await broker.start();
		await broker.waitForServices(["scheduler", "config"], 20_000);
		return broker;
	}

	/** A raw NATS connection attempt with these options over the suite's TLS server. */
	const natsConnect = (opts: ConnectionOptions) =>
		connect({
			servers: `127.0.0.1:${nats.port}`,
			reconnect: false,
			timeout: 3000,
			...opts
		});

	beforeAll(async () => {
		certs = makeCertificates();
		nats = await startNats(undefined, {
			dir: certs.dir,
			config: [
				"tls {",
				`  cert_file: "${certs.server.cert}"`,
				`  key_file: "${certs.server.key}"`,
				`  ca_file: "${certs.ca}"`,
				"  verify: true",
				"  timeout: 3",
				"}",
				`authorization { user: "${NATS_USER}", password: "${NATS_PASSWORD}" }`
			].join("\n")
		});
		redis = await startRedis(undefined, {
			password: REDIS_PASSWORD,
			tls: { ...certs.server, ca: certs.ca, clients: "yes" }
		});
		port = await freePort();
		token = await mintToken({
			secret: SECRET,
			ttl: 600,
			sub: "ann",
			tenant: "t1",
			roles: ["admin"]
		});
		common = {
			TRANSPORTER: `tls://127.0.0.1:${nats.port}`,
			ISA_NATS_CA: certs.ca,
			ISA_NATS_CERT: certs.client.cert,
			ISA_NATS_KEY: certs.client.key,
			ISA_NATS_USER: NATS_USER,
			ISA_NATS_PASSWORD: NATS_PASSWORD,
			STORE: redis.url,
			ISA_REDIS_CA: certs.ca,
			ISA_REDIS_CERT: certs.client.cert,
			ISA_REDIS_KEY: certs.client.key,
			ISA_REDIS_PASSWORD: REDIS_PASSWORD,
			NAMESPACE: `bus-security-${process.pid}`,
			ISA_JWT_SECRET: SECRET,
			ISA_REPORT_INTERVAL: "0.5"
		};
		// Each node its own data directory: the cluster key comes from the environment, and only
		// the control plane has it (the agent is given none).
		const control = { ...common, ISA_CLUSTER_KEY: CLUSTER_KEY };
		nodes.push(
			startNode("control", {
				...control,
				ISA_DATA_DIR: dataDir(),
				SERVICES: "nodes,scheduler,tenants,registry,config,monitor,audit"
			}),
			startNode("gateway", {
				...control,
				ISA_DATA_DIR: dataDir(),
				SERVICES: "gateway",
				PORT: String(port)
			}),
			startNode("agent-1", { ...common, ISA_DATA_DIR: dataDir(), SERVICES: "agent" })
		);
	});

	afterAll(async () => {
		await Promise.all(brokers.map(b => b.stop().catch(() => undefined)));
		await Promise.all(nodes.map(n => n.stop()));
		await Promise.all([nats?.stop(), redis?.stop()]);
		for (const dir of [...dirs, certs?.dir])
			if (dir) fs.rmSync(dir, { recursive: true, force: true });
	});

	afterEach(() => {
		const state = expect.getState();
		if (state.assertionCalls > state.numPassingAsserts)
			for (const n of nodes) console.log(`--- ${n.nodeID}\n${n.output().slice(-3000)}`);
	});

	it("forms the cluster over TLS with credentials; a user's calls pass between nodes", async () => {
		const listed = await eventually(
			async () => {
				const { status, body } = await api("/api/v1/nodes");
				return (
					status === 200 &&
					body.items.some((n: any) => n.id === "agent-1" && n.status === "ready") &&
					body
				);
			},
			40_000,
			"agent-1 ready through the gateway"
		);
		expect(listed.items.map((n: any) => n.id)).toContain("agent-1");
		// A write: the gateway's node signs, the control node verifies, audits and stores it.
		const set = await api("/api/v1/config/bus.test", {
			method: "PUT",
			body: JSON.stringify({ value: { tls: true } })
		});
		expect(set.status).toBe(200);
		expect((await api("/api/v1/config/bus.test")).body.value).toEqual({ tls: true });
		expect((await api("/api/v1/workloads")).status).toBe(200);
	});

	it("refuses a NATS client without credentials, without a client certificate, or trusting another CA", async () => {
		const tls = { caFile: certs.ca, certFile: certs.client.cert, keyFile: certs.client.key };
		const ok = await natsConnect({ tls, user: NATS_USER, pass: NATS_PASSWORD });
		await ok.close();

		const noCredentials = await failure(natsConnect({ tls }));
		expect(String(noCredentials)).toMatch(/Authorization Violation/i);

		const wrongPassword = await failure(natsConnect({ tls, user: NATS_USER, pass: "guess" }));
		expect(String(wrongPassword)).toMatch(/Authorization Violation/i);

		// The server asks for a client certificate (verify: true) that its CA signed.
		const noClientCert = await failure(
			natsConnect({ tls: { caFile: certs.ca }, user: NATS_USER, pass: NATS_PASSWORD })
		);
		// The server refuses the handshake: an alert, or the connection reset, depending on timing.
		expect(String(noClientCert)).toMatch(/certificate|ECONNRESET/i);
		const foreignClient = await failure(
			natsConnect({
				tls: {
					caFile: certs.ca,
					certFile: certs.foreignClient.cert,
					keyFile: certs.foreignClient.key
				},
				user: NATS_USER,
				pass: NATS_PASSWORD
			})
		);
		expect(String(foreignClient)).toMatch(/certificate|ECONNRESET/i);

		// A client that trusts another CA does not take the server for the cluster's.
		const wrongCa = await failure(
			natsConnect({
				tls: { ...tls, caFile: certs.foreignCa },
				user: NATS_USER,
				pass: NATS_PASSWORD
			})
		);
		expect(String(wrongCa)).toMatch(/self.signed|unable to verify|certificate/i);
	});

	it("refuses a Redis client without the password, without a client certificate, or trusting another CA", async () => {
		const ping = async (url: string, env: Record<string, string>) => {
			const store = new RedisStore(url, {
				prefix: "bus-security",
				connection: redisConnection(loadEnv({ STORE: url, ...env }).redis)
			});
			try {
				await store.ping();
			} finally {
				await store.close();
			}
		};
		const tls = {
			ISA_REDIS_CA: certs.ca,
			ISA_REDIS_CERT: certs.client.cert,
			ISA_REDIS_KEY: certs.client.key
		};
		await ping(redis.url, { ...tls, ISA_REDIS_PASSWORD: REDIS_PASSWORD });
		// The password may also be in the URL.
		await ping(`rediss://:${REDIS_PASSWORD}@127.0.0.1:${redis.port}`, tls);

		const noPassword = await failure(ping(redis.url, tls));
		expect(noPassword).toMatchObject({ code: 503, type: "STORE_UNAVAILABLE" });
		expect(String((noPassword.data as any).reason)).toMatch(/NOAUTH/);

		const noClientCert = await failure(
			ping(redis.url, { ISA_REDIS_CA: certs.ca, ISA_REDIS_PASSWORD: REDIS_PASSWORD })
		);
		expect(noClientCert).toMatchObject({ code: 503, type: "STORE_UNAVAILABLE" });
		expect(noClientCert.message).toMatch(/ECONNRESET|certificate/i);

		const wrongCa = await failure(
			ping(redis.url, {
				...tls,
				ISA_REDIS_CA: certs.foreignCa,
				ISA_REDIS_PASSWORD: REDIS_PASSWORD
			})
		);
		expect(wrongCa).toMatchObject({ code: 503, type: "STORE_UNAVAILABLE" });
		expect(wrongCa.message).toMatch(/certificate/i);
	});

	it("refuses a broker with valid bus credentials that forges a user or acts as the control plane", async () => {
		const intruder = await joiner("intruder", common);
		const asAdmin = { meta: { user: ADMIN } };

		const list = await failure(intruder.call("scheduler.list", {}, asAdmin));
		expect(list).toMatchObject({
			code: 401,
			type: "PRINCIPAL_UNVERIFIED",
			data: { action: "scheduler.list", sender: intruder.nodeID, reason: "unsigned" }
		});
		const set = await failure(
			intruder.call("config.set", { key: "bus.forged", value: 1 }, asAdmin)
		);
		expect(set).toMatchObject({ code: 401, type: "PRINCIPAL_UNVERIFIED" });
		// Without a user it would act as the control plane itself: refused as well.
		const asSystem = await failure(
			intruder.call("config.set", { key: "bus.forged", value: 2 })
		);
		expect(asSystem).toMatchObject({ code: 401, type: "PRINCIPAL_UNVERIFIED" });
		expect((await api("/api/v1/config/bus.forged")).status).toBe(404);
		// The control node says so in its log, once a minute per sender.
		await eventually(
			async () =>
				nodes[0]
					.output()
					.includes(`Refused 'scheduler.list' from node '${intruder.nodeID}'`),
			5000,
			"the refusal in the control node's log"
		);

		// Signing with a key of its own does not help.
		const guesser = await joiner("guesser", common, [SignedPrincipals(Buffer.from("guess"))]);
		const guessed = await failure(guesser.call("scheduler.list", {}, asAdmin));
		expect(guessed).toMatchObject({
			code: 401,
			type: "PRINCIPAL_UNVERIFIED",
			data: { reason: "tampered" }
		});

		// The same call from a holder of the cluster key (a REPL, say) is served.
		const operator = await joiner("operator", common, [
			SignedPrincipals(Buffer.from(CLUSTER_KEY))
		]);
		const served = await operator.call<{ items: unknown[] }, object>(
			"scheduler.list",
			{},
			asAdmin
		);
		expect(Array.isArray(served.items)).toBe(true);
	});

	it("drops a NODEID announced by a broker without the key: the control node neither stops nor vanishes", async () => {
		const control = nodes[0];
		const bus = await natsConnect({
			tls: { caFile: certs.ca, certFile: certs.client.cert, keyFile: certs.client.key },
			user: NATS_USER,
			pass: NATS_PASSWORD
		});
		const packet = (payload: Record<string, unknown>) =>
			Buffer.from(JSON.stringify({ ver: "4", sender: "control", ...payload }));
		try {
			// Moleculer stops a node that hears its own NODEID from another instance, and the
			// other nodes would take the forged, empty service list for the control node's.
			bus.publish(
				`MOL-${common.NAMESPACE}.INFO`,
				packet({
					services: [],
					ipList: ["127.0.0.1"],
					hostname: "intruder",
					client: { type: "nodejs", version: "0.14.36", langVersion: process.version },
					config: {},
					instanceID: "forged-instance",
					metadata: {},
					seq: 1000
				})
			);
			bus.publish(`MOL-${common.NAMESPACE}.DISCONNECT`, packet({}));
			await bus.flush();
		} finally {
			await bus.close();
		}
		await eventually(
			async () => /Dropped an unsigned INFO announcing node 'control'/.test(control.output()),
			10_000,
			"the control node dropping the forged INFO"
		);
		await eventually(
			async () =>
				/Dropped an unsigned DISCONNECT announcing node 'control'/.test(nodes[1].output()),
			10_000,
			"the gateway dropping the forged DISCONNECT"
		);
		expect(control.proc.exitCode).toBeNull();
		expect(control.output()).not.toMatch(/nodeID conflict/);
		// The gateway still reaches the control node's services.
		expect((await api("/api/v1/workloads")).status).toBe(200);
		expect((await api("/api/v1/config/bus.test")).status).toBe(200);
	});

	it("stops a node that cannot use its bus settings: 2 for an unreadable file, 5 for refused credentials, no secret printed", async () => {
		const exitOf = async (env: Record<string, string>) => {
			const node = startNode("misconfigured", {
				...common,
				ISA_DATA_DIR: dataDir(),
				SERVICES: "nodes",
				ISA_TRANSPORTER_TIMEOUT: "1s",
				...env
			});
			let stderr = "";
			node.proc.stderr!.on("data", d => (stderr += d));
			const code = await new Promise<number | null>(resolve =>
				node.proc.once("exit", status => resolve(status))
			);
			const lines = stderr.trim().split("\n");
			expect(lines.filter(l => /^\s+at /.test(l))).toEqual([]);
			return { code, last: lines[lines.length - 1] };
		};

		const noCa = await exitOf({ ISA_NATS_CA: path.join(certs.dir, "missing-ca.pem") });
		expect(noCa).toEqual({
			code: 2,
			last: `IsA Cloud: ISA_NATS_CA: cannot read ${path.join(certs.dir, "missing-ca.pem")} (ENOENT).`
		});
		const noRedisKey = await exitOf({ ISA_REDIS_KEY: path.join(certs.dir, "missing.key") });
		expect(noRedisKey.code).toBe(2);
		expect(noRedisKey.last).toMatch(/^IsA Cloud: ISA_REDIS_KEY: cannot read .*missing\.key/);

		// A wrong password in the URL: NATS accepts TCP and refuses the node.
		const wrong = `tls://${NATS_USER}:not-the-password@127.0.0.1:${nats.port}`;
		const refused = await exitOf({
			TRANSPORTER: wrong,
			ISA_NATS_USER: "",
			ISA_NATS_PASSWORD: ""
		});
		expect(refused).toEqual({
			code: 5,
			last:
				`IsA Cloud: cannot reach the transporter tls://127.0.0.1:${nats.port} (it accepts TCP ` +
				"but not this node's connection, waited 1s); start it, fix TRANSPORTER, or wait " +
				"longer with ISA_TRANSPORTER_TIMEOUT."
		});
	});
});
