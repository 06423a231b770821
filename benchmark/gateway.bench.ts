/**
 * Gateway suite: authenticated `GET /api/v1/nodes` through IsA's gateway against a bare
 * moleculer-web route that returns a constant, measured in the same run, first with everything
 * in one process and then with the action on a second process over NATS.
 * Target: at least 70% of the bare figure of the same run, P99 under 10 ms.
 */
import { fork } from "child_process";
import fs from "fs";
import os from "os";
import path from "path";
import { mintToken } from "../services/gateway/auth";
import { eventually, startNode, NodeProcess } from "../test/helpers/cluster";
import { freePort, startNats, TestServer } from "../test/helpers/servers";
import { wrk, WrkResult } from "./wrk";

const SECRET = "bench-secret";
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const CONNECTIONS = 50;

interface Stoppable {
	stop(): Promise<void>;
}

async function bare(role: string, env: Record<string, string>): Promise<Stoppable> {
	const child = fork(path.join(__dirname, "bare-gateway.js"), [], {
		env: { ...process.env, BENCH_ROLE: role, ...env },
		stdio: "ignore"
	});
	await new Promise<void>((resolve, reject) => {
		child.once("message", () => resolve());
		child.once("exit", code => reject(new Error(`bare ${role} exited with ${code}`)));
	});
	return {
		stop: () =>
			new Promise(resolve => {
				child.once("exit", () => resolve());
				child.kill("SIGTERM");
			})
	};
}

async function isaNode(id: string, env: Record<string, string>): Promise<NodeProcess> {
	return startNode(id, { LOGLEVEL: "warn", ISA_JWT_SECRET: SECRET, ...env });
}

async function measure(url: string, headers: string[] = []): Promise<WrkResult> {
	await wrk(url, { seconds: 2, connections: CONNECTIONS, headers }); // warm-up: JIT, caches
	return wrk(url, { seconds: SECONDS, connections: CONNECTIONS, headers });
}

async function nodesReady(port: number, auth: string, count: number): Promise<void> {
	await eventually(
		async () => {
			const res = await fetch(`http://127.0.0.1:${port}/api/v1/nodes`, { headers: { Authorization: auth } });
			return res.status === 200 && ((await res.json()) as { total: number }).total >= count;
		},
		20_000,
		"the node list"
	);
}

export interface GatewayRow {
	scenario: string;
	bare: WrkResult;
	isa: WrkResult;
}

export async function run(): Promise<GatewayRow[]> {
	const token = await mintToken({ secret: SECRET, sub: "bench", tenant: "bench", roles: ["viewer"], ttl: 3600 });
	const auth = `Bearer ${token}`;
	const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "isa-bench-"));
	const rows: GatewayRow[] = [];
	const running: Stoppable[] = [];
	let nats: TestServer | undefined;
	try {
		// One process each.
		let port = await freePort();
		let stop = await bare("all", { PORT: String(port) });
		const bareLocal = await measure(`http://127.0.0.1:${port}/constant`);
		await stop.stop();

		port = await freePort();
		const single = await isaNode("bench-single", { PORT: String(port), ISA_DATA_DIR: dataDir, TRANSPORTER: "", STORE: "" });
		running.push(single);
		await nodesReady(port, auth, 1);
		const isaLocal = await measure(`http://127.0.0.1:${port}/api/v1/nodes`, [`Authorization: ${auth}`]);
		await single.stop();
		rows.push({ scenario: "one process", bare: bareLocal, isa: isaLocal });

		// The action on a second process, over NATS.
		nats = await startNats();
		port = await freePort();
		const action = await bare("action", { TRANSPORTER: nats.url });
		stop = await bare("gateway", { TRANSPORTER: nats.url, PORT: String(port) });
		await eventually(async () => (await fetch(`http://127.0.0.1:${port}/constant`)).status === 200, 10_000, "bare over NATS");
		const bareNats = await measure(`http://127.0.0.1:${port}/constant`);
		await Promise.all([stop.stop(), action.stop()]);

		port = await freePort();
		const common = { TRANSPORTER: nats.url, STORE: path.join(dataDir, "nats.db"), ISA_DATA_DIR: dataDir };
		const worker = await isaNode("bench-worker", { ...common, SERVICES: "nodes,agent" });
		const gateway = await isaNode("bench-gateway", { ...common, SERVICES: "gateway", PORT: String(port) });
		running.push(worker, gateway);
		await nodesReady(port, auth, 1);
		const isaNats = await measure(`http://127.0.0.1:${port}/api/v1/nodes`, [`Authorization: ${auth}`]);
		rows.push({ scenario: "over NATS", bare: bareNats, isa: isaNats });
	} finally {
		await Promise.all(running.map(r => r.stop()));
		await nats?.stop();
		fs.rmSync(dataDir, { recursive: true, force: true });
	}
	return rows;
}

export function table(rows: GatewayRow[]): string {
	const lines = [
		`| scenario | bare moleculer-web req/s | IsA GET /api/v1/nodes req/s | ratio | IsA P50 ms | IsA P99 ms | bare P99 ms | errors |`,
		`|---|---:|---:|---:|---:|---:|---:|---:|`
	];
	for (const r of rows)
		lines.push(
			`| ${r.scenario} | ${Math.round(r.bare.rps)} | ${Math.round(r.isa.rps)} | ${((r.isa.rps / r.bare.rps) * 100).toFixed(0)}% | ` +
				`${r.isa.p50Ms.toFixed(2)} | ${r.isa.p99Ms.toFixed(2)} | ${r.bare.p99Ms.toFixed(2)} | ${r.isa.errors + r.bare.errors} |`
		);
	return lines.join("\n");
}

export function verdict(rows: GatewayRow[]): string[] {
	const misses: string[] = [];
	for (const r of rows) {
		if (r.isa.rps < 0.7 * r.bare.rps) misses.push(`${r.scenario}: ratio under 70%`);
		if (r.isa.p99Ms >= 10) misses.push(`${r.scenario}: P99 ${r.isa.p99Ms} ms is not under 10 ms`);
		if (r.isa.errors) misses.push(`${r.scenario}: ${r.isa.errors} failed requests`);
	}
	return misses;
}

