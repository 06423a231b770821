/**
 * Tenants kept apart in the monitor, the nodes' details, workload logs and the event stream,
 * through the HTTP API: two tenants' operators and viewers and an admin, over Moleculer's
 * in-memory transporter with a stub agent on one node. Both tenants run workloads on that node;
 * one of globex's can never be placed (it asks for more GPUs than there are), so it stays pending.
 */
import fs from "fs";
import http from "http";
import os from "os";
import path from "path";
import type { AddressInfo } from "net";
import { ServiceBroker } from "moleculer";
import request from "supertest";
import GatewayService from "../../services/gateway.service";
import MonitorService from "../../services/monitor.service";
import NodesService from "../../services/nodes.service";
import SchedulerService from "../../services/scheduler.service";
import TenantsService from "../../services/tenants.service";
import { mintToken } from "../../services/gateway/jwt";
import type { Alert } from "../../services/monitor/alerts";
import type { WebhookBody } from "../../services/monitor/notify";
import { eventually } from "../helpers/cluster";
import { auditService, withSettings } from "../helpers/services";
import { stubAgent } from "../helpers/stub-agent";

const SECRET = "monitor-isolation-secret";

const FAST = {
	evaluateInterval: 100,
	refreshInterval: 200,
	syncInterval: 500,
	snapshotInterval: 60_000,
	history: [{ step: 100, points: 600 }],
	webhook: { timeout: 1000, maxAttempts: 2, backoff: 50, maxBackoff: 100, maxQueue: 100 }
};

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

/** An open event stream: what arrived so far, and a way to close it. */
function openStream(url: string): Promise<{ text: () => string; close: () => void }> {
	return new Promise((resolve, reject) => {
		let body = "";
		const req = http.get(url, res => {
			res.setEncoding("utf8");
			res.on("data", chunk => {
				body += chunk;
				if (body.includes("event: hello"))
					resolve({ text: () => body, close: () => req.destroy() });
			});
		});
		req.on("error", err => {
			if ((err as NodeJS.ErrnoException).code !== "ECONNRESET") reject(err);
		});
	});
}

describe("tenants apart in the monitor, node details, logs and the event stream", () => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), "isa-iso-"));
	const store = path.join(dir, "isa.db");
	const namespace = `iso-${process.pid}`;
	const options = {
		namespace,
		transporter: "Fake",
		logger: false,
		heartbeatInterval: 1,
		heartbeatTimeout: 3
	};
	const control = new ServiceBroker({ ...options, nodeID: "control" });
	control.createService(withSettings(NodesService, { store }));
	control.createService(
		withSettings(SchedulerService, { store, reconcileInterval: 300, announceDelay: 200 })
	);
	control.createService(withSettings(TenantsService, { store }));
	control.createService(auditService(store));
	control.createService(withSettings(MonitorService, { store, ...FAST }));
	const gateway = control.createService(
		withSettings(GatewayService, { port: 0, jwtSecret: SECRET, store })
	);
	const agent = new ServiceBroker({ ...options, nodeID: "gpu-1" });
	agent.createService(stubAgent({ id: "gpu-1", cpu: 8, memoryGiB: 32, gpus: 1, interval: 100 }));

	const tokens: Record<string, string> = {};
	const ids: Record<string, string> = {};
	let server: any;
	let base = "";
	const hook = { bodies: [] as WebhookBody[], url: "", server: null as http.Server | null };

	const api = (method: "get" | "post" | "delete", url: string, token: string) =>
		request(server)[method](url).set("Authorization", `Bearer ${token}`);
	const rule = (name: string, metric: string, extra: Record<string, unknown> = {}) => ({
		name,
		metric,
		op: ">",
		threshold: 0,
		for: 0,
		severity: "warning",
		...extra
	});
	const alertsOf = async (token: string): Promise<Alert[]> =>
		(await api("get", "/api/v1/alerts", token)).body.items;

	beforeAll(async () => {
		hook.server = http.createServer((req, res) => {
			let data = "";
			req.on("data", c => (data += c));
			req.on("end", () => {
				hook.bodies.push(JSON.parse(data));
				res.writeHead(200).end();
			});
		});
		await new Promise<void>(resolve => hook.server!.listen(0, "127.0.0.1", resolve));
		hook.url = `http://127.0.0.1:${(hook.server!.address() as AddressInfo).port}/hook`;
		await Promise.all([control.start(), agent.start()]);
		server = (gateway as any).server;
		if (!server.listening) await new Promise(r => server.once("listening", r));
		base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
		for (const [name, roles, tenant] of [
			["admin", ["admin"], "ops"],
			["acme", ["operator"], "acme"],
			["acmeViewer", ["viewer"], "acme"],
			["globex", ["operator"], "globex"],
			["globexViewer", ["viewer"], "globex"]
		] as const)
			tokens[name] = await mintToken({
				secret: SECRET,
				sub: name,
				tenant,
				roles: [...roles],
				ttl: 600
			});
		await eventually(
			async () => (await api("get", "/api/v1/nodes", tokens.admin)).body.total === 1,
			5000,
			"the node"
		);
		const create = async (token: string, name: string, resources: object, replicas = 1) => {
			const res = await api("post", "/api/v1/workloads", token).send({
				name,
				kind: "process",
				process: { command: "x" },
				resources,
				replicas
			});
			expect(res.status).toBe(201);
			ids[name] = res.body.id;
		};
		await create(tokens.acme, "a-run", { cpu: 1, memory: "1Gi" });
		await create(tokens.globex, "g-run", { cpu: 1, memory: "1Gi" }, 2);
		await create(tokens.globex, "g-stuck", { cpu: 1, memory: "1Gi", gpu: 8 });
		await eventually(
			async () => {
				const { items } = (await api("get", "/api/v1/workloads", tokens.admin)).body;
				return items.filter((w: { status: string }) => w.status === "running").length === 2;
			},
			5000,
			"a-run and g-run running"
		);
	});

	afterAll(async () => {
		await Promise.all([agent.stop(), control.stop()]);
		await new Promise(resolve => hook.server!.close(resolve));
		fs.rmSync(dir, { recursive: true, force: true });
	});

	it("keeps rules apart: another tenant's is absent (404), the cluster's only admins delete (403)", async () => {
		const mine = await api("post", "/api/v1/alerts/rules", tokens.acme).send(
			rule("running", 'workload.replicas{state="running"}', { notify: { webhook: hook.url } })
		);
		expect(mine.status).toBe(201);
		expect(mine.body).toMatchObject({ owner: "tenant", tenant: "acme" });
		ids.acmeRule = mine.body.id;
		// The same name in another tenant is no conflict: a 409 would say that acme has it.
		const theirs = await api("post", "/api/v1/alerts/rules", tokens.globex).send(
			rule("running", 'workload.replicas{state="running"}')
		);
		expect(theirs.status).toBe(201);
		ids.globexRule = theirs.body.id;
		const cluster = await api("post", "/api/v1/alerts/rules", tokens.admin).send(
			rule("any pending", 'workload.replicas{state="pending"}')
		);
		expect(cluster.body).toMatchObject({ owner: "cluster" });
		expect(cluster.body.tenant).toBeUndefined();
		ids.clusterRule = cluster.body.id;

		const listed = async (token: string) =>
			(await api("get", "/api/v1/alerts/rules", token)).body.items.map(
				(r: { id: string }) => r.id
			);
		const acmeSees = await listed(tokens.acmeViewer);
		expect(acmeSees).toEqual(expect.arrayContaining(["default-node-down", ids.acmeRule]));
		expect(acmeSees).toContain(ids.clusterRule);
		expect(acmeSees).not.toContain(ids.globexRule);
		expect(await listed(tokens.globexViewer)).not.toContain(ids.acmeRule);
		expect(await listed(tokens.admin)).toEqual(
			expect.arrayContaining([ids.acmeRule, ids.globexRule, ids.clusterRule])
		);

		const hidden = await api("delete", `/api/v1/alerts/rules/${ids.acmeRule}`, tokens.globex);
		expect(hidden.status).toBe(404);
		expect(hidden.body).toMatchObject({
			code: 404,
			type: "NOT_FOUND",
			data: { kind: "Alert rule", id: ids.acmeRule }
		});
		const nodeDown = await api(
			"delete",
			"/api/v1/alerts/rules/default-node-down",
			tokens.globex
		);
		expect(nodeDown.status).toBe(403);
		expect(nodeDown.body).toMatchObject({
			code: 403,
			type: "FORBIDDEN",
			data: { id: "default-node-down", owner: "cluster" }
		});
		// A viewer may not delete at all, even its own tenant's.
		expect(
			(await api("delete", `/api/v1/alerts/rules/${ids.acmeRule}`, tokens.acmeViewer)).status
		).toBe(403);
		expect(await listed(tokens.admin)).toEqual(
			expect.arrayContaining([ids.acmeRule, "default-node-down"])
		);
	});

	it("fires a tenant's rule on its own series only; alerts, stats and webhooks show each its own", async () => {
		// The cluster's rule sees globex's stuck workload; globex's own rule its running one.
		const admin = await eventually(
			async () => {
				const all = await alertsOf(tokens.admin);
				const firing = (ruleId: string) =>
					all.filter(a => a.ruleId === ruleId && a.state === "firing");
				return firing(ids.clusterRule).length === 1 &&
					firing(ids.acmeRule).length === 1 &&
					firing(ids.globexRule).length === 1
					? all
					: null;
			},
			5000,
			"the rules firing"
		);
		// Made once the monitor has seen a-run running (acme's rule fires on it): from then on
		// acme has nothing pending, and globex's stuck workload must not count for it.
		const noPending = await api("post", "/api/v1/alerts/rules", tokens.acme).send(
			rule("anything pending", "workloads.pending")
		);
		expect(noPending.status).toBe(201);
		// Let a few more rounds go by: acme's rules never fire on globex's workloads.
		await new Promise(r => setTimeout(r, 500));
		const all = await alertsOf(tokens.admin);
		const ofRule = (ruleId: string) => all.filter(a => a.ruleId === ruleId);
		expect(ofRule(ids.acmeRule).map(a => a.labels.name)).toEqual(["a-run"]);
		expect(ofRule(noPending.body.id)).toEqual([]);
		expect(ofRule(ids.globexRule).map(a => a.labels.name)).toEqual(["g-run"]);
		expect(ofRule(ids.clusterRule).map(a => a.labels)).toEqual([
			expect.objectContaining({ name: "g-stuck", tenant: "globex" })
		]);
		expect(admin.length).toBeGreaterThanOrEqual(3);

		const acmeSees = await alertsOf(tokens.acmeViewer);
		expect(acmeSees.map(a => a.ruleId)).toContain(ids.acmeRule);
		for (const a of acmeSees) {
			expect(a.ruleId).not.toBe(ids.globexRule);
			// The cluster's rule fired on globex's workload: not acme's business.
			expect(a.labels.tenant ?? "acme").toBe("acme");
		}
		const globexSees = await alertsOf(tokens.globexViewer);
		// The default "pending too long" rule's alert (pending for its 5 min) is globex's too.
		expect(globexSees.map(a => a.ruleId).sort()).toEqual(
			[ids.globexRule, ids.clusterRule, "default-workload-pending"].sort()
		);
		expect(acmeSees.map(a => a.ruleId)).not.toContain("default-workload-pending");

		const replicas = async (token: string) =>
			(
				await api(
					"get",
					encodeURI('/api/v1/stats?since=10s&metric=workload.replicas{state="running"}'),
					token
				)
			).body.items.map((s: { labels: { name: string } }) => s.labels.name);
		// Every workload has a series per state (g-stuck's running one says 0).
		expect(await replicas(tokens.acmeViewer)).toEqual(["a-run"]);
		expect((await replicas(tokens.globexViewer)).sort()).toEqual(["g-run", "g-stuck"]);
		expect((await replicas(tokens.admin)).sort()).toEqual(["a-run", "g-run", "g-stuck"]);
		// Node series are everyone's.
		const nodeSeries = await api(
			"get",
			"/api/v1/stats?since=10s&metric=node.status",
			tokens.acmeViewer
		);
		expect(nodeSeries.body.total).toBe(1);

		await eventually(async () => hook.bodies.length >= 1, 3000, "acme's webhook");
		for (const body of hook.bodies) {
			expect(body.rule.id).toBe(ids.acmeRule);
			expect(body.alert.labels).toMatchObject({ tenant: "acme", name: "a-run" });
			expect(JSON.stringify(body)).not.toContain("globex");
		}
	});

	it("shows a node's other-tenant replicas only as counts, and its totals whole", async () => {
		const acme = await api("get", "/api/v1/nodes/gpu-1", tokens.acmeViewer);
		expect(acme.status).toBe(200);
		expect(acme.body.workloads).toEqual([
			expect.objectContaining({ id: ids["a-run"], name: "a-run", tenant: "acme" })
		]);
		expect(acme.body.otherTenants).toEqual({ workloads: 1, replicas: 2 });
		expect(acme.body.allocated).toMatchObject({ cpu: 3 });
		const text = JSON.stringify(acme.body);
		for (const secret of ["globex", "g-run", ids["g-run"]]) expect(text).not.toContain(secret);

		const admin = await api("get", "/api/v1/nodes/gpu-1", tokens.admin);
		expect(admin.body.workloads).toHaveLength(3);
		expect(admin.body.otherTenants).toEqual({ workloads: 0, replicas: 0 });

		const list = await api("get", "/api/v1/nodes", tokens.acmeViewer);
		expect(list.body.items[0].allocated).toMatchObject({ cpu: 3 });
		expect(JSON.stringify(list.body)).not.toMatch(/globex|g-run|a-run/);
	});

	it("answers 404 for another tenant's workload logs", async () => {
		const res = await api("get", `/api/v1/workloads/${ids["a-run"]}/logs`, tokens.globexViewer);
		expect(res.status).toBe(404);
		expect(res.body).toMatchObject({
			type: "NOT_FOUND",
			data: { kind: "Workload", id: ids["a-run"] }
		});
		const missing = await api("get", "/api/v1/workloads/nope/logs", tokens.globexViewer);
		expect(missing.body).toMatchObject({ type: "NOT_FOUND", data: { id: "nope" } });
	});

	it("streams each client only the events it may see", async () => {
		// Each stream with a ticket of its caller's own: the ticket carries who it is for.
		const open = async (token: string) => {
			const { ticket } = (await api("post", "/api/v1/events/ticket", token)).body;
			return openStream(`${base}/api/v1/events?ticket=${encodeURIComponent(ticket)}`);
		};
		const [admin, acme, globex] = await Promise.all([
			open(tokens.admin),
			open(tokens.acmeViewer),
			open(tokens.globexViewer)
		]);
		try {
			const health = { status: "unhealthy", checkedAt: 1, latencyMs: 1, error: "x" };
			control.broadcast("resource.health.changed", {
				id: "acme-db",
				name: "db",
				owner: "tenant",
				tenant: "acme",
				health
			});
			control.broadcast("resource.health.changed", {
				id: "shared-db",
				name: "db",
				owner: "cluster",
				health
			});
			control.broadcast("service.health.changed", {
				name: "globex-api",
				owner: "tenant",
				tenant: "globex",
				health
			});
			// New rules fire now, while the streams listen.
			const acmeRule = await api("post", "/api/v1/alerts/rules", tokens.acme).send(
				rule("running again", 'workload.replicas{state="running"}')
			);
			const clusterRule = await api("post", "/api/v1/alerts/rules", tokens.admin).send(
				rule("anything running", 'workload.replicas{state="running"}')
			);
			const firing = (text: string, ruleId: string) =>
				parseEvents(text).filter(([n, d]) => n === "alert.firing" && d.ruleId === ruleId);
			await eventually(
				async () =>
					firing(admin.text(), clusterRule.body.id).length === 2 &&
					firing(admin.text(), acmeRule.body.id).length === 1,
				5000,
				"the alerts on the admin's stream"
			);
			await new Promise(r => setTimeout(r, 300));
			const names = (text: string, event: string) =>
				parseEvents(text)
					.filter(([n]) => n === event)
					.map(([, d]) => d.id ?? d.name);
			expect(names(acme.text(), "resource.health.changed").sort()).toEqual([
				"acme-db",
				"shared-db"
			]);
			expect(names(globex.text(), "resource.health.changed")).toEqual(["shared-db"]);
			expect(names(globex.text(), "service.health.changed")).toEqual(["globex-api"]);
			expect(names(acme.text(), "service.health.changed")).toEqual([]);
			expect(names(admin.text(), "resource.health.changed").sort()).toEqual([
				"acme-db",
				"shared-db"
			]);

			const tenantsOf = (text: string, ruleId: string) =>
				firing(text, ruleId).map(([, d]) => d.labels.tenant);
			expect(tenantsOf(acme.text(), acmeRule.body.id)).toEqual(["acme"]);
			expect(tenantsOf(globex.text(), acmeRule.body.id)).toEqual([]);
			expect(tenantsOf(acme.text(), clusterRule.body.id)).toEqual(["acme"]);
			expect(tenantsOf(globex.text(), clusterRule.body.id)).toEqual(["globex"]);
			expect(tenantsOf(admin.text(), clusterRule.body.id).sort()).toEqual(["acme", "globex"]);
			// Workload events: globex never hears of acme's workload.
			expect(globex.text()).not.toContain(ids["a-run"]);
		} finally {
			for (const s of [admin, acme, globex]) s.close();
		}
	});
});
