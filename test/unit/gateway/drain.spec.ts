import http from "http";
import net, { type AddressInfo } from "net";
import { closableNow, HttpDrain } from "../../../services/gateway/drain";

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
