/**
 * The dashboard (`GET /`) and its event stream (`GET /api/v1/events`), with brokers in one
 * process over Moleculer's in-memory transporter: a control broker (gateway, inventory,
 * scheduler, registry, tenants) and stub agents that report changing usage and say each replica
 * they are given is running. The page is driven in a real headless Chromium (playwright-core and
 * Debian's /usr/bin/chromium).
 *
 * Screenshots land in test/artifacts/. With ISA_UPDATE_SCREENSHOT=1 the populated 1440×900 one
 * also replaces services/gateway/public/img/dashboard.png (the README's picture).
 */
import { EventEmitter } from "events";
import fs from "fs";
import http from "http";
import os from "os";
import path from "path";
import { ServiceBroker, ServiceSchema } from "moleculer";
import request from "supertest";
import type { Browser, Page } from "playwright-core";
import { chromium } from "playwright-core";
import TenantsService from "../../services/tenants.service";
import GatewayService from "../../services/gateway.service";
import NodesService from "../../services/nodes.service";
import RegistryService from "../../services/registry.service";
import SchedulerService from "../../services/scheduler.service";
import { mintToken } from "../../services/gateway/jwt";
import { Principal } from "../../services/shared/principal";
import { EventStream } from "../../services/gateway/events";
import { auditService, withSettings } from "../helpers/services";
import { eventually } from "../helpers/cluster";
import { AgentSpec, clamp, phaseOf, stubAgent } from "../helpers/stub-agent";

const SECRET = "dashboard-test-secret";
const GiB = 1024 ** 3;
const CHROMIUM = "/usr/bin/chromium";
const ROOT = path.resolve(__dirname, "..", "..");
const ARTIFACTS = path.join(ROOT, "test", "artifacts");
const README_SHOT = path.join(ROOT, "services", "gateway", "public", "img", "dashboard.png");

jest.setTimeout(60_000);

/** The page's globals, in functions that run in the browser (this file has no DOM types). */
declare const document: any;

/** An alert as the monitor announces and lists it. */
function alertOf(
	id: string,
	rule: string,
	severity: string,
	state: string,
	metric: string,
	labels: Record<string, string>,
	op: string,
	threshold: number,
	value: number,
	ago: number
) {
	const series = `${metric}{${Object.entries(labels)
		.map(([k, v]) => `${k}="${v}"`)
		.join(",")}}`;
	const since = Date.now() - ago;
	return {
		id,
		ruleId: `r-${rule}`,
		rule,
		severity,
		series,
		labels,
		op,
		threshold,
		state,
		since,
		activeAt: since,
		value
	};
}

/**
 * A stand-in for the monitor service (services/monitor.service.ts) with its answers' shapes:
 * 30 minutes of history that ends at what the nodes report now, and alerts, so that the
 * README's picture shows charts with a past. Until it is registered, /api/v1/stats and
 * /api/v1/alerts answer 503 and the page says it has no history yet.
 */
const stubMonitor: ServiceSchema = {
	name: "monitor",
	actions: {
		async stats(ctx: any) {
			const { node, metric } = ctx.params as { node?: string; metric?: string };
			const { items: nodes } = await ctx.call("nodes.list", {});
			const live = nodes.filter((n: any) => n.status !== "down" && n.usage);
			const now = Date.now();
			const times: number[] = [];
			for (let at = now - 30 * 60_000; at <= now - 2000; at += 10_000)
				times.push(Math.floor(at / 10_000) * 10_000);
			/** Wanders in the past and settles on `value` over the last minutes. */
			const series = (
				name: string,
				labels: Record<string, string>,
				value: number,
				amp: number,
				max = Infinity
			) => {
				const phase = phaseOf(name + JSON.stringify(labels)) * 6;
				return {
					metric: name,
					labels,
					points: times.map(at => {
						const m = at / 60_000 + phase;
						const past = 1 - Math.exp(-(now - at) / 150_000);
						const wander =
							amp * past * (Math.sin(m / 3.2) + 0.5 * Math.sin(m / 0.6 + 1));
						return [at, clamp(value + wander, 0, max)];
					})
				};
			};
			const sum = (f: (n: any) => number) => live.reduce((s: number, n: any) => s + f(n), 0);
			const cpu = sum(n => n.capacity.cpu);
			const memory = sum(n => n.capacity.memory);
			const all = [
				series("cluster.cpu.capacity", {}, cpu, 0),
				series(
					"cluster.cpu.used",
					{},
					sum(n => n.usage.cpu),
					cpu * 0.08
				),
				series("cluster.memory.capacity", {}, memory, 0),
				series(
					"cluster.memory.used",
					{},
					sum(n => n.usage.memory),
					memory * 0.04
				)
			];
			for (const n of live) {
				all.push(
					series("node.cpu.usage", { node: n.id }, n.usage.cpuPercent, 9, 100),
					series(
						"node.memory.usage",
						{ node: n.id },
						(n.usage.memory / n.capacity.memory) * 100,
						4,
						100
					)
				);
				for (const g of n.usage.gpus)
					all.push(
						series(
							"node.gpu.utilization",
							{ node: n.id, gpu: String(g.index) },
							g.utilization,
							14,
							100
						)
					);
			}
			const items = all.filter(
				s => (!node || s.labels.node === node) && (!metric || s.metric === metric)
			);
			return { items, total: items.length, since: times[0], step: 10_000 };
		},
		listAlerts() {
			const items = [
				alertOf(
					"al-2",
					"node-memory-high",
					"warning",
					"firing",
					"node.memory.usage",
					{ node: "gpu-a100-1" },
					">",
					80,
					83.4,
					11 * 60_000
				),
				alertOf(
					"al-1",
					"gpu-idle",
					"info",
					"resolved",
					"node.gpu.utilization",
					{ node: "gpu-a100-2", gpu: "1" },
					"<",
					5,
					41,
					42 * 60_000
				)
			];
			return { items, total: items.length };
		}
	}
};

const FLEET: AgentSpec[] = [
	{
		id: "gpu-h100-1",
		cpu: 96,
		memoryGiB: 1024,
		gpus: 8,
		model: "NVIDIA H100 80GB HBM3",
		labels: { zone: "a", gpu: "h100" },
		load: 0.22
	},
	{
		id: "gpu-h100-2",
		cpu: 96,
		memoryGiB: 1024,
		gpus: 8,
		model: "NVIDIA H100 80GB HBM3",
		labels: { zone: "b", gpu: "h100" },
		load: 0.12
	},
	{ id: "gpu-a100-1", cpu: 64, memoryGiB: 512, gpus: 4, labels: { zone: "a" }, load: 0.35 },
	{ id: "gpu-a100-2", cpu: 64, memoryGiB: 512, gpus: 4, labels: { zone: "b" }, load: 0.18 },
	{
		id: "gpu-l4-1",
		cpu: 32,
		memoryGiB: 192,
		gpus: 2,
		model: "NVIDIA L4",
		gpuMemoryGiB: 24,
		labels: { zone: "a" },
		load: 0.28
	},
	{ id: "cpu-1", cpu: 32, memoryGiB: 128, gpus: 0, labels: { zone: "a" }, load: 0.41 },
	{ id: "cpu-2", cpu: 32, memoryGiB: 128, gpus: 0, labels: { zone: "b" }, load: 0.09 }
];

/**
 * Reads an event stream until `done` says so (and `grace` ms more) or `ms` pass; resolves with
 * what came.
 */
function readStream(
	url: string,
	headers: Record<string, string>,
	done: (text: string) => boolean,
	ms: number,
	grace = 0
): Promise<{ status: number; type: string | undefined; body: string }> {
	return new Promise((resolve, reject) => {
		const req = http.get(url, { headers }, res => {
			let body = "";
			const finish = () => {
				clearTimeout(timer);
				req.destroy();
				resolve({ status: res.statusCode!, type: res.headers["content-type"], body });
			};
			const timer = setTimeout(finish, ms);
			let finishing = false;
			res.setEncoding("utf8");
			res.on("data", chunk => {
				body += chunk;
				if (finishing || !done(body)) return;
				finishing = true;
				setTimeout(finish, grace);
			});
			res.on("end", finish);
		});
		req.on("error", err => {
			if ((err as NodeJS.ErrnoException).code !== "ECONNRESET") reject(err);
		});
	});
}

/** The events of a stream's text, as [name, data]. */
function parseEvents(text: string): Array<[string, any]> {
	return text
		.split("\n\n")
		.map(block => {
			const name = /^event: (.+)$/m.exec(block)?.[1];
			const data = /^data: (.+)$/m.exec(block)?.[1];
			return name && data ? ([name, JSON.parse(data)] as [string, any]) : null;
		})
		.filter((e): e is [string, any] => e !== null);
}

describe("dashboard", () => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), "isa-dash-"));
	const store = path.join(dir, "isa.db");
	const namespace = `dash-${process.pid}`;
	const brokerOpts = {
		namespace,
		transporter: "Fake",
		logger: false,
		heartbeatInterval: 1,
		heartbeatTimeout: 3
	} as const;
	const control = new ServiceBroker({ nodeID: "control", ...brokerOpts });
	control.createService(withSettings(NodesService, { store }));
	control.createService(withSettings(SchedulerService, { store, reconcileInterval: 300 }));
	control.createService(withSettings(TenantsService, { store }));
	control.createService(
		withSettings(RegistryService, { store, tickInterval: 100, applyFile: null })
	);
	control.createService(auditService(store));
	const gateway = control.createService(
		withSettings(GatewayService, { port: 0, jwtSecret: SECRET, store })
	);
	const agents = new Map<string, ServiceBroker>();
	const tokens: Record<string, string> = {};
	let server: http.Server;
	let base: string;
	let browser: Browser | null = null;
	let page: Page;
	/** What the browser reported against the page's Content-Security-Policy. */
	const cspViolations: string[] = [];

	function startAgent(spec: AgentSpec) {
		const b = new ServiceBroker({ nodeID: spec.id, ...brokerOpts });
		b.createService(stubAgent(spec));
		agents.set(spec.id, b);
		return b.start();
	}

	const api = (method: "get" | "post", url: string, token = tokens.admin) =>
		request(server)[method](url).set("Authorization", `Bearer ${token}`);

	async function createWorkload(token: string, body: Record<string, unknown>) {
		const res = await api("post", "/api/v1/workloads", token).send(body);
		expect(res.status).toBe(201);
		return res.body;
	}

	beforeAll(async () => {
		fs.mkdirSync(ARTIFACTS, { recursive: true });
		await control.start();
		server = (gateway as any).server;
		base = `http://127.0.0.1:${(server.address() as any).port}`;
		const mint = (sub: string, tenant: string, role: "admin" | "operator" | "viewer") =>
			mintToken({ secret: SECRET, sub, tenant, roles: [role], ttl: 600 });
		tokens.admin = await mint("alice", "ops", "admin");
		tokens.acme = await mint("ann", "acme", "operator");
		tokens.globex = await mint("olga", "globex", "operator");
		await Promise.all(FLEET.map(startAgent));
		await eventually(
			async () =>
				(await api("get", "/api/v1/nodes?status=ready")).body.total === FLEET.length,
			15_000,
			"the fleet ready"
		);
	});

	afterAll(async () => {
		await browser?.close();
		await Promise.all([...agents.values()].map(b => b.stop()));
		await control.stop();
		fs.rmSync(dir, { recursive: true, force: true });
	});

	describe("GET /api/v1/events", () => {
		it("answers 401 in moleculer-web's shape without a token or with a bad one", async () => {
			const none = await request(server).get("/api/v1/events");
			expect(none.status).toBe(401);
			expect(none.body).toMatchObject({
				name: "UnAuthorizedError",
				code: 401,
				type: "NO_TOKEN"
			});
			const bad = await request(server).get("/api/v1/events?ticket=not-a-ticket");
			expect(bad.status).toBe(401);
			expect(bad.body).toMatchObject({ code: 401, type: "INVALID_TICKET" });
			// A token in the URL would land in logs: refused even when it is valid.
			const inUrl = await request(server).get(`/api/v1/events?token=${tokens.acme}`);
			expect(inUrl.status).toBe(401);
			expect(inUrl.body).toMatchObject({ code: 401, type: "TOKEN_IN_URL" });
			const header = await request(server)
				.get("/api/v1/events")
				.set("Authorization", "Bearer nope");
			expect(header.status).toBe(401);
		});

		it("streams text/event-stream with ?ticket=: hello, then node reports batched", async () => {
			const { body } = await api("post", "/api/v1/events/ticket", tokens.acme).expect(200);
			const res = await readStream(
				`${base}/api/v1/events?ticket=${encodeURIComponent(body.ticket)}`,
				{},
				text => text.includes("event: node.report"),
				8000
			);
			expect(res.status).toBe(200);
			expect(res.type).toMatch(/^text\/event-stream/);
			const events = parseEvents(res.body);
			expect(events[0]).toEqual([
				"hello",
				expect.objectContaining({ sub: "ann", tenant: "acme", roles: ["operator"] })
			]);
			const report = events.find(([name]) => name === "node.report")![1];
			expect(report.items.length).toBeGreaterThan(0);
			// One per node, and only what the page draws.
			const ids = report.items.map((r: any) => r.nodeID);
			expect(new Set(ids).size).toBe(ids.length);
			expect(Object.keys(report.items[0]).sort()).toEqual(["at", "nodeID", "usage"]);
		});

		it("sends node events, and workload events only to the workload's tenant and admins", async () => {
			let workloadId = "";
			// Until the new node is announced (and the workload's news, where it is due).
			const collect = (token: string, seesWorkload: boolean) =>
				readStream(
					`${base}/api/v1/events`,
					{ Authorization: `Bearer ${token}` },
					text =>
						text.includes('"id":"spot-1"') &&
						(!seesWorkload || (workloadId !== "" && text.includes(workloadId))),
					15_000,
					300
				);
			const stream = (gateway as any).eventStream;
			await eventually(async () => stream.size === 0, 5000, "earlier streams closed");
			const streams = Promise.all([
				collect(tokens.admin, true),
				collect(tokens.acme, false),
				collect(tokens.globex, true)
			]);
			await eventually(async () => stream.size === 3, 5000, "3 streams");
			const w = await createWorkload(tokens.globex, {
				name: "probe",
				kind: "process",
				process: { command: "sleep" },
				resources: { cpu: 1, memory: "1Gi" }
			});
			workloadId = w.id;
			await startAgent({ id: "spot-1", cpu: 16, memoryGiB: 64, gpus: 0, load: 0.1 });
			const [admin, acme, globex] = (await streams).map(s => parseEvents(s.body));
			const about = (events: Array<[string, any]>) =>
				events.filter(([n, d]) => n === "workload.replica.state" && d.workloadId === w.id);
			expect(about(admin).length).toBeGreaterThan(0);
			expect(about(globex).length).toBeGreaterThan(0);
			expect(about(acme)).toEqual([]);
			for (const events of [admin, acme, globex])
				expect(events).toContainEqual([
					"node.up",
					expect.objectContaining({ id: "spot-1" })
				]);
			await request(server)
				.delete(`/api/v1/workloads/${w.id}`)
				.set("Authorization", `Bearer ${tokens.globex}`);
			// A node that left: the page shows it down.
			await agents.get("spot-1")!.stop();
			agents.delete("spot-1");
		});
	});

	describe("the page", () => {
		beforeAll(async () => {
			browser = await chromium.launch({
				executablePath: CHROMIUM,
				args: [
					"--no-sandbox",
					"--disable-gpu",
					"--disable-background-networking",
					"--disable-component-update",
					"--disable-sync",
					"--no-first-run"
				]
			});
			page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
			// Every Content-Security-Policy violation of every page load, as a console error.
			await page.addInitScript(() => {
				document.addEventListener("securitypolicyviolation", (e: any) =>
					console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`)
				);
			});
			page.on("console", msg => {
				if (/CSP violation|Content Security Policy/.test(msg.text()))
					cspViolations.push(msg.text());
			});
		});

		it("serves the page and uPlot from the gateway, no CDN", async () => {
			const index = await request(server).get("/");
			expect(index.status).toBe(200);
			expect(index.headers["content-type"]).toMatch(/text\/html/);
			expect(index.text).toContain("vendor/uPlot.iife.min.js");
			expect(index.text).not.toMatch(/https?:\/\//);
			expect(index.headers["content-security-policy"]).toMatch(/default-src 'self'/);
			expect(index.headers["content-security-policy"]).toMatch(/frame-ancestors 'none'/);
			expect(index.headers["x-content-type-options"]).toBe("nosniff");
			// HSTS over HTTPS only (gateway-tls.spec.ts): browsers ignore it over plain HTTP.
			expect(index.headers["strict-transport-security"]).toBeUndefined();
			const vendor = await request(server).get("/vendor/uPlot.iife.min.js");
			expect(vendor.status).toBe(200);
			expect(vendor.headers["content-type"]).toMatch(/javascript/);
			expect((await request(server).get("/vendor/uPlot.min.css")).status).toBe(200);
			expect((await request(server).get("/app.js")).status).toBe(200);
			expect((await request(server).get("/vendor/../package.json")).status).toBe(404);
		});

		it("refuses a bad token with a clear message", async () => {
			await page.goto(base);
			await page.waitForSelector("#signin:not([hidden])");
			await page.fill("#token", "a.b.c");
			await page.click("#signin-btn");
			await page.waitForFunction(() =>
				/refused/.test(document.getElementById("signin-error")!.textContent!)
			);
			expect(await page.isHidden("#main")).toBe(true);
		});

		it("signs in, shows the nodes and a chart, and a new node appears live", async () => {
			await page.fill("#token", tokens.admin);
			await page.click("#signin-btn");
			await page.waitForSelector("#main:not([hidden])");
			await page.waitForFunction(
				(ids: string[]) =>
					ids.every(id => document.querySelector(`#nodes [data-node-id="${id}"]`)),
				FLEET.map(a => a.id)
			);
			await page.waitForSelector('#conn[data-state="live"]');
			// Per-GPU bars: 8 on an H100 node.
			expect(await page.locator('[data-node-id="gpu-h100-1"] .gpu').count()).toBe(8);
			// No monitor yet: the chart draws what arrives live.
			await expect(page.textContent("#hist-note")).resolves.toMatch(/no history yet/);
			await page.waitForFunction(
				() => Number(document.getElementById("chart-cluster")!.dataset.points) >= 2,
				undefined,
				{ timeout: 10_000 }
			);
			const painted = await page.evaluate(() => {
				const canvas = document.querySelector("#chart-cluster canvas");
				const data = canvas
					.getContext("2d")!
					.getImageData(0, 0, canvas.width, canvas.height).data;
				let n = 0;
				for (let i = 3; i < data.length; i += 4) if (data[i] > 0) n++;
				return n;
			});
			expect(painted).toBeGreaterThan(500);

			await startAgent({
				id: "gpu-new-1",
				cpu: 48,
				memoryGiB: 256,
				gpus: 2,
				labels: { zone: "c" },
				load: 0.3
			});
			await page.waitForSelector('[data-node-id="gpu-new-1"]', { timeout: 10_000 });
			await page.screenshot({ path: path.join(ARTIFACTS, "dashboard.png") });
		});

		it("shows workloads, health and alerts: the README's picture", async () => {
			control.createService(stubMonitor);
			await control.waitForServices("monitor");
			const fsDir = fs.mkdtempSync(path.join(os.tmpdir(), "isa-dash-fs-"));
			const resources = [
				{ name: "models-fs", type: "filesystem", endpoint: fsDir },
				{ name: "gateway-tcp", type: "tcp", endpoint: base.replace("http", "tcp") },
				{ name: "pg-main", type: "postgres", endpoint: "postgres://isa@127.0.0.1:1/isa" },
				{ name: "status-page", type: "http", endpoint: `${base}/health` }
			];
			for (const r of resources) {
				const res = await api("post", "/api/v1/resources").send({
					...r,
					healthCheck: { interval: "1s", timeout: "500ms", unhealthyThreshold: 1 }
				});
				expect([res.status, res.body]).toEqual([201, expect.anything()]);
			}
			const svc = await api("post", "/api/v1/services").send({
				name: "isa-model",
				type: "http",
				endpoints: [base],
				healthCheck: { path: "/health", interval: "1s", timeout: "500ms" }
			});
			expect([svc.status, svc.body]).toEqual([201, expect.anything()]);
			const proc = (command: string) => ({ kind: "process", process: { command } });
			await createWorkload(tokens.acme, {
				name: "llm-serve",
				...proc("vllm"),
				resources: { cpu: 16, memory: "128Gi", gpu: 4 },
				replicas: 2,
				placement: { strategy: "spread" }
			});
			await createWorkload(tokens.globex, {
				name: "trainer",
				...proc("torchrun"),
				resources: { cpu: 48, memory: "256Gi", gpu: 4 }
			});
			await createWorkload(tokens.acme, {
				name: "embeddings",
				...proc("tei"),
				resources: { cpu: 4, memory: "16Gi", gpu: 1 },
				replicas: 2
			});
			await createWorkload(tokens.admin, {
				name: "vector-index",
				...proc("qdrant"),
				resources: { cpu: 8, memory: "64Gi" }
			});
			await createWorkload(tokens.globex, {
				name: "finetune-xl",
				...proc("torchrun"),
				resources: { cpu: 32, memory: "256Gi", gpu: 8 }
			});
			await eventually(
				async () =>
					(await api("get", "/api/v1/resources")).body.items.every(
						(r: any) => r.health.status !== "unknown"
					),
				10_000,
				"resources checked"
			);
			// The agents' next reports show the placed GPUs busy.
			await eventually(
				async () =>
					(await api("get", "/api/v1/nodes/gpu-h100-1")).body.usage.gpus[0].utilization >
					40,
				6000,
				"busy GPUs reported"
			);
			await page.reload();
			await page.waitForSelector('#conn[data-state="live"]');
			await page.waitForFunction(() =>
				/30 min/.test(document.getElementById("hist-note")!.textContent!)
			);
			await page.click('[data-node-id="gpu-h100-1"]');
			await page.waitForFunction(
				() => Number(document.getElementById("chart-node")!.dataset.points) > 10
			);
			control.broadcast(
				"alert.firing",
				alertOf(
					"al-3",
					"gpu-temperature",
					"critical",
					"firing",
					"node.gpu.temperature",
					{ node: "gpu-h100-2", gpu: "3" },
					">",
					85,
					91,
					90_000
				)
			);
			await page.waitForSelector("#alerts .alert-item.firing >> text=gpu-temperature");
			await page.waitForSelector("#workloads li >> text=llm-serve");
			await page.waitForFunction(() =>
				[...document.querySelectorAll("#workloads .aside")].some(e =>
					/running · 2\/2/.test(e.textContent!)
				)
			);
			expect(await page.locator("#resources .dot.unhealthy").count()).toBeGreaterThan(0);
			expect(await page.locator(".gpu.reserved").count()).toBeGreaterThan(8);
			// Let one more batch of reports move the bars, then take the picture.
			await page.waitForTimeout(600);
			const shot = path.join(ARTIFACTS, "dashboard-readme.png");
			await page.screenshot({ path: shot });
			if (process.env.ISA_UPDATE_SCREENSHOT === "1") {
				fs.mkdirSync(path.dirname(README_SHOT), { recursive: true });
				fs.copyFileSync(shot, README_SHOT);
			}
			fs.rmSync(fsDir, { recursive: true, force: true });
		});

		it("connects again with a fresh ticket after its stream dropped", async () => {
			const stream = (gateway as any).eventStream;
			await eventually(async () => stream.size === 1, 5000, "the page's stream");
			const tickets: string[] = [];
			const onRequest = (req: { url(): string; method(): string }) => {
				if (req.method() === "POST" && req.url().endsWith("/api/v1/events/ticket"))
					tickets.push(req.url());
			};
			page.on("request", onRequest);
			for (const client of stream.clients.values()) client.res.destroy();
			await page.waitForSelector('#conn[data-state="reconnecting"]', { timeout: 10_000 });
			await page.waitForSelector('#conn[data-state="live"]', { timeout: 15_000 });
			page.off("request", onRequest);
			expect(tickets).toHaveLength(1);
			expect(stream.size).toBe(1);
		});

		it("broke no rule of its Content-Security-Policy in all of the above", async () => {
			expect(cspViolations).toEqual([]);
			// The listener hears violations: an inline script is blocked and reported.
			const ran = await page.evaluate(() => {
				const script = document.createElement("script");
				script.textContent = "window.inlineRan = true";
				document.body.appendChild(script);
				return (globalThis as any).inlineRan === true;
			});
			expect(ran).toBe(false);
			await eventually(async () => cspViolations.length > 0, 5000, "the violation reported");
			cspViolations.length = 0;
		});

		it("says so when the gateway goes away", async () => {
			await control.destroyService(gateway);
			// "reconnecting" once the stream dropped, while the page waits to get a new ticket;
			// "offline" when the stream was refused by the closing server, or no ticket could be
			// had (then the page probes and retries on its own). Either way it says so.
			await page.waitForSelector(
				'#conn[data-state="reconnecting"], #conn[data-state="offline"]',
				{ timeout: 15_000 }
			);
			// Which of the two it shows depends on whether a reconnect attempt has failed yet;
			// "offline" writes its banner once its probe of the API has failed too.
			await page.waitForFunction(
				() =>
					/Lost the connection.*reconnecting|Cannot reach the gateway.*retrying/.test(
						document.querySelector("#banner")?.textContent ?? ""
					),
				undefined,
				{ timeout: 15_000 }
			);
		});
	});

	describe("EventStream (the hub, with fake responses)", () => {
		/** A response whose socket drains only when told: what a slow client looks like. */
		class FakeRes extends EventEmitter {
			chunks: string[] = [];
			writableLength = 0;
			writableEnded = false;
			destroyed = false;
			/** Bytes stay queued (writableLength grows) instead of leaving. */
			slow = false;
			writeHead() {
				return this;
			}
			write(chunk: string) {
				this.chunks.push(chunk);
				if (this.slow) this.writableLength += chunk.length;
				return !this.slow;
			}
			end() {
				this.writableEnded = true;
				this.emit("close");
			}
			destroy() {
				this.destroyed = true;
				this.emit("close");
			}
			drain() {
				this.slow = false;
				this.writableLength = 0;
				this.emit("drain");
			}
			get events() {
				return parseEvents(this.chunks.join(""));
			}
		}
		const socket = { setNoDelay() {}, setKeepAlive() {} };
		const principals: Record<string, Principal> = {
			admin: { sub: "a", tenant: "ops", roles: ["admin"], exp: Date.now() / 1000 + 600 },
			acme: { sub: "b", tenant: "acme", roles: ["viewer"], exp: Date.now() / 1000 + 600 },
			soon: { sub: "c", tenant: "acme", roles: ["viewer"], exp: Date.now() / 1000 + 0.1 }
		};
		const verifier = {
			verify: async (token: string) => principals[token],
			verifyHeader: async (header: string | undefined) => principals[header!.slice(7)]
		};
		const tickets = { redeem: async (ticket: string) => principals[ticket] };
		const sleep = (ms: number) => new Promise(r => setTimeout(r, ms));
		let stream: EventStream;

		async function connect(token: string) {
			const res = new FakeRes();
			await stream.handle(
				{ headers: {}, query: { ticket: token }, socket } as any,
				res as any,
				err => {
					throw err;
				}
			);
			return res;
		}

		afterEach(() => stream.close());

		it("sends each node's newest report once per interval, with only the drawn fields", async () => {
			stream = new EventStream({ verifier, tickets, reportInterval: 60 });
			const res = await connect("acme");
			const report = (nodeID: string, cpu: number) => ({
				nodeID,
				hostname: nodeID,
				labels: {},
				capacity: { cpu: 8, memory: GiB, gpus: [] },
				usage: { cpu, cpuPercent: cpu * 10, memory: 1, gpus: [], loadAvg: [1, 1, 1] },
				interval: 10,
				sentAt: 1
			});
			for (let i = 1; i <= 5; i++) stream.publish("node.report", report("n1", i));
			stream.publish("node.report", report("n2", 7));
			await sleep(100);
			const batches = res.events.filter(([name]) => name === "node.report");
			expect(batches).toHaveLength(1);
			expect(batches[0][1].items).toEqual([
				{ nodeID: "n1", usage: { cpu: 5, cpuPercent: 50, memory: 1, gpus: [] }, at: 1 },
				{ nodeID: "n2", usage: { cpu: 7, cpuPercent: 70, memory: 1, gpus: [] }, at: 1 }
			]);
		});

		it("drops events for a slow client instead of buffering them, and resyncs it after", async () => {
			stream = new EventStream({ verifier, tickets, maxBuffer: 2000 });
			const fast = await connect("admin");
			const slow = await connect("admin");
			slow.slow = true;
			const node = { id: "n1", hostname: "x".repeat(200), status: "ready" };
			for (let i = 0; i < 100; i++) stream.publish("node.updated", node);
			expect(fast.events.filter(([n]) => n === "node.updated")).toHaveLength(100);
			expect(slow.writableLength).toBeLessThanOrEqual(2000);
			const written = slow.events.filter(([n]) => n === "node.updated").length;
			expect(written).toBeLessThan(10);
			slow.drain();
			expect(slow.events.at(-1)).toEqual(["resync", { dropped: 100 - written }]);
			stream.publish("node.updated", node);
			expect(slow.events.at(-1)![0]).toBe("node.updated");
		});

		it("disconnects a client stuck longer than stallTimeout, and forgets closed ones", async () => {
			stream = new EventStream({
				verifier,
				tickets,
				maxBuffer: 500,
				heartbeatInterval: 20,
				stallTimeout: 50
			});
			const stuck = await connect("admin");
			const gone = await connect("admin");
			expect(stream.size).toBe(2);
			gone.emit("close");
			expect(stream.size).toBe(1);
			stuck.slow = true;
			stream.publish("node.updated", { id: "n1", hostname: "x".repeat(600) });
			await sleep(150);
			expect(stuck.destroyed).toBe(true);
			expect(stream.size).toBe(0);
			expect(gone.chunks.join("")).not.toContain("node.updated");
		});

		it("ends the stream when the token expires, and every stream on close()", async () => {
			stream = new EventStream({ verifier, tickets });
			const soon = await connect("soon");
			const other = await connect("acme");
			await sleep(200);
			expect(soon.events.at(-1)![0]).toBe("expired");
			expect(soon.writableEnded).toBe(true);
			expect(stream.size).toBe(1);
			stream.close();
			expect(other.writableEnded).toBe(true);
			expect(stream.size).toBe(0);
		});

		it("gives workload events to admins and the workload's tenant; alerts by their tenant", async () => {
			const lookups: string[] = [];
			stream = new EventStream({
				verifier,
				tickets,
				lookupTenant: async id => {
					lookups.push(id);
					return id.startsWith("acme") ? "acme" : id === "lost" ? null : "globex";
				}
			});
			const admin = await connect("admin");
			const acme = await connect("acme");
			const state = (workloadId: string) => ({ workloadId, replica: 0, state: "running" });
			stream.publish("workload.replica.state", state("acme-1"));
			stream.publish("workload.replica.state", state("acme-1"));
			stream.publish("workload.replica.state", state("globex-1"));
			stream.publish("workload.replica.state", state("lost"));
			stream.publish("alert.firing", { id: "x", labels: { tenant: "globex" } });
			stream.publish("alert.firing", { id: "y", labels: { node: "n1" } });
			stream.publish("config.changed", { key: "k", value: "secret", version: 2 });
			await sleep(20);
			const ids = (res: FakeRes) =>
				res.events
					.filter(([n]) => n !== "hello")
					.map(([n, d]) => `${n}:${d.workloadId ?? d.id ?? d.key}`);
			expect(ids(admin).sort()).toEqual(
				[
					"alert.firing:x",
					"alert.firing:y",
					"config.changed:k",
					"workload.replica.state:acme-1",
					"workload.replica.state:acme-1",
					"workload.replica.state:globex-1",
					"workload.replica.state:lost"
				].sort()
			);
			expect(ids(acme).sort()).toEqual(
				[
					"alert.firing:y",
					"config.changed:k",
					"workload.replica.state:acme-1",
					"workload.replica.state:acme-1"
				].sort()
			);
			// The tenant is asked once per workload; config values never go out.
			expect(lookups.sort()).toEqual(["acme-1", "globex-1", "lost"]);
			expect(admin.chunks.join("")).not.toContain("secret");
		});
	});
});
