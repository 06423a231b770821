/**
 * The gateway over HTTPS (ISA_TLS_CERT, ISA_TLS_KEY, ISA_TLS_CLIENT_CA) with certificates made
 * by `openssl` here (test/helpers/certs.ts): HTTP/1.1 and HTTP/2 by ALPN on one port, HSTS and
 * the security headers, client certificates when a client CA is set, a renewed certificate
 * taken without a restart while open connections go on, the event stream's single-use ticket,
 * and a node that refuses to start on unreadable files.
 */
import { spawnSync } from "child_process";
import fs from "fs";
import http2 from "http2";
import https from "https";
import type { IncomingHttpHeaders } from "http";
import os from "os";
import path from "path";
import tls from "tls";
import { ServiceBroker } from "moleculer";
import GatewayService from "../../services/gateway.service";
import { mintToken } from "../../services/gateway/jwt";
import { CONTENT_SECURITY_POLICY } from "../../services/gateway/headers";
import { fingerprint, TestCa, type Pair } from "../helpers/certs";
import { ENTRY, eventually, ROOT, startNode } from "../helpers/cluster";
import { freePort } from "../helpers/servers";
import { withSettings } from "../helpers/services";

const SECRET = "gateway-tls-secret";
jest.setTimeout(60_000);

interface Answer {
	status: number;
	headers: IncomingHttpHeaders;
	body: string;
	/** The server certificate's SHA-256 fingerprint, as this connection saw it. */
	peer: string;
	reused: boolean;
}

interface ClientOptions {
	ca: string;
	client?: Pair;
	agent?: https.Agent;
	method?: string;
	headers?: Record<string, string>;
	/** Resolve once the body holds this (for a stream), then drop the connection. */
	until?: string;
}

/** One HTTP/1.1 request over TLS. */
function h1(port: number, urlPath: string, opts: ClientOptions): Promise<Answer> {
	return new Promise((resolve, reject) => {
		const req = https.request(
			{
				host: "127.0.0.1",
				port,
				path: urlPath,
				method: opts.method ?? "GET",
				headers: opts.headers,
				ca: fs.readFileSync(opts.ca),
				...(opts.client
					? {
							cert: fs.readFileSync(opts.client.cert),
							key: fs.readFileSync(opts.client.key)
						}
					: {}),
				agent: opts.agent ?? false
			},
			res => {
				const socket = res.socket as tls.TLSSocket;
				const peer = socket.getPeerCertificate().fingerprint256;
				let body = "";
				const answer = () => ({
					status: res.statusCode!,
					headers: res.headers,
					body,
					peer,
					reused: req.reusedSocket
				});
				res.setEncoding("utf8");
				res.on("data", chunk => {
					body += chunk;
					if (opts.until && body.includes(opts.until)) {
						resolve(answer());
						req.destroy();
					}
				});
				res.on("end", () => resolve(answer()));
			}
		);
		req.on("error", reject);
		req.end();
	});
}

/** One request over an HTTP/2 session. */
function h2(
	session: http2.ClientHttp2Session,
	urlPath: string,
	until?: string
): Promise<{ headers: http2.IncomingHttpHeaders; body: string }> {
	return new Promise((resolve, reject) => {
		const stream = session.request({ ":path": urlPath });
		let headers: http2.IncomingHttpHeaders = {};
		let body = "";
		stream.setEncoding("utf8");
		stream.on("response", h => (headers = h));
		stream.on("data", chunk => {
			body += chunk;
			if (until && body.includes(until)) {
				resolve({ headers, body });
				stream.close();
			}
		});
		stream.on("end", () => resolve({ headers, body }));
		stream.on("error", reject);
	});
}

/** Puts a pair where the gateway reads it, as a renewal does: written aside, renamed over. */
function install(pair: Pair, live: Pair): void {
	for (const [from, to] of [
		[pair.cert, live.cert],
		[pair.key, live.key]
	]) {
		fs.copyFileSync(from, `${to}.new`);
		fs.renameSync(`${to}.new`, to);
	}
}

describe("gateway over HTTPS", () => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), "isa-tls-"));
	const ca = new TestCa(dir);
	const first = ca.issue("server-1", { server: true, cn: "localhost" });
	const second = ca.issue("server-2", { server: true, cn: "localhost" });
	const client = ca.issue("client", { cn: "ops-client" });
	const strangerCa = new TestCa(dir, "stranger-ca");
	const stranger = strangerCa.issue("stranger", { cn: "stranger" });
	const live: Pair = { cert: path.join(dir, "tls.crt"), key: path.join(dir, "tls.key") };
	install(first, live);

	const gatewayOn = (
		broker: ServiceBroker,
		clientCa: string | null,
		more: Record<string, unknown> = {}
	) =>
		broker.createService(
			withSettings(GatewayService, {
				port: 0,
				jwtSecret: SECRET,
				store: path.join(dir, `${broker.nodeID}.db`),
				dataDir: dir,
				tls: { ...live, clientCa },
				tlsReloadInterval: 100,
				...more
			})
		);
	const broker = new ServiceBroker({ nodeID: "tls", logger: false });
	const gateway = gatewayOn(broker, null);
	const mtlsBroker = new ServiceBroker({ nodeID: "mtls", logger: false });
	const mtlsGateway = gatewayOn(mtlsBroker, ca.cert);
	const portOf = (service: unknown) => ((service as any).server.address() as any).port;
	let port: number;
	let token: string;

	beforeAll(async () => {
		await Promise.all([broker.start(), mtlsBroker.start()]);
		port = portOf(gateway);
		token = await mintToken({
			secret: SECRET,
			sub: "ann",
			tenant: "acme",
			roles: ["viewer"],
			ttl: 600
		});
	});
	afterAll(async () => {
		await Promise.all([broker.stop(), mtlsBroker.stop()]);
		fs.rmSync(dir, { recursive: true, force: true });
	});

	it("answers HTTP/1.1 over TLS with HSTS and the security headers", async () => {
		const res = await h1(port, "/health", { ca: ca.cert });
		expect(res.status).toBe(200);
		expect(JSON.parse(res.body)).toEqual({ status: "ok" });
		expect(res.headers).toMatchObject({
			"strict-transport-security": "max-age=31536000",
			"x-content-type-options": "nosniff",
			"referrer-policy": "no-referrer",
			"content-security-policy": CONTENT_SECURITY_POLICY
		});
		const page = await h1(port, "/", { ca: ca.cert });
		expect(page.status).toBe(200);
		expect(page.headers["content-security-policy"]).toMatch(/frame-ancestors 'none'/);
		expect(page.headers["strict-transport-security"]).toBe("max-age=31536000");
	});

	it("speaks HTTP/2 to clients that offer h2, HTTP/1.1 to the others (ALPN)", async () => {
		const alpn = (protocols: string[]) =>
			new Promise<string | false>((resolve, reject) => {
				const socket = tls.connect(
					{
						host: "127.0.0.1",
						port,
						ca: fs.readFileSync(ca.cert),
						ALPNProtocols: protocols
					},
					() => {
						resolve(socket.alpnProtocol ?? false);
						socket.end();
					}
				);
				socket.on("error", reject);
			});
		expect(await alpn(["h2", "http/1.1"])).toBe("h2");
		expect(await alpn(["http/1.1"])).toBe("http/1.1");

		const session = http2.connect(`https://127.0.0.1:${port}`, {
			ca: fs.readFileSync(ca.cert)
		});
		try {
			const res = await h2(session, "/health");
			expect(res.headers[":status"]).toBe(200);
			expect(res.headers["strict-transport-security"]).toBe("max-age=31536000");
			expect(JSON.parse(res.body)).toEqual({ status: "ok" });
		} finally {
			session.close();
		}
	});

	it("refuses a plain HTTP request on the TLS port", async () => {
		const res = await fetch(`http://127.0.0.1:${port}/health`).then(
			r => r.status,
			() => "refused"
		);
		expect(res).not.toBe(200);
	});

	it("takes a renewed certificate for new connections; open ones keep working", async () => {
		const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
		const session = http2.connect(`https://127.0.0.1:${port}`, {
			ca: fs.readFileSync(ca.cert)
		});
		try {
			const before = await h1(port, "/health", { ca: ca.cert, agent });
			expect(before.peer).toBe(fingerprint(first.cert));
			expect((await h2(session, "/health")).headers[":status"]).toBe(200);

			install(second, live);
			await eventually(
				async () =>
					(await h1(port, "/health", { ca: ca.cert })).peer === fingerprint(second.cert),
				10_000,
				"the renewed certificate on a new connection"
			);

			// The kept-alive connection made before the renewal: the same socket, still served.
			const after = await h1(port, "/health", { ca: ca.cert, agent });
			expect(after).toMatchObject({
				status: 200,
				reused: true,
				peer: fingerprint(first.cert)
			});
			expect((await h2(session, "/health")).headers[":status"]).toBe(200);
		} finally {
			agent.destroy();
			session.close();
			install(first, live);
		}
	});

	it("keeps serving the old certificate when the renewed files do not match", async () => {
		await eventually(
			async () =>
				(await h1(port, "/health", { ca: ca.cert })).peer === fingerprint(first.cert),
			10_000,
			"the first certificate back"
		);
		// Only the certificate is replaced: it does not match the key.
		fs.copyFileSync(second.cert, `${live.cert}.new`);
		fs.renameSync(`${live.cert}.new`, live.cert);
		await new Promise(r => setTimeout(r, 400));
		const res = await h1(port, "/health", { ca: ca.cert });
		expect(res).toMatchObject({ status: 200, peer: fingerprint(first.cert) });
		install(first, live);
	});

	it("requires a client certificate of ISA_TLS_CLIENT_CA when it is set", async () => {
		const mtls = portOf(mtlsGateway);
		await expect(h1(mtls, "/health", { ca: ca.cert })).rejects.toThrow();
		await expect(h1(mtls, "/health", { ca: ca.cert, client: stranger })).rejects.toThrow();
		const ok = await h1(mtls, "/health", { ca: ca.cert, client });
		expect(ok.status).toBe(200);
	});

	describe("the event stream's ticket", () => {
		const ticket = async () => {
			const res = await h1(port, "/api/v1/events/ticket", {
				ca: ca.cert,
				method: "POST",
				headers: { Authorization: `Bearer ${token}` }
			});
			expect(res.status).toBe(200);
			return JSON.parse(res.body) as { ticket: string; expiresIn: number };
		};

		it("opens the stream once with a ticket from an authenticated POST", async () => {
			const t = await ticket();
			expect(t.expiresIn).toBe(30);
			const stream = await h1(port, `/api/v1/events?ticket=${encodeURIComponent(t.ticket)}`, {
				ca: ca.cert,
				until: "event: hello"
			});
			expect(stream.status).toBe(200);
			expect(stream.headers["content-type"]).toMatch(/^text\/event-stream/);
			expect(stream.body).toMatch(/"sub":"ann","tenant":"acme"/);

			const again = await h1(port, `/api/v1/events?ticket=${encodeURIComponent(t.ticket)}`, {
				ca: ca.cert
			});
			expect(again.status).toBe(401);
			expect(JSON.parse(again.body)).toMatchObject({ code: 401, type: "TICKET_USED" });
		});

		it("streams over HTTP/2 too", async () => {
			const t = await ticket();
			const session = http2.connect(`https://127.0.0.1:${port}`, {
				ca: fs.readFileSync(ca.cert)
			});
			try {
				const res = await h2(
					session,
					`/api/v1/events?ticket=${encodeURIComponent(t.ticket)}`,
					"event: hello"
				);
				expect(res.headers[":status"]).toBe(200);
				expect(res.headers["content-type"]).toMatch(/^text\/event-stream/);
			} finally {
				session.close();
			}
		});

		it("refuses a token in the URL and says to use a ticket; the header still works", async () => {
			const res = await h1(port, `/api/v1/events?token=${token}`, { ca: ca.cert });
			expect(res.status).toBe(401);
			expect(JSON.parse(res.body)).toMatchObject({
				code: 401,
				type: "TOKEN_IN_URL",
				data: { reason: expect.stringMatching(/POST \/api\/v1\/events\/ticket.*\?ticket=/) }
			});
			const header = await h1(port, "/api/v1/events", {
				ca: ca.cert,
				headers: { Authorization: `Bearer ${token}` },
				until: "event: hello"
			});
			expect(header.status).toBe(200);
		});

		it("gives no ticket without a valid token", async () => {
			const res = await h1(port, "/api/v1/events/ticket", { ca: ca.cert, method: "POST" });
			expect(res.status).toBe(401);
		});
	});

	// The client does not read its stream, so it never finishes: its connection is cut after
	// the grace (ISA_SHUTDOWN_GRACE, 2 s here).
	it("stops while an HTTP/2 session and its event stream are open", async () => {
		const own = new ServiceBroker({ nodeID: "tls-stop", logger: false });
		const service = gatewayOn(own, null, { shutdownGrace: 2000 });
		await own.start();
		const session = http2.connect(`https://127.0.0.1:${portOf(service)}`, {
			ca: fs.readFileSync(ca.cert)
		});
		try {
			const stream = session.request({
				":path": "/api/v1/events",
				authorization: `Bearer ${token}`
			});
			await new Promise(resolve => stream.once("response", resolve));
			expect((service as any).h2Sessions.size).toBe(1);
			const started = Date.now();
			await own.stop();
			expect(Date.now() - started).toBeLessThan(8000);
			expect((service as any).server.listening).toBe(false);
		} finally {
			session.destroy();
		}
	});

	describe("npm start", () => {
		it("serves HTTPS from ISA_TLS_CERT and ISA_TLS_KEY", async () => {
			const nodePort = await freePort();
			const node = startNode("tls-node", {
				SERVICES: "gateway",
				TRANSPORTER: "",
				STORE: "",
				PORT: String(nodePort),
				ISA_DATA_DIR: path.join(dir, "node"),
				ISA_JWT_SECRET: SECRET,
				ISA_TLS_CERT: live.cert,
				ISA_TLS_KEY: live.key
			});
			try {
				const res = await eventually(
					() => h1(nodePort, "/health", { ca: ca.cert }).catch(() => null),
					20_000,
					"the node over HTTPS"
				);
				expect(res.status).toBe(200);
				expect(res.headers["strict-transport-security"]).toBe("max-age=31536000");
				expect(node.output()).toMatch(/gateway on https:\/\/127\.0\.0\.1:/);
			} finally {
				await node.stop();
			}
		});

		it("stops with one clear line and status 2 on a file it cannot read", () => {
			const res = spawnSync(process.execPath, [ENTRY], {
				cwd: ROOT,
				env: {
					...process.env,
					SERVICES: "gateway",
					TRANSPORTER: "",
					STORE: "",
					LOGLEVEL: "warn",
					ISA_DATA_DIR: path.join(dir, "bad"),
					ISA_TLS_CERT: path.join(dir, "missing.crt"),
					ISA_TLS_KEY: live.key
				},
				encoding: "utf8",
				timeout: 20_000
			});
			expect(res.status).toBe(2);
			expect(res.stderr.trim().split("\n")).toHaveLength(1);
			expect(res.stderr).toMatch(
				/^IsA Cloud: ISA_TLS_CERT=\S+missing\.crt cannot be read: ENOENT/m
			);
		});
	});
});
