/**
 * IsA nodes as separate OS processes (the built `dist/bin/isa.js`, what `npm start` runs), for
 * cluster tests: each node is a real process that a test can `kill -9` and start again.
 */
import { spawn, ChildProcess } from "child_process";
import path from "path";
import { mintToken } from "../../services/gateway/jwt";
import { Role } from "../../services/shared/principal";
import { freePort, RedisOptions, startNats, startRedis, TestServer } from "./servers";

// From test/helpers under ts-jest, or from dist/test/helpers when the benchmark runs it.
export const ROOT = path.resolve(
	__dirname,
	__dirname.split(path.sep).includes("dist") ? "../../.." : "../.."
);
export const FAKE_BIN = path.join(ROOT, "test/fixtures/bin");
export const ENTRY = path.join(ROOT, "dist/bin/isa.js");
/** `npm run repl`: a node of its own with the REPL on its stdin. */
export const REPL_ENTRY = path.join(ROOT, "dist/bin/repl.js");

export interface NodeProcess {
	nodeID: string;
	proc: ChildProcess;
	/** Everything the process printed so far. */
	output(): string;
	/** SIGKILL: no goodbye to the cluster. */
	kill(): Promise<void>;
	/** SIGTERM and wait for a clean exit. */
	stop(): Promise<void>;
}

export function startNode(
	nodeID: string,
	env: Record<string, string>,
	entry = ENTRY,
	args: string[] = []
): NodeProcess {
	const proc = spawn(process.execPath, [entry, ...args], {
		cwd: ROOT,
		env: { ...process.env, NODEID: nodeID, LOGLEVEL: "info", ...env },
		// stdin stays open for nodes started with --repl.
		stdio: ["pipe", "pipe", "pipe"]
	});
	let out = "";
	proc.stdout!.on("data", d => (out += d));
	proc.stderr!.on("data", d => (out += d));
	const exited = new Promise<void>(resolve => proc.once("exit", () => resolve()));
	const send = async (signal: NodeJS.Signals) => {
		if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
		await exited;
	};
	return {
		nodeID,
		proc,
		output: () => out,
		kill: () => send("SIGKILL"),
		stop: () => send("SIGTERM")
	};
}

/** Polls `fn` until it returns a truthy value or the time is up; resolves to that value. */
export async function eventually<T>(
	fn: () => Promise<T | null | undefined | false>,
	timeoutMs: number,
	what: string
): Promise<T> {
	const deadline = Date.now() + timeoutMs;
	let last: unknown;
	for (;;) {
		try {
			const value = await fn();
			if (value) return value;
		} catch (err) {
			last = err;
		}
		if (Date.now() > deadline)
			throw new Error(
				`Timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last}` : ""}`
			);
		await new Promise(r => setTimeout(r, 50));
	}
}

export interface ClusterFixture {
	nats: TestServer;
	redis: TestServer;
	/** A free port for the gateway node. */
	port: number;
	token: string;
	/** The environment every node of the suite shares: transporter, store, namespace, secret. */
	common: Record<string, string>;
	/** A JSON request to the gateway with the suite's token. */
	api(path: string, init?: RequestInit): Promise<{ status: number; body: any }>;
	stop(): Promise<void>;
}

/**
 * What every multi-process suite starts with: its own nats-server and redis-server, a gateway
 * port, a token, and the environment its nodes share (one namespace per suite).
 */
export async function clusterFixture(opts: {
	name: string;
	secret: string;
	token: { sub: string; tenant: string; roles: Role[] };
	env?: Record<string, string>;
	redis?: RedisOptions;
}): Promise<ClusterFixture> {
	const [nats, redis, port] = await Promise.all([
		startNats(),
		startRedis(undefined, opts.redis),
		freePort()
	]);
	// Good for longer than any suite or soak runs (the availability benchmark takes 13 min).
	const token = await mintToken({ secret: opts.secret, ttl: 6 * 3600, ...opts.token });
	return {
		nats,
		redis,
		port,
		token,
		common: {
			TRANSPORTER: nats.url,
			STORE: redis.url,
			NAMESPACE: `${opts.name}-${process.pid}`,
			ISA_JWT_SECRET: opts.secret,
			ISA_REPORT_INTERVAL: "0.5",
			...opts.env
		},
		async api(path, init = {}) {
			const res = await fetch(`http://127.0.0.1:${port}${path}`, {
				...init,
				headers: {
					Authorization: `Bearer ${token}`,
					"Content-Type": "application/json",
					...(init.headers ?? {})
				}
			});
			return { status: res.status, body: (await res.json()) as any };
		},
		async stop() {
			await Promise.all([nats.stop(), redis.stop()]);
		}
	};
}

/** The services of a suite's control node: everything but the agent, the gateway included. */
const CONTROL_SERVICES = "nodes,scheduler,tenants,audit,gateway";

/** A suite's control node, its gateway on the fixture's port; `env` adds to or overrides. */
export function startControl(cluster: ClusterFixture, env: Record<string, string> = {}) {
	return startNode("control", {
		...cluster.common,
		SERVICES: CONTROL_SERVICES,
		PORT: String(cluster.port),
		...env
	});
}

/** An agent node of a suite; `env` adds its capacity, allowed commands and the like. */
export function startAgent(cluster: ClusterFixture, id: string, env: Record<string, string> = {}) {
	return startNode(id, { ...cluster.common, SERVICES: "agent", ...env });
}

/** Resolves once the gateway lists `count` ready nodes. */
export async function nodesReady(cluster: ClusterFixture, count: number, timeoutMs: number) {
	await eventually(
		async () => (await cluster.api("/api/v1/nodes?status=ready")).body.total === count,
		timeoutMs,
		`${count} ready agent node(s)`
	);
}
