/**
 * The monitor through the HTTP API, in one process over Moleculer's in-memory transporter: a
 * control broker (inventory, monitor, gateway) and a stub agent that reports a GPU whose
 * temperature the test sets. Then, with a real redis-server, history surviving a restart.
 */
import fs from "fs";
import http from "http";
import os from "os";
import path from "path";
import type { AddressInfo } from "net";
import { ServiceBroker, ServiceSchema } from "moleculer";
import request from "supertest";
import GatewayService from "../../services/gateway.service";
import MonitorService from "../../services/monitor.service";
import { COLLECTIONS } from "../../services/shared/collections";
import { EVENTS } from "../../services/shared/events";
import NodesService from "../../services/nodes.service";
import SchedulerService from "../../services/scheduler.service";
import { mintToken } from "../../services/gateway/jwt";
import type { Alert } from "../../services/monitor/alerts";
import { DEFAULT_RULES } from "../../services/monitor/default-rules";
import type { WebhookBody } from "../../services/monitor/notify";
import { IsaPrometheusReporter } from "../../reporters/prometheus";
import type { Store } from "../../services/shared/store";
import type { NodeReport } from "../../services/shared/types";
import { newWorkload } from "../../services/scheduler/workload";
import { eventually } from "../helpers/cluster";
import { startRedis, TestServer } from "../helpers/servers";
import { auditService, withSettings } from "../helpers/services";

const SECRET = "monitor-test-secret";
const GiB = 1024 ** 3;

/** Fast enough for a test: evaluation every 100 ms, history in 100 ms buckets. */
const FAST = {
	evaluateInterval: 100,
	refreshInterval: 200,
	syncInterval: 500,
	snapshotInterval: 60_000,
	history: [
		{ step: 100, points: 600 },
		{ step: 1000, points: 600 }
	],
	webhook: { timeout: 1000, maxAttempts: 5, backoff: 50, maxBackoff: 200, maxQueue: 100 }
};

function report(nodeID: string, temperature: number): NodeReport {
	return {
		nodeID,
		hostname: nodeID,
		labels: {},
		capacity: {
			cpu: 8,
			memory: 32 * GiB,
			gpus: [{ index: 0, uuid: `GPU-${nodeID}`, model: "NVIDIA A100", memory: 80 * GiB }]
		},
		usage: {
			cpu: 2,
			cpuPercent: 25,
			memory: 8 * GiB,
			gpus: [{ index: 0, utilization: 40, memoryUsed: 10 * GiB, temperature }],
			loadAvg: [0, 0, 0]
		},
		interval: 100,
		sentAt: Date.now()
	};
}

/** An agent that reports every 100 ms, and hears the alert events the monitor broadcasts. */
function stubAgent(nodeID: string, state: { temperature: number; heard: string[] }): ServiceSchema {
	return {
		name: "agent",
		actions: { facts: () => ({ hostname: nodeID }) },
		events: {
			[EVENTS.alertFiring](ctx: any) {
				state.heard.push(`firing ${(ctx.params as Alert).rule}`);
			},
			[EVENTS.alertResolved](ctx: any) {
				state.heard.push(`resolved ${(ctx.params as Alert).rule}`);
			}
		},
		started(this: any) {
			this.timer = setInterval(
				() => this.broker.broadcast("node.report", report(nodeID, state.temperature)),
				100
			);
		},
		stopped(this: any) {
			clearInterval(this.timer);
		}
	};
}

/** Answers 503 to the first `failures` POSTs, then 200; keeps the bodies it took. */
async function webhookReceiver(failures: number) {
	const rx = { attempts: 0, bodies: [] as WebhookBody[], url: "" };
	const server = http.createServer((req, res) => {
		let data = "";
		req.on("data", c => (data += c));
		req.on("end", () => {
			if (++rx.attempts <= failures) return void res.writeHead(503).end();
			rx.bodies.push(JSON.parse(data));
			res.writeHead(200).end();
		});
	});
	await new Promise<void>(resolve => server.listen(0, "127.0.0.1", resolve));
	rx.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
	return { rx, close: () => new Promise(resolve => server.close(resolve)) };
}

describe("monitor over the API", () => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), "isa-mon-"));
	const store = path.join(dir, "isa.db");
	const namespace = `mon-${process.pid}`;
	const options = {
		namespace,
		transporter: "Fake",
		logger: false,
		heartbeatInterval: 1,
		heartbeatTimeout: 3
	};
	const control = new ServiceBroker({
		...options,
		nodeID: "control",
		metrics: {
			enabled: true,
			reporter: [new IsaPrometheusReporter({ port: null, host: "127.0.0.1" }) as any]
		}
	});
	control.createService(withSettings(NodesService, { store }));
	// The monitor hears the workloads from the scheduler, which owns them.
	control.createService(withSettings(SchedulerService, { store }));
	const monitor = control.createService(withSettings(MonitorService, { store, ...FAST }));
	control.createService(auditService(store));
	const gateway = control.createService(
		withSettings(GatewayService, { port: 0, jwtSecret: SECRET, store })
	);
	const agent = new ServiceBroker({ ...options, nodeID: "gpu-1" });
	const gpu = { temperature: 60, heard: [] as string[] };
	agent.createService(stubAgent("gpu-1", gpu));
	const tokens: Record<string, string> = {};
	let server: any;
	let hook: Awaited<ReturnType<typeof webhookReceiver>>;

	const api = (method: "get" | "post" | "delete", url: string, token = tokens.operator) =>
		request(server)[method](url).set("Authorization", `Bearer ${token}`);

	beforeAll(async () => {
		hook = await webhookReceiver(2);
		await Promise.all([control.start(), agent.start()]);
		server = (gateway as any).server;
		for (const [name, roles, tenant] of [
			["operator", ["operator"], "acme"],
			["viewer", ["viewer"], "acme"],
			["other", ["viewer"], "globex"],
			["admin", ["admin"], "ops"]
		] as const)
			tokens[name] = await mintToken({
				secret: SECRET,
				sub: name,
				tenant,
				roles: [...roles],
				ttl: 600
			});
	});

	afterAll(async () => {
		await Promise.all([agent.stop(), control.stop()]);
		await hook.close();
		fs.rmSync(dir, { recursive: true, force: true });
	});

	it("ships the default rules, readable by any role", async () => {
		const res = await api("get", "/api/v1/alerts/rules", tokens.viewer);
		expect(res.status).toBe(200);
		expect(res.body.total).toBe(DEFAULT_RULES.length);
		expect(res.body.items.map((r: { name: string }) => r.name)).toEqual(
			DEFAULT_RULES.map(r => r.name)
		);
		expect(res.body.items).toContainEqual(
			expect.objectContaining({
				id: "default-gpu-hot",
				metric: "node.gpu.temperature",
				op: ">",
				threshold: 85,
				for: "1m",
				forMs: 60_000
			})
		);
	});

	it("returns each node's and the cluster's history", async () => {
		const points = await eventually(
			async () => {
				const res = await api(
					"get",
					"/api/v1/stats?node=gpu-1&metric=node.cpu.usage&since=10s"
				);
				const p = res.body.items[0]?.points;
				return p?.length >= 3 && res.body;
			},
			5000,
			"cpu history"
		);
		expect(points).toMatchObject({
			total: 1,
			step: 100,
			items: [{ metric: "node.cpu.usage", labels: { node: "gpu-1" } }]
		});
		expect(points.items[0].points[0]).toEqual([expect.any(Number), 25]);

		const cluster = await api("get", "/api/v1/stats?metric=cluster.gpu.total&since=10s&step=1");
		expect(cluster.status).toBe(200);
		expect(cluster.body.step).toBe(1000);
		expect(cluster.body.items).toEqual([
			{ metric: "cluster.gpu.total", labels: {}, points: expect.any(Array) }
		]);
		// A 1 s bucket averages the samples in it: those from before gpu-1 reported say 0.
		const [, total] = cluster.body.items[0].points.at(-1);
		expect(total).toBeGreaterThan(0);
		expect(total).toBeLessThanOrEqual(1);

		const all = await api("get", "/api/v1/stats?node=gpu-1&since=10s");
		expect(new Set(all.body.items.map((s: { metric: string }) => s.metric))).toEqual(
			new Set([
				"node.status",
				"node.cpu.usage",
				"node.memory.usage",
				"node.gpu.utilization",
				"node.gpu.memory.used",
				"node.gpu.temperature"
			])
		);

		const bad = await api("get", "/api/v1/stats?metric=node.cpu");
		expect(bad.status).toBe(422);
		expect(bad.body).toMatchObject({ type: "INVALID_INPUT", data: { field: "metric" } });
	});

	it("refuses bad rules: 403 for a viewer, 422 for metric, op or for, 409 for a taken name", async () => {
		const rule = {
			name: "busy",
			metric: 'node.cpu.usage{node="gpu-1"}',
			op: ">",
			threshold: 90,
			for: "1m",
			severity: "warning"
		};
		expect((await api("post", "/api/v1/alerts/rules", tokens.viewer).send(rule)).status).toBe(
			403
		);
		const badMetric = await api("post", "/api/v1/alerts/rules").send({
			...rule,
			metric: "node.cpu.usage{node=gpu-1}"
		});
		expect(badMetric.status).toBe(422);
		expect(badMetric.body).toMatchObject({
			code: 422,
			type: "INVALID_INPUT",
			data: { field: "metric", position: 20 }
		});
		const badOp = await api("post", "/api/v1/alerts/rules").send({ ...rule, op: "=~" });
		expect(badOp.status).toBe(422);
		expect(badOp.body.type).toBe("VALIDATION_ERROR");
		const badFor = await api("post", "/api/v1/alerts/rules").send({ ...rule, for: "soon" });
		expect(badFor.status).toBe(422);
		expect(badFor.body.data).toEqual({ field: "for", value: "soon" });
		const unknown = await api("post", "/api/v1/alerts/rules").send({ ...rule, extra: 1 });
		expect(unknown.status).toBe(422);
		expect((await api("post", "/api/v1/alerts/rules").send(rule)).status).toBe(201);
		expect((await api("post", "/api/v1/alerts/rules").send(rule)).status).toBe(409);
	});

	it("takes a rule pending, firing and resolved, with events and webhook calls (retried)", async () => {
		const hot = {
			name: "gpu-1 hot",
			metric: 'node.gpu.temperature{node="gpu-1"}',
			op: ">=",
			threshold: 80,
			for: 1,
			severity: "critical",
			labels: { team: "ml" },
			notify: { webhook: hook.rx.url }
		};
		const create = () =>
			api("post", "/api/v1/alerts/rules").set("Idempotency-Key", "hot-gpu-1").send(hot);
		const created = await create();
		expect(created.status).toBe(201);
		// A retry with the same key gets the same rule, not a 409.
		const again = await create();
		expect(again.status).toBe(200);
		expect(again.body.id).toBe(created.body.id);

		gpu.temperature = 90;
		const pending = await eventually(
			async () =>
				(await api("get", "/api/v1/alerts?state=pending")).body.items.find(
					(a: Alert) => a.ruleId === created.body.id
				),
			3000,
			"a pending alert"
		);
		expect(pending).toMatchObject({
			rule: "gpu-1 hot",
			severity: "critical",
			series: 'node.gpu.temperature{gpu="0",node="gpu-1"}',
			labels: { node: "gpu-1", gpu: "0", team: "ml" },
			value: 90
		});
		const firing = await eventually(
			async () =>
				(await api("get", "/api/v1/alerts?state=firing")).body.items.find(
					(a: Alert) => a.ruleId === created.body.id
				),
			3000,
			"the alert firing"
		);
		expect(firing.since - firing.activeAt).toBeGreaterThanOrEqual(1000);
		await eventually(async () => gpu.heard.includes("firing gpu-1 hot"), 3000, "alert.firing");
		await eventually(async () => hook.rx.bodies.length === 1, 3000, "the firing webhook");
		expect(hook.rx.attempts).toBe(3);
		expect(hook.rx.bodies[0]).toMatchObject({
			version: 1,
			status: "firing",
			rule: { id: created.body.id, name: "gpu-1 hot" },
			alert: { id: firing.id, state: "firing", value: 90 }
		});

		gpu.temperature = 60;
		await eventually(async () => hook.rx.bodies.length === 2, 3000, "the resolved webhook");
		expect(hook.rx.bodies[1]).toMatchObject({
			status: "resolved",
			alert: { id: firing.id, state: "resolved", firedAt: firing.firedAt }
		});
		expect(gpu.heard).toContain("resolved gpu-1 hot");
		const resolved = await api("get", "/api/v1/alerts?state=resolved", tokens.viewer);
		expect(resolved.body.items).toContainEqual(
			expect.objectContaining({ id: firing.id, state: "resolved" })
		);
	});

	it("serves the isa_* gauges on /metrics", async () => {
		control.broadcast("resource.health.changed", {
			id: "r1",
			name: "pg",
			health: { status: "unhealthy", checkedAt: 1, latencyMs: 1, error: "refused" }
		});
		control.broadcast("service.health.changed", {
			name: "api",
			endpoint: "http://a",
			health: { status: "healthy", checkedAt: 1, latencyMs: 1 }
		});
		const text = await eventually(
			async () => {
				const res = await request(server).get("/metrics");
				return res.text.includes("isa_health_status") && res.text;
			},
			3000,
			"gauges"
		);
		const line = (name: string, labels: string, value: number) =>
			expect(text).toMatch(new RegExp(`^${name}\\{[^}\\n]*${labels}\\} ${value}$`, "m"));
		line("isa_node_up", 'node="gpu-1"', 1);
		line("isa_node_cpu_capacity", 'node="gpu-1"', 8);
		line("isa_node_cpu_usage", 'node="gpu-1"', 2);
		line("isa_node_memory_capacity", 'node="gpu-1"', 32 * GiB);
		line("isa_node_memory_usage", 'node="gpu-1"', 8 * GiB);
		line("isa_node_gpu_count", 'node="gpu-1"', 1);
		line("isa_node_gpu_utilization", 'node="gpu-1",gpu="0"', 40);
		line("isa_node_gpu_memory_used", 'node="gpu-1",gpu="0"', 10 * GiB);
		line("isa_node_gpu_memory_capacity", 'node="gpu-1",gpu="0"', 80 * GiB);
		line("isa_node_gpu_temperature", 'node="gpu-1",gpu="0"', 60);
		line("isa_node_allocated_gpus", 'node="gpu-1"', 0);
		line("isa_workloads", 'state="running"', 0);
		line("isa_health_status", 'kind="resource",name="pg"', 0);
		line("isa_health_status", 'kind="service",name="api"', 1);
		line("isa_alerts_firing", 'severity="critical"', 0);
		expect(text).toMatch(/^# TYPE isa_node_gpu_temperature gauge$/m);
	});

	it("follows the scheduler's workloads; a tenant sees only its own", async () => {
		const w = newWorkload(
			{
				name: "llm",
				kind: "process",
				process: { command: "python3" },
				resources: { cpu: 1, memory: "1Gi", gpu: 8 }
			},
			{ id: "w1", tenant: "acme", createdBy: "ann", seq: 1, now: Date.now() }
		);
		await ((monitor as any).store as Store).put("workloads", w.id, w);
		const url = '/api/v1/stats?since=10s&metric=workload.replicas{state="pending"}';
		const mine = await eventually(
			async () => (await api("get", encodeURI(url), tokens.viewer)).body.items[0],
			3000,
			"workload series"
		);
		expect(mine.labels).toEqual({
			workload: "w1",
			name: "llm",
			tenant: "acme",
			state: "pending"
		});
		expect(mine.points.at(-1)[1]).toBe(1);
		expect((await api("get", encodeURI(url), tokens.other)).body.total).toBe(0);
		const pending = await api("get", "/api/v1/stats?since=10s&metric=workloads.pending");
		expect(pending.body.items[0].points.at(-1)[1]).toBe(1);
	});

	it("deletes a rule (404 for an unknown one; a default rule is the cluster's: 403 but for an admin)", async () => {
		const missing = await api("delete", "/api/v1/alerts/rules/nope");
		expect(missing.status).toBe(404);
		expect(missing.body).toMatchObject({
			type: "NOT_FOUND",
			data: { kind: "Alert rule", id: "nope" }
		});
		const forbidden = await api("delete", "/api/v1/alerts/rules/default-gpu-hot");
		expect(forbidden.status).toBe(403);
		expect(forbidden.body).toMatchObject({
			type: "FORBIDDEN",
			data: { kind: "Alert rule", id: "default-gpu-hot", owner: "cluster" }
		});
		expect(
			(await api("delete", "/api/v1/alerts/rules/default-gpu-hot", tokens.admin)).status
		).toBe(200);
		const rules = await api("get", "/api/v1/alerts/rules");
		expect(rules.body.items.map((r: { id: string }) => r.id)).not.toContain("default-gpu-hot");
	});
});

describe("monitor history across a restart, on Redis", () => {
	let redis: TestServer;
	const settings = () => ({ store: redis.url, storePrefix: `mon-${process.pid}`, ...FAST });

	function monitorBroker() {
		const broker = new ServiceBroker({ logger: false });
		const service = broker.createService(
			withSettings(MonitorService, { ...settings(), snapshotInterval: 200 })
		);
		return { broker, store: () => (service as any).store as Store };
	}

	beforeAll(async () => {
		redis = await startRedis();
	});
	afterAll(async () => {
		await redis.stop();
	});

	it("snapshots the history periodically and reloads it, and the rules, at start", async () => {
		const first = monitorBroker();
		await first.broker.start();
		for (let i = 0; i < 5; i++) {
			await first.broker.broadcast("node.report", report("n1", 50 + i));
			await new Promise(r => setTimeout(r, 120));
		}
		const query = { node: "n1", metric: "node.gpu.temperature", since: "30s" };
		const before: any = await first.broker.call("monitor.stats", query);
		expect(before.items[0].points.length).toBeGreaterThanOrEqual(3);
		// Saved while running, not only on a clean stop: a crash loses one interval at most.
		await eventually(
			async () => {
				const doc = await first.store().get<any>(COLLECTIONS.monitor, "snapshot");
				return doc?.value.history.series.some((x: any) => x.labels.node === "n1");
			},
			3000,
			"a periodic snapshot"
		);
		await first.broker.call("monitor.deleteRule", { id: "default-node-down" });
		await first.broker.stop();

		const second = monitorBroker();
		await second.broker.start();
		try {
			const after: any = await second.broker.call("monitor.stats", query);
			expect(after.items[0].points.slice(0, before.items[0].points.length)).toEqual(
				before.items[0].points
			);
			// Deleted defaults stay deleted: they are installed once per store.
			const rules: any = await second.broker.call("monitor.listRules", {});
			expect(rules.total).toBe(DEFAULT_RULES.length - 1);
		} finally {
			await second.broker.stop();
		}
	});
});
