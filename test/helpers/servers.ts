/**
 * Real servers for integration tests: each suite starts its own nats-server or redis-server on
 * a free loopback port, so suites are isolated and a test can kill and restart them.
 */
import { spawn, ChildProcess } from "child_process";
import fs from "fs";
import net from "net";
import os from "os";
import path from "path";

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

export interface NatsOptions {
	/**
	 * More of nats-server's configuration file (`tls { … }`, `authorization { … }`); the server
	 * then runs from a file in `dir` that also sets its address.
	 */
	config?: string;
	/** Where that file is written (a test's temporary directory). */
	dir?: string;
}

/** A fresh nats-server on loopback; pass `port` to restart one on the same port. */
export function startNats(port?: number, opts: NatsOptions = {}): Promise<TestServer> {
	if (!opts.config)
		return startServer("nats-server", p => ["-a", "127.0.0.1", "-p", String(p)], "nats", port);
	const dir = opts.dir ?? os.tmpdir();
	return startServer(
		"nats-server",
		p => {
			const file = path.join(dir, `nats-${p}.conf`);
			fs.writeFileSync(file, `listen: "127.0.0.1:${p}"\n${opts.config}\n`);
			return ["-c", file];
		},
		"nats",
		port
	);
}

/**
 * `size` nats-servers routed into one NATS cluster on loopback, each on its own client and
 * route port, with their configuration files in `dir`. Resolves once a message published on
 * each server reaches a subscriber on the first, so the routes are up. A server restarted on
 * its port (`restart()`) joins the cluster again from the same file.
 */
export async function startNatsCluster(size: number, dir: string): Promise<TestServer[]> {
	const routes = await Promise.all(Array.from({ length: size }, () => freePort()));
	const servers = await Promise.all(
		routes.map((route, i) =>
			startNats(undefined, {
				dir,
				config: [
					`server_name: "isa-test-${i}"`,
					"cluster {",
					'  name: "isa-test"',
					`  listen: "127.0.0.1:${route}"`,
					`  routes: [${routes
						.filter(r => r !== route)
						.map(r => `"nats-route://127.0.0.1:${r}"`)
						.join(", ")}]`,
					"}"
				].join("\n")
			})
		)
	);
	await routesUp(servers);
	return servers;
}

async function routesUp(servers: TestServer[], timeoutMs = 10_000): Promise<void> {
	const { connect } = await import("nats");
	const clients = await Promise.all(servers.map(s => connect({ servers: s.url })));
	try {
		const subject = `isa.test.routes.${process.pid}`;
		const heard = new Set<string>();
		const sub = clients[0].subscribe(subject, {
			callback: (_err, msg) => heard.add(new TextDecoder().decode(msg.data))
		});
		const deadline = Date.now() + timeoutMs;
		while (heard.size < servers.length) {
			if (Date.now() > deadline) throw new Error("The NATS cluster's routes did not form");
			for (const [i, c] of clients.entries()) c.publish(subject, String(i));
			await new Promise(r => setTimeout(r, 100));
		}
		sub.unsubscribe();
	} finally {
		await Promise.all(clients.map(c => c.close()));
	}
}

/**
 * `count` Redis Sentinels watching the primary on `primaryPort` as `name`, a quorum of a
 * majority, quick to act (the primary is down after 1 s of silence); each keeps its state in
 * a file in `dir`, as Sentinel requires. `url` is the STORE of a cluster on them.
 */
export async function startSentinels(
	count: number,
	primaryPort: number,
	name: string,
	dir: string
): Promise<{ sentinels: TestServer[]; url: string }> {
	const sentinels = await Promise.all(
		Array.from({ length: count }, () =>
			startServer(
				"redis-server",
				p => {
					const file = path.join(dir, `sentinel-${p}.conf`);
					fs.writeFileSync(
						file,
						[
							"bind 127.0.0.1",
							`port ${p}`,
							`sentinel monitor ${name} 127.0.0.1 ${primaryPort} ${Math.floor(count / 2) + 1}`,
							`sentinel down-after-milliseconds ${name} 1000`,
							`sentinel failover-timeout ${name} 5000`,
							`sentinel parallel-syncs ${name} 1`
						].join("\n") + "\n"
					);
					return [file, "--sentinel"];
				},
				"redis"
			)
		)
	);
	const hosts = sentinels.map(s => `127.0.0.1:${s.port}`).join(",");
	return { sentinels, url: `redis-sentinel://${hosts}/${name}` };
}

/**
 * The loopback ports a process holds TCP connections to, from /proc: its sockets' inodes
 * (/proc/<pid>/fd), looked up in /proc/net/tcp. Which server of a cluster a node uses.
 */
export function connectedPorts(pid: number): Set<number> {
	const inodes = new Set<string>();
	for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
		try {
			const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
			if (m) inodes.add(m[1]);
		} catch {
			// Closed while we looked.
		}
	}
	const ports = new Set<number>();
	for (const line of fs.readFileSync("/proc/net/tcp", "utf8").split("\n").slice(1)) {
		const f = line.trim().split(/\s+/);
		// f[2]: the remote address (hex ip:port), f[3]: the state (01: established), f[9]: inode.
		if (f.length > 9 && f[3] === "01" && inodes.has(f[9]))
			ports.add(parseInt(f[2].split(":")[1], 16));
	}
	return ports;
}

export interface RedisOptions {
	/**
	 * Keep an append-only file in this directory, fsynced before every reply (appendfsync
	 * always, what the README asks of production): a redis-server restarted on the same
	 * directory has every acknowledged write. Without it, nothing is kept on disk and a
	 * restart on the same port comes back empty.
	 */
	dir?: string;
	/** `requirepass`: clients must authenticate with this password. */
	password?: string;
	/**
	 * TLS only (no plain port): the server's pair and the CA it checks client certificates
	 * against; `clients: "yes"` requires one (mTLS). The URL is then `rediss://`.
	 */
	tls?: { cert: string; key: string; ca: string; clients?: "yes" | "no" | "optional" };
	/**
	 * The server's `maxmemory` ("4mb"), with `maxmemory-policy noeviction`: past it Redis
	 * refuses writes with OOM, as a full production server does.
	 */
	maxmemory?: string;
	/** A replica of the redis-server on this loopback port. */
	replicaOf?: number;
}

/**
 * A fresh redis-server on loopback; pass `port` to restart one on the same port (empty, unless
 * `dir` names the directory of the one before).
 */
export function startRedis(port?: number, opts: RedisOptions = {}): Promise<TestServer> {
	// Without a `dir`, files a server writes all the same (the snapshot a replica's full sync
	// makes) go to the system's temporary directory, one name per port, not the cwd.
	const persistence = (p: number) =>
		opts.dir
			? ["--dir", opts.dir, "--appendonly", "yes", "--appendfsync", "always"]
			: ["--dir", os.tmpdir(), "--dbfilename", `isa-test-${p}.rdb`, "--appendonly", "no"];
	const auth = opts.password ? ["--requirepass", opts.password] : [];
	const memory = opts.maxmemory
		? ["--maxmemory", opts.maxmemory, "--maxmemory-policy", "noeviction"]
		: [];
	const replica = opts.replicaOf ? ["--replicaof", "127.0.0.1", String(opts.replicaOf)] : [];
	const listen = (p: number) =>
		opts.tls
			? [
					"--port",
					"0",
					"--tls-port",
					String(p),
					"--tls-cert-file",
					opts.tls.cert,
					"--tls-key-file",
					opts.tls.key,
					"--tls-ca-cert-file",
					opts.tls.ca,
					"--tls-auth-clients",
					opts.tls.clients ?? "no"
				]
			: ["--port", String(p)];
	return startServer(
		"redis-server",
		p => [
			"--bind",
			"127.0.0.1",
			...listen(p),
			"--save",
			"",
			...persistence(p),
			...auth,
			...memory,
			...replica
		],
		opts.tls ? "rediss" : "redis",
		port
	);
}
