import fs from "fs";
import http from "http";
import http2 from "http2";
import https from "https";
import net, { type AddressInfo } from "net";
import os from "os";
import path from "path";
import { closableNow, HttpDrain } from "../../../services/gateway/drain";
import { createGatewayServer, SessionTracker } from "../../../services/gateway/tls";
import { TestCa } from "../../helpers/certs";

/** A loopback server whose /slow answers after `ms` given in the query, /fast at once. */
async function serve(keepAliveTimeout = 5000) {
	const server = http.createServer((req, res) => {
		const ms = Number(new URL(req.url!, "http://x").searchParams.get("ms") ?? 0);
		setTimeout(() => res.end("ok"), ms).unref();
	});
	server.keepAliveTimeout = keepAliveTimeout;
	const drain = new HttpDrain(server);
	await new Promise<void>(resolve => server.listen(0, "127.0.0.1", resolve));
	const port = (server.address() as AddressInfo).port;
	const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
	const get = (path: string) =>
		new Promise<{ status: number; connection: string | undefined; body: string }>(
			(resolve, reject) => {
				http.get({ host: "127.0.0.1", port, path, agent }, res => {
					let body = "";
					res.on("data", d => (body += d));
					res.on("end", () =>
						resolve({
							status: res.statusCode!,
							connection: res.headers.connection,
							body
						})
					);
				}).on("error", reject);
			}
		);
	return { server, drain, port, agent, get };
}

/** Until the request's connection is open on the server. */
async function arrived(drain: HttpDrain) {
	while (drain.open === 0) await new Promise(r => setTimeout(r, 10));
}

describe("closableNow", () => {
	it("closes a connection only when nothing is in flight and it was quiet long enough", () => {
		expect(closableNow({ busy: 0, idleSince: 1000 }, 2000, 1000)).toBe(true);
		expect(closableNow({ busy: 0, idleSince: 1500 }, 2000, 1000)).toBe(false);
		expect(closableNow({ busy: 1, idleSince: 0 }, 2000, 1000)).toBe(false);
		expect(closableNow({ busy: 0, idleSince: 2000 }, 2000, 0)).toBe(true);
	});
});

describe("HttpDrain", () => {
	it("finishes a request in flight, marks it Connection: close, and refuses new connections", async () => {
		const { drain, port, agent, get } = await serve();
		const slow = get("/slow?ms=300");
		await arrived(drain);
		const outcome = drain.drain(5000);
		expect(drain.isDraining).toBe(true);
		await expect(
			new Promise((resolve, reject) =>
				http.get({ host: "127.0.0.1", port, path: "/fast" }, resolve).on("error", reject)
			)
		).rejects.toMatchObject({ code: "ECONNREFUSED" });
		await expect(slow).resolves.toEqual({ status: 200, connection: "close", body: "ok" });
		expect(await outcome).toMatchObject({ open: 1, forced: 0 });
		agent.destroy();
	});

	it("answers on a kept-alive connection with Connection: close and then it is closed", async () => {
		const { drain, agent, get } = await serve();
		expect((await get("/fast")).connection).toBe("keep-alive");
		const outcome = drain.drain(5000);
		// The idle connection is not destroyed under the client: its next request is answered.
		await expect(get("/fast")).resolves.toMatchObject({ status: 200, connection: "close" });
		expect((await outcome).forced).toBe(0);
		agent.destroy();
	});

	it("closes an idle connection once it was quiet for a while, not at once", async () => {
		const { drain, port } = await serve();
		// A raw client that keeps its connection open after one answer.
		const socket = net.connect(port, "127.0.0.1");
		await new Promise<void>(resolve => {
			socket.once("data", () => resolve());
			socket.write("GET /fast HTTP/1.1\r\nHost: x\r\n\r\n");
		});
		const closedByServer = new Promise<void>(resolve => socket.once("close", () => resolve()));
		const outcome = await drain.drain(5000, 300);
		await closedByServer;
		expect(outcome).toMatchObject({ open: 1, forced: 0 });
		expect(outcome.took).toBeGreaterThanOrEqual(250);
		expect(outcome.took).toBeLessThan(3000);
	});

	it("closes idle connections at once when asked to (quiet 0)", async () => {
		const { drain, agent, get } = await serve();
		await get("/fast");
		const outcome = await drain.drain(5000, 0);
		expect(outcome).toMatchObject({ open: 1, forced: 0 });
		expect(outcome.took).toBeLessThan(200);
		agent.destroy();
	});

	it("closes what is still open when the grace is up, and says how many", async () => {
		const { drain, agent, get } = await serve();
		const hung = get("/slow?ms=10000").catch(err => err);
		await arrived(drain);
		const outcome = await drain.drain(200);
		expect(outcome).toMatchObject({ open: 1, forced: 1 });
		expect(outcome.took).toBeLessThan(2000);
		expect(await hung).toMatchObject({ code: "ECONNRESET" });
		agent.destroy();
	});

	it("drains once: a second call gets the same outcome", async () => {
		const { drain } = await serve();
		const first = drain.drain(1000);
		expect(drain.drain(1000)).toBe(first);
		expect(await first).toMatchObject({ open: 0, forced: 0 });
	});
});

describe("HttpDrain over HTTPS (HTTP/2 and HTTP/1.1 on one port)", () => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), "isa-drain-"));
	const ca = new TestCa(dir);
	const pair = ca.issue("server", { server: true });
	const caPem = fs.readFileSync(ca.cert);
	afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

	/** The gateway's HTTPS server with the same handler as `serve` above. */
	async function serveTls() {
		const server = createGatewayServer(
			(req, res) => {
				const ms = Number(new URL(req.url!, "http://x").searchParams.get("ms") ?? 0);
				setTimeout(() => res.end("ok"), ms).unref();
			},
			{ cert: fs.readFileSync(pair.cert), key: fs.readFileSync(pair.key), ca: null }
		) as http2.Http2SecureServer;
		const sessions = new SessionTracker(server);
		const drain = new HttpDrain(server, sessions);
		await new Promise<void>(resolve => server.listen(0, "127.0.0.1", resolve));
		const port = (server.address() as AddressInfo).port;
		return { server, sessions, drain, port };
	}

	function h2get(session: http2.ClientHttp2Session, urlPath: string) {
		return new Promise<{ status: number; body: string }>((resolve, reject) => {
			const stream = session.request({ ":path": urlPath });
			let status = 0;
			let body = "";
			stream.setEncoding("utf8");
			stream.on("response", h => (status = Number(h[":status"])));
			stream.on("data", d => (body += d));
			stream.on("end", () => resolve({ status, body }));
			stream.on("error", reject);
		});
	}

	it("sends an HTTP/2 session a GOAWAY: its stream in flight finishes, then it closes", async () => {
		const { sessions, drain, port } = await serveTls();
		const session = http2.connect(`https://127.0.0.1:${port}`, { ca: caPem });
		const goaway = new Promise<void>(resolve => session.once("goaway", () => resolve()));
		const closed = new Promise<void>(resolve => session.once("close", () => resolve()));
		const slow = h2get(session, "/slow?ms=300");
		while (sessions.size === 0) await new Promise(r => setTimeout(r, 10));
		const outcome = drain.drain(5000);
		await goaway;
		await expect(slow).resolves.toEqual({ status: 200, body: "ok" });
		await closed;
		expect(await outcome).toMatchObject({ open: 1, forced: 0 });
		// The server's side of the session closes with its socket, within a few ticks.
		for (let i = 0; i < 50 && sessions.size > 0; i++) await new Promise(r => setTimeout(r, 10));
		expect(sessions.size).toBe(0);
	});

	it("drains HTTP/1.1 over TLS as plain HTTP: Connection: close on the request in flight", async () => {
		const { drain, port } = await serveTls();
		const agent = new https.Agent({ keepAlive: true, ca: caPem });
		const slow = new Promise<http.IncomingMessage>((resolve, reject) =>
			https
				.get({ host: "127.0.0.1", port, path: "/slow?ms=300", agent }, resolve)
				.on("error", reject)
		);
		// Connected; a request that arrives once the drain has begun is marked the same way.
		while (drain.open === 0) await new Promise(r => setTimeout(r, 10));
		const outcome = drain.drain(5000);
		const res = await slow;
		expect(res.headers.connection).toBe("close");
		res.resume();
		expect(await outcome).toMatchObject({ open: 1, forced: 0 });
		agent.destroy();
	});

	it("cuts an HTTP/2 stream that does not finish when the grace is up", async () => {
		const { sessions, drain, port } = await serveTls();
		const session = http2.connect(`https://127.0.0.1:${port}`, { ca: caPem });
		session.on("error", () => {});
		const hung = h2get(session, "/slow?ms=10000").catch(err => err);
		while (sessions.size === 0) await new Promise(r => setTimeout(r, 10));
		const outcome = await drain.drain(200);
		expect(outcome).toMatchObject({ open: 1, forced: 1 });
		expect(outcome.took).toBeLessThan(2000);
		// No answer: the stream was reset with its connection.
		expect(await hung).toEqual({ status: 0, body: "" });
		session.destroy();
	});
});
