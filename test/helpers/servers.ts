/**
 * Real servers for integration tests: each suite starts its own nats-server or redis-server on
 * a free loopback port, so suites are isolated and a test can kill and restart them.
 */
import { spawn, ChildProcess } from "child_process";
import net from "net";

export async function freePort(): Promise<number> {
	return new Promise((resolve, reject) => {
		const srv = net.createServer();
		srv.unref();
		srv.on("error", reject);
		srv.listen(0, "127.0.0.1", () => {
			const { port } = srv.address() as net.AddressInfo;
			srv.close(() => resolve(port));
		});
	});
}

export async function waitForPort(port: number, timeoutMs = 10000): Promise<void> {
	const deadline = Date.now() + timeoutMs;
	for (;;) {
		const ok = await new Promise<boolean>(resolve => {
			const sock = net.connect(port, "127.0.0.1");
			sock.once("connect", () => {
				sock.destroy();
				resolve(true);
			});
			sock.once("error", () => resolve(false));
		});
		if (ok) return;
		if (Date.now() > deadline) throw new Error(`Nothing listens on 127.0.0.1:${port}`);
		await new Promise(r => setTimeout(r, 50));
	}
}

export interface TestServer {
	url: string;
	port: number;
	proc: ChildProcess;
	stop(): Promise<void>;
	/** Stops the server if it runs and starts a fresh one on the same port (`proc` is the new one). */
	restart(): Promise<void>;
}

async function startServer(
	cmd: string,
	args: (port: number) => string[],
	scheme: string,
	port?: number
): Promise<TestServer> {
	const p = port ?? (await freePort());
	const spawnOne = () => {
		const proc = spawn(cmd, args(p), { stdio: "ignore" });
		proc.on("error", err => {
			throw new Error(
				`Could not start ${cmd}: ${err.message}. Install it (apt-get install ${cmd}).`
			);
		});
		return proc;
	};
	const server: TestServer = {
		url: `${scheme}://127.0.0.1:${p}`,
		port: p,
		proc: spawnOne(),
		stop: () =>
			new Promise(resolve => {
				const proc = server.proc;
				if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
				proc.once("exit", () => resolve());
				proc.kill("SIGKILL");
			}),
		async restart() {
			await server.stop();
			server.proc = spawnOne();
			await waitForPort(p);
		}
	};
	await waitForPort(p);
	return server;
}

/** A fresh nats-server on loopback; pass `port` to restart one on the same port. */
export function startNats(port?: number): Promise<TestServer> {
	return startServer("nats-server", p => ["-a", "127.0.0.1", "-p", String(p)], "nats", port);
}

export interface RedisOptions {
	/**
	 * Keep an append-only file in this directory, fsynced before every reply (appendfsync
	 * always, what the README asks of production): a redis-server restarted on the same
	 * directory has every acknowledged write. Without it, nothing is kept on disk and a
	 * restart on the same port comes back empty.
	 */
	dir?: string;
	/**
	 * The server's `maxmemory` ("4mb"), with `maxmemory-policy noeviction`: past it Redis
	 * refuses writes with OOM, as a full production server does.
	 */
	maxmemory?: string;
}

/**
 * A fresh redis-server on loopback; pass `port` to restart one on the same port (empty, unless
 * `dir` names the directory of the one before).
 */
export function startRedis(port?: number, opts: RedisOptions = {}): Promise<TestServer> {
	const persistence = opts.dir
		? ["--dir", opts.dir, "--appendonly", "yes", "--appendfsync", "always"]
		: ["--appendonly", "no"];
	const memory = opts.maxmemory
		? ["--maxmemory", opts.maxmemory, "--maxmemory-policy", "noeviction"]
		: [];
	return startServer(
		"redis-server",
		p => ["--bind", "127.0.0.1", "--port", String(p), "--save", "", ...persistence, ...memory],
		"redis",
		port
	);
}
