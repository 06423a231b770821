/**
 * Gateway suite: authenticated `GET /api/v1/nodes` through IsA's gateway against a bare
 * moleculer-web route that returns the same bytes as a constant, measured in the same run,
 * first with everything in one process and then with the action on a second process over NATS.
 * The two are measured in alternating rounds, since two cores shared with wrk make single runs
 * noisy: the table shows each side's median req/s, and the ratio is the median of each round's
 * own ratio (its two runs back to back).
 * Target: at least 70% of the bare figure of the same run, P99 under 10 ms.
 *
 * The HTTPS row: the same request over TLS, IsA's gateway with ISA_TLS_CERT/ISA_TLS_KEY (its
 * HTTP/2 server, which wrk reaches over HTTP/1.1) against bare moleculer-web with its own
 * `https` setting, with a certificate made by openssl for the run. Target: 70% of bare.
 *
 * The write row: an authenticated mutation, `PUT /api/v1/config/:key` as an admin, through one
 * single node with the audit log on (the default: a durable write-ahead entry before the action,
 * the chained record after) against one with ISA_AUDIT=off (the gateway's hooks off, the same
 * services running), in alternating rounds of the same run. Target: audit on keeps at least 80%
 * of audit off.
 *
 * The rate row: the same GET through a single node on a Redis store with the rate limits on
 * (limits not reached: two counts in Redis per request) against one with ISA_RATE_LIMITS=off,
 * alternately in the same run. Target: at least 90% of off.
 */
import { fork } from "child_process";
import fs from "fs";
import os from "os";
import path from "path";
import { Agent, fetch as undiciFetch } from "undici";
import { mintToken } from "../services/gateway/jwt";
import { TestCa } from "../test/helpers/certs";
import { eventually, startNode } from "../test/helpers/cluster";
import { freePort, startNats, startRedis } from "../test/helpers/servers";
import { wrk, WrkResult } from "./wrk";

const SECRET = "bench-secret";
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
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

/**
 * wrk sends thousands of requests a second as one tenant: the rate limits stay on, with limits
 * it does not reach, so every row pays for counting as a real gateway does (the rate row
 * measures that cost against ISA_RATE_LIMITS=off).
 */
const UNREACHED_RATES = { ISA_RATE_READS: "1000000", ISA_RATE_WRITES: "1000000" };

function isaNode(id: string, env: Record<string, string>) {
	return startNode(id, { LOGLEVEL: "warn", ISA_JWT_SECRET: SECRET, ...UNREACHED_RATES, ...env });
}

function median(results: WrkResult[], key: keyof WrkResult): number {
	const sorted = results.map(r => r[key]).sort((a, b) => a - b);
	return sorted[Math.floor(sorted.length / 2)];
}

function summary(results: WrkResult[]): WrkResult {
	return {
		rps: median(results, "rps"),
		p50Ms: median(results, "p50Ms"),
		p99Ms: median(results, "p99Ms"),
		errors: results.reduce((sum, r) => sum + r.errors, 0)
	};
}

/**
 * Alternating rounds of bare and IsA, each warmed up first, in ABBA order (bare first in one
 * round, IsA first in the next), so that neither side always runs right after the other's
 * load.
 */
async function compare(
	bareUrl: string,
	isaUrl: string,
	auth: string,
	opts: { bareAuth?: boolean; script?: string } = {}
) {
	const headers = [`Authorization: ${auth}`];
	const bareOpts = {
		connections: CONNECTIONS,
		script: opts.script,
		...(opts.bareAuth ? { headers } : {})
	};
	const isaOpts = { connections: CONNECTIONS, script: opts.script, headers };
	await wrk(bareUrl, { seconds: 2, ...bareOpts });
	await wrk(isaUrl, { seconds: 2, ...isaOpts });
	const bareRuns: WrkResult[] = [];
	const isaRuns: WrkResult[] = [];
	const runBare = async () =>
		bareRuns.push(await wrk(bareUrl, { seconds: SECONDS, ...bareOpts }));
	const runIsa = async () => isaRuns.push(await wrk(isaUrl, { seconds: SECONDS, ...isaOpts }));
	for (let round = 0; round < ROUNDS; round++) {
		const [first, second] = round % 2 === 0 ? [runBare, runIsa] : [runIsa, runBare];
		await first();
		await second();
	}
	// Each round's two runs are next to each other in time, so their ratio shares the machine's
	// speed of the moment; the median of those ratios moves less than the ratio of the medians.
	const ratios = isaRuns.map((run, i) => run.rps / bareRuns[i].rps).sort((a, b) => a - b);
	return {
		bare: summary(bareRuns),
		isa: summary(isaRuns),
		ratio: ratios[Math.floor(ratios.length / 2)]
	};
}

/** Waits for the node list and returns its body, which the bare route then serves. */
async function nodesBody(port: number, auth: string, ca?: string): Promise<string> {
	// Over HTTPS, the run's own CA is trusted for this probe (wrk does not verify).
	const dispatcher = ca ? new Agent({ connect: { ca: fs.readFileSync(ca) } }) : undefined;
	return eventually(
		async () => {
			const res = await undiciFetch(
				`${ca ? "https" : "http"}://127.0.0.1:${port}/api/v1/nodes`,
				{
					headers: { Authorization: auth },
					dispatcher
				}
			);
			const text = await res.text();
			return res.status === 200 && JSON.parse(text).total >= 1 && text;
		},
		20_000,
		"the node list"
	);
}

export interface GatewayRow {
	scenario: string;
	bytes: number;
	/** What the row is measured against: bare moleculer-web, or IsA with ISA_AUDIT=off. */
	baseline: string;
	bare: WrkResult;
	isa: WrkResult;
	/** The median over the rounds of isa's req/s to bare's in the same round. */
	ratio: number;
	/** The least ratio of isa to bare that meets the target. */
	minRatio: number;
	/** P99 (ms) isa must stay under; null: no latency target. */
	maxP99: number | null;
}

/** A wrk script that sends every request as `PUT` with a small JSON body. */
function putScript(dir: string): string {
	const file = path.join(dir, "put.lua");
	fs.writeFileSync(
		file,
		[
			'wrk.method = "PUT"',
			'wrk.body = \'{"value":{"replicas":3,"url":"http://model:8080"}}\'',
			'wrk.headers["Content-Type"] = "application/json"'
		].join("\n")
	);
	return file;
}

/** Both over HTTPS: a single node with ISA_TLS_* against bare moleculer-web's `https`. */
async function httpsRow({ dataDir, auth, running }: RowContext): Promise<GatewayRow> {
	const ca = new TestCa(dataDir);
	const pair = ca.issue("bench-server", { server: true, cn: "localhost" });
	const [isaPort, barePort] = await Promise.all([freePort(), freePort()]);
	running.push(
		isaNode("bench-https", {
			PORT: String(isaPort),
			ISA_DATA_DIR: path.join(dataDir, "https"),
			TRANSPORTER: "",
			STORE: "",
			ISA_TLS_CERT: pair.cert,
			ISA_TLS_KEY: pair.key
		})
	);
	const body = await nodesBody(isaPort, auth, ca.cert);
	running.push(
		await bare("all", {
			PORT: String(barePort),
			BENCH_BODY: body,
			BENCH_TLS_CERT: pair.cert,
			BENCH_TLS_KEY: pair.key
		})
	);
	const result = await compare(
		`https://127.0.0.1:${barePort}/constant`,
		`https://127.0.0.1:${isaPort}/api/v1/nodes`,
		auth
	);
	return {
		scenario: "GET /api/v1/nodes over HTTPS, one process",
		bytes: body.length,
		baseline: "bare moleculer-web, HTTPS",
		...result,
		minRatio: 0.7,
		maxP99: null
	};
}

/** Audit on against audit off: the same mutation through two single nodes, alternately. */
async function writeRow({ dataDir, running }: RowContext): Promise<GatewayRow> {
	const admin = `Bearer ${await mintToken({ secret: SECRET, sub: "bench", tenant: "bench", roles: ["admin"], ttl: 3600 })}`;
	const [onPort, offPort] = await Promise.all([freePort(), freePort()]);
	const node = (id: string, port: number, audit: string) =>
		isaNode(id, {
			PORT: String(port),
			ISA_DATA_DIR: path.join(dataDir, id),
			TRANSPORTER: "",
			STORE: "",
			ISA_AUDIT: audit,
			// wrk's 50 connections are one tenant's: its bound of mutations in flight (16 by
			// default) would answer most of them 503, and this row measures the audit's cost.
			ISA_QUEUE_TENANT_MUTATIONS: "1000"
		});
	running.push(node("bench-audit-on", onPort, "on"), node("bench-audit-off", offPort, "off"));
	const url = (port: number) => `http://127.0.0.1:${port}/api/v1/config/bench.write`;
	for (const port of [onPort, offPort])
		await eventually(
			async () =>
				(
					await fetch(url(port), {
						method: "PUT",
						headers: { Authorization: admin, "Content-Type": "application/json" },
						body: '{"value":0}'
					})
				).status === 200,
			20_000,
			"a node that takes writes"
		);
	const result = await compare(url(offPort), url(onPort), admin, {
		bareAuth: true,
		script: putScript(dataDir)
	});
	return {
		scenario: "PUT /api/v1/config/:key (write), audit on",
		bytes: 0,
		baseline: "ISA_AUDIT=off",
		...result,
		minRatio: 0.8,
		maxP99: null
	};
}

/**
 * Rate limits on (not reached) against ISA_RATE_LIMITS=off: two single nodes on one Redis store
 * (their own namespaces), so that the on side counts in Redis as a cluster's gateways do, two
 * counts per request (the token's subject, then its tenant).
 */
async function rateRow({ dataDir, auth, running }: RowContext): Promise<GatewayRow> {
	const redis = await startRedis();
	running.push(redis);
	const [onPort, offPort] = await Promise.all([freePort(), freePort()]);
	const node = (id: string, port: number, limits: string) =>
		isaNode(id, {
			PORT: String(port),
			ISA_DATA_DIR: path.join(dataDir, id),
			TRANSPORTER: "",
			STORE: redis.url,
			NAMESPACE: id,
			ISA_RATE_LIMITS: limits
		});
	running.push(node("bench-rate-on", onPort, "on"), node("bench-rate-off", offPort, "off"));
	const body = await nodesBody(onPort, auth);
	await nodesBody(offPort, auth);
	const url = (port: number) => `http://127.0.0.1:${port}/api/v1/nodes`;
	const result = await compare(url(offPort), url(onPort), auth, { bareAuth: true });
	return {
		scenario: "GET /api/v1/nodes, rate limits on (not reached), Redis store",
		bytes: body.length,
		baseline: "ISA_RATE_LIMITS=off",
		...result,
		minRatio: 0.9,
		maxP99: null
	};
}

/** What each row's function is handed: where to write, the reader's token, what to stop. */
interface RowContext {
	dataDir: string;
	auth: string;
	running: Stoppable[];
}

const GETS = { baseline: "bare moleculer-web", minRatio: 0.7, maxP99: 10 };

/** Everything in one process each. */
async function singleRow({ dataDir, auth, running }: RowContext): Promise<GatewayRow> {
	const [isaPort, barePort] = await Promise.all([freePort(), freePort()]);
	running.push(
		isaNode("bench-single", {
			PORT: String(isaPort),
			ISA_DATA_DIR: dataDir,
			TRANSPORTER: "",
			STORE: ""
		})
	);
	const body = await nodesBody(isaPort, auth);
	running.push(await bare("all", { PORT: String(barePort), BENCH_BODY: body }));
	const result = await compare(
		`http://127.0.0.1:${barePort}/constant`,
		`http://127.0.0.1:${isaPort}/api/v1/nodes`,
		auth
	);
	return { scenario: "GET /api/v1/nodes, one process", bytes: body.length, ...GETS, ...result };
}

/** The gateway in one process, the action in a second one, over NATS. */
async function natsRow({ dataDir, auth, running }: RowContext): Promise<GatewayRow> {
	const nats = await startNats();
	running.push(nats);
	const [isaNatsPort, bareNatsPort] = await Promise.all([freePort(), freePort()]);
	const common = {
		TRANSPORTER: nats.url,
		STORE: path.join(dataDir, "nats.db"),
		ISA_DATA_DIR: dataDir
	};
	running.push(isaNode("bench-worker", { ...common, SERVICES: "nodes,agent" }));
	running.push(
		isaNode("bench-gateway", { ...common, SERVICES: "gateway", PORT: String(isaNatsPort) })
	);
	const body = await nodesBody(isaNatsPort, auth);
	running.push(await bare("action", { TRANSPORTER: nats.url, BENCH_BODY: body }));
	running.push(await bare("gateway", { TRANSPORTER: nats.url, PORT: String(bareNatsPort) }));
	const bareUrl = `http://127.0.0.1:${bareNatsPort}/constant`;
	await eventually(async () => (await fetch(bareUrl)).status === 200, 10_000, "bare over NATS");
	const result = await compare(bareUrl, `http://127.0.0.1:${isaNatsPort}/api/v1/nodes`, auth);
	return { scenario: "GET /api/v1/nodes, over NATS", bytes: body.length, ...GETS, ...result };
}

/** The rows, by the names BENCH_SCENARIOS picks from (comma-separated; default all). */
const ROWS: Record<string, (ctx: RowContext) => Promise<GatewayRow>> = {
	single: singleRow,
	https: httpsRow,
	nats: natsRow,
	write: writeRow,
	rate: rateRow
};

export async function run(): Promise<GatewayRow[]> {
	const token = await mintToken({
		secret: SECRET,
		sub: "bench",
		tenant: "bench",
		roles: ["viewer"],
		ttl: 3600
	});
	const only = process.env.BENCH_SCENARIOS?.split(",");
	const unknown = only?.filter(name => !ROWS[name]) ?? [];
	if (unknown.length)
		throw new Error(`BENCH_SCENARIOS: unknown ${unknown}; known: ${Object.keys(ROWS)}`);
	const ctx: RowContext = {
		dataDir: fs.mkdtempSync(path.join(os.tmpdir(), "isa-bench-")),
		auth: `Bearer ${token}`,
		running: []
	};
	const rows: GatewayRow[] = [];
	try {
		for (const [name, row] of Object.entries(ROWS)) {
			if (only && !only.includes(name)) continue;
			rows.push(await row(ctx));
			await Promise.all(ctx.running.splice(0).map(r => r.stop()));
		}
	} finally {
		await Promise.all(ctx.running.map(r => r.stop()));
		fs.rmSync(ctx.dataDir, { recursive: true, force: true });
	}
	return rows;
}

export function table(rows: GatewayRow[]): string {
	const lines = [
		"| scenario | body bytes | baseline | baseline req/s | IsA req/s | ratio | target | IsA P50 ms | IsA P99 ms | baseline P99 ms | errors |",
		"|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
	];
	for (const r of rows)
		lines.push(
			`| ${r.scenario} | ${r.bytes || "-"} | ${r.baseline} | ${Math.round(r.bare.rps)} | ${Math.round(r.isa.rps)} | ` +
				`${(r.ratio * 100).toFixed(0)}% | ≥${r.minRatio * 100}% | ${r.isa.p50Ms.toFixed(2)} | ` +
				`${r.isa.p99Ms.toFixed(2)} | ${r.bare.p99Ms.toFixed(2)} | ${r.isa.errors + r.bare.errors} |`
		);
	return lines.join("\n");
}

export function verdict(rows: GatewayRow[]): string[] {
	const misses: string[] = [];
	for (const r of rows) {
		if (r.ratio < r.minRatio) misses.push(`${r.scenario}: ratio under ${r.minRatio * 100}%`);
		if (r.maxP99 !== null && r.isa.p99Ms >= r.maxP99)
			misses.push(`${r.scenario}: P99 ${r.isa.p99Ms} ms is not under 10 ms`);
		if (r.isa.errors || r.bare.errors) misses.push(`${r.scenario}: failed requests`);
	}
	// A run of some rows only (BENCH_SCENARIOS) cannot say the targets were met.
	if (rows.length < Object.keys(ROWS).length)
		misses.push(`${Object.keys(ROWS).length - rows.length} row(s) not run`);
	return misses;
}
