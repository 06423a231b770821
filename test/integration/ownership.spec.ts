/**
 * Ownership through the HTTP API: two tenants' operators (acme, beta), acme's viewer and an
 * admin, against the registry's resources and services, the call proxy and the scheduler's
 * Moleculer service name claims. One process over Moleculer's in-memory transporter, with a
 * second broker that runs a service the way an agent runs acme's workload (its tenant in the
 * service's metadata, node-agent/runner/service-runner.ts) and one of the cluster's.
 */
import fs from "fs";
import os from "os";
import path from "path";
import { ServiceBroker } from "moleculer";
import request from "supertest";
import GatewayService from "../../services/gateway.service";
import NodesService from "../../services/nodes.service";
import RegistryService from "../../services/registry.service";
import SchedulerService from "../../services/scheduler.service";
import TenantsService from "../../services/tenants.service";
import { mintToken } from "../../services/gateway/jwt";
import { EVENTS } from "../../services/shared/events";
import { WORKLOAD_TENANT_META } from "../../services/shared/types";
import { eventually } from "../helpers/cluster";
import { auditService, withSettings } from "../helpers/services";

const SECRET = "ownership-test-secret";
jest.setTimeout(60_000);

describe("ownership", () => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), "isa-own-"));
	const store = path.join(dir, "isa.db");
	const namespace = `own-${process.pid}`;
	const control = new ServiceBroker({
		nodeID: "control",
		namespace,
		transporter: "Fake",
		logger: false
	});
	control.createService(
		withSettings(RegistryService, { store, tickInterval: 100, applyFile: null })
	);
	control.createService(withSettings(NodesService, { store }));
	control.createService(withSettings(SchedulerService, { store }));
	control.createService(withSettings(TenantsService, { store }));
	control.createService(auditService(store));
	const events: Array<{ event: string; payload: Record<string, unknown> }> = [];
	control.createService({
		name: "event-listener",
		events: {
			[EVENTS.resourceHealthChanged](ctx: { params: Record<string, unknown> }) {
				events.push({ event: EVENTS.resourceHealthChanged, payload: ctx.params });
			},
			[EVENTS.serviceHealthChanged](ctx: { params: Record<string, unknown> }) {
				events.push({ event: EVENTS.serviceHealthChanged, payload: ctx.params });
			}
		}
	});
	const gateway = control.createService(
		withSettings(GatewayService, { port: 0, jwtSecret: SECRET, store })
	);
	const worker = new ServiceBroker({
		nodeID: "worker",
		namespace,
		transporter: "Fake",
		logger: false
	});
	worker.createService({
		name: "acme-embedder",
		metadata: { [WORKLOAD_TENANT_META]: "acme" },
		actions: { embed: (ctx: any) => ({ tenant: ctx.meta.tenant }) }
	});
	worker.createService({
		name: "shared-embedder",
		actions: { embed: (ctx: any) => ({ tenant: ctx.meta.tenant }) }
	});
	let server: any;
	const t: Record<"a" | "b" | "viewer" | "admin", string> = {} as never;

	const api = (method: "get" | "post" | "put" | "delete", url: string, token: string) =>
		request(server)[method](url).set("Authorization", `Bearer ${token}`);
	const db = { name: "db", type: "tcp", endpoint: "127.0.0.1:1" };

	beforeAll(async () => {
		await Promise.all([control.start(), worker.start()]);
		server = (gateway as any).server;
		const mint = (sub: string, tenant: string, role: "admin" | "operator" | "viewer") =>
			mintToken({ secret: SECRET, sub, tenant, roles: [role], ttl: 600 });
		t.a = await mint("ana", "acme", "operator");
		t.b = await mint("bob", "beta", "operator");
		t.viewer = await mint("vic", "acme", "viewer");
		t.admin = await mint("root", "ops", "admin");
		await eventually(
			async () =>
				(await api("get", "/api/v1/services", t.admin)).body.items.filter((s: any) =>
					s.name.endsWith("-embedder")
				).length === 2,
			5000,
			"worker services discovered"
		);
	});
	afterAll(async () => {
		await Promise.all([worker.stop(), control.stop()]);
		fs.rmSync(dir, { recursive: true, force: true });
	});

	describe("resources", () => {
		let acmeDb: string;
		let clusterDb: string;

		it("lets both tenants and the cluster each have a 'db', each listing its own and the cluster's", async () => {
			const a = await api("post", "/api/v1/resources", t.a).send(db);
			expect(a.status).toBe(201);
			expect(a.body).toMatchObject({ name: "db", owner: "tenant", tenant: "acme" });
			acmeDb = a.body.id;
			const b = await api("post", "/api/v1/resources", t.b).send(db);
			expect(b.status).toBe(201);
			expect(b.body).toMatchObject({ owner: "tenant", tenant: "beta" });
			const c = await api("post", "/api/v1/resources", t.admin).send(db);
			expect(c.status).toBe(201);
			expect(c.body.owner).toBe("cluster");
			expect(c.body.tenant).toBeUndefined();
			clusterDb = c.body.id;
			const again = await api("post", "/api/v1/resources", t.a).send(db);
			expect(again.status).toBe(409);

			const owners = async (token: string) =>
				(await api("get", "/api/v1/resources", token)).body.items
					.map((r: any) => r.tenant ?? r.owner)
					.sort();
			expect(await owners(t.a)).toEqual(["acme", "cluster"]);
			expect(await owners(t.viewer)).toEqual(["acme", "cluster"]);
			expect(await owners(t.b)).toEqual(["beta", "cluster"]);
			expect(await owners(t.admin)).toEqual(["acme", "beta", "cluster"]);
		});

		it("answers another tenant's GET, PUT and DELETE with 404, exactly as for a missing id", async () => {
			const missing = await api("get", "/api/v1/resources/no-such-id", t.b);
			expect(missing.status).toBe(404);
			const shape = (body: any, id: string) => ({
				...body,
				message: body.message.replace(id, "ID"),
				data: { ...body.data, id: "ID" }
			});
			for (const [method, send] of [
				["get", undefined],
				["put", { ...db, endpoint: "127.0.0.1:2" }],
				["delete", undefined]
			] as const) {
				const res = await api(method, `/api/v1/resources/${acmeDb}`, t.b).send(send);
				expect(res.status).toBe(404);
				expect(shape(res.body, acmeDb)).toEqual(shape(missing.body, "no-such-id"));
			}
			const still = await api("get", `/api/v1/resources/${acmeDb}`, t.a);
			expect(still.status).toBe(200);
			expect(still.body.endpoint).toBe("127.0.0.1:1");
		});

		it("lets every tenant read a cluster resource, only an admin change it (403)", async () => {
			expect((await api("get", `/api/v1/resources/${clusterDb}`, t.b)).status).toBe(200);
			const put = await api("put", `/api/v1/resources/${clusterDb}`, t.a).send({
				...db,
				endpoint: "127.0.0.1:2"
			});
			expect(put.status).toBe(403);
			expect(put.body).toMatchObject({
				type: "FORBIDDEN",
				data: { kind: "resource", owner: "cluster" }
			});
			expect((await api("delete", `/api/v1/resources/${clusterDb}`, t.b)).status).toBe(403);
			const viewerPut = await api("put", `/api/v1/resources/${acmeDb}`, t.viewer).send(db);
			expect(viewerPut.status).toBe(403);
			const adminPut = await api("put", `/api/v1/resources/${clusterDb}`, t.admin).send({
				...db,
				endpoint: "127.0.0.1:2"
			});
			expect(adminPut.status).toBe(200);
			expect(adminPut.body.owner).toBe("cluster");
		});

		it("lets the tenant delete its own, with an event that names its owner", async () => {
			const res = await api("delete", `/api/v1/resources/${acmeDb}`, t.a);
			expect(res.status).toBe(200);
			await eventually(
				async () =>
					events.some(
						e =>
							e.event === EVENTS.resourceHealthChanged &&
							e.payload.id === acmeDb &&
							e.payload.owner === "tenant" &&
							e.payload.tenant === "acme"
					),
				2000,
				"resource event with its owner"
			);
		});
	});

	describe("services", () => {
		const svc = (endpoint: string) => ({ name: "api", type: "http", endpoints: [endpoint] });

		it("resolves a name to the caller's own service, then the cluster's; another tenant's is 404", async () => {
			expect(
				(await api("post", "/api/v1/services", t.a).send(svc("http://127.0.0.1:1"))).status
			).toBe(201);
			expect((await api("get", "/api/v1/services/api", t.a)).body).toMatchObject({
				owner: "tenant",
				tenant: "acme"
			});
			expect((await api("get", "/api/v1/services/api", t.viewer)).status).toBe(200);
			const hidden = await api("get", "/api/v1/services/api", t.b);
			expect(hidden.status).toBe(404);
			expect(hidden.body).toMatchObject({
				type: "NOT_FOUND",
				data: { kind: "Service", id: "api" }
			});
			const del = await api("delete", "/api/v1/services/api", t.b);
			expect(del.status).toBe(404);
			expect(del.body).toEqual(hidden.body);
			const call = await api("post", "/api/v1/services/call", t.b).send({
				service: "api",
				path: "/"
			});
			expect(call.status).toBe(404);
			// beta may have its own "api" now, and sees only it.
			expect(
				(await api("post", "/api/v1/services", t.b).send(svc("http://127.0.0.1:2"))).status
			).toBe(201);
			expect((await api("get", "/api/v1/services/api", t.b)).body.tenant).toBe("beta");
		});

		it("lets an admin pick a tenant's service by ?tenant=, and 409 names the tenants when several", async () => {
			const both = await api("get", "/api/v1/services/api", t.admin);
			expect(both.status).toBe(409);
			expect(both.body.data.tenants).toEqual(["acme", "beta"]);
			const acme = await api("get", "/api/v1/services/api?tenant=acme", t.admin);
			expect(acme.status).toBe(200);
			expect(acme.body.tenant).toBe("acme");
			// An operator's ?tenant= is its own tenant, whatever it names.
			expect((await api("get", "/api/v1/services/api?tenant=acme", t.b)).body.tenant).toBe(
				"beta"
			);
			expect((await api("delete", "/api/v1/services/api?tenant=beta", t.admin)).status).toBe(
				200
			);
			expect((await api("get", "/api/v1/services/api", t.b)).status).toBe(404);
		});

		it("lets only an admin delete a cluster service (403 for an operator)", async () => {
			const c = await api("post", "/api/v1/services", t.admin).send({
				...svc("http://127.0.0.1:3"),
				name: "platform"
			});
			expect(c.status).toBe(201);
			expect(c.body.owner).toBe("cluster");
			expect((await api("get", "/api/v1/services/platform", t.b)).status).toBe(200);
			expect((await api("delete", "/api/v1/services/platform", t.b)).status).toBe(403);
			expect((await api("delete", "/api/v1/services/platform", t.admin)).status).toBe(200);
		});

		it("shows and lets call a tenant's Moleculer service only to that tenant; the cluster's to all", async () => {
			const names = async (token: string) =>
				(await api("get", "/api/v1/services", token)).body.items
					.filter((s: any) => s.name.endsWith("-embedder"))
					.map((s: any) => `${s.name}:${s.tenant ?? s.owner}`);
			expect(await names(t.a)).toEqual(["acme-embedder:acme", "shared-embedder:cluster"]);
			expect(await names(t.b)).toEqual(["shared-embedder:cluster"]);
			const own = await api("post", "/api/v1/services/call", t.a).send({
				service: "acme-embedder",
				action: "embed"
			});
			expect(own.status).toBe(200);
			expect(own.body).toEqual({ tenant: "acme" });
			const hidden = await api("post", "/api/v1/services/call", t.b).send({
				service: "acme-embedder",
				action: "embed"
			});
			const absent = await api("post", "/api/v1/services/call", t.b).send({
				service: "nobody",
				action: "embed"
			});
			expect(hidden.status).toBe(404);
			expect(absent.status).toBe(404);
			expect(hidden.body.message).toBe("Service 'acme-embedder' not found.");
			expect(absent.body.message).toBe("Service 'nobody' not found.");
			expect((await api("get", "/api/v1/services/acme-embedder", t.b)).status).toBe(404);
			const shared = await api("post", "/api/v1/services/call", t.b).send({
				service: "shared-embedder",
				action: "embed"
			});
			expect(shared.status).toBe(200);
			expect(shared.body).toEqual({ tenant: "beta" });
		});

		it("applies an operator's document into its tenant, an admin's into the cluster", async () => {
			const doc = "resources:\n  cache:\n    type: tcp\n    endpoint: 127.0.0.1:1\n";
			const post = (token: string) =>
				api("post", "/api/v1/apply", token)
					.set("Content-Type", "application/yaml")
					.send(doc);
			expect((await post(t.a)).body).toMatchObject({ created: ["resource/cache"] });
			expect((await post(t.b)).body).toMatchObject({ created: ["resource/cache"] });
			expect((await post(t.admin)).body).toMatchObject({ created: ["resource/cache"] });
			expect((await post(t.a)).body).toMatchObject({ unchanged: ["resource/cache"] });
			const caches = (await api("get", "/api/v1/resources", t.admin)).body.items
				.filter((r: any) => r.name === "cache")
				.map((r: any) => r.tenant ?? r.owner)
				.sort();
			expect(caches).toEqual(["acme", "beta", "cluster"]);
		});
	});

	describe("Moleculer service name claims", () => {
		const workload = (name: string, service: object) => ({
			name,
			kind: "service",
			service,
			resources: { cpu: 0.1, memory: "16Mi" }
		});

		it("answers 409 at create to a second tenant asking for a name another tenant runs", async () => {
			const a = await api("post", "/api/v1/workloads", t.a).send(
				workload("chat", { module: "llm/chat" })
			);
			expect(a.status).toBe(201);
			expect(a.body.service).toEqual({ module: "llm/chat", name: "chat" });
			const again = await api("post", "/api/v1/workloads", t.a).send(
				workload("chat-2", { module: "other", name: "chat" })
			);
			expect(again.status).toBe(201);
			const b = await api("post", "/api/v1/workloads", t.b).send(
				workload("mine", { module: "chat" })
			);
			expect(b.status).toBe(409);
			expect(b.body).toMatchObject({
				type: "CONFLICT",
				message:
					"Moleculer service 'chat' is already run by another tenant; choose another service name.",
				data: { service: "chat" }
			});
			expect(JSON.stringify(b.body)).not.toMatch(/acme/);
			expect(
				(
					await api("post", "/api/v1/workloads", t.b).send(
						workload("mine", { module: "chat", name: "beta-chat" })
					)
				).status
			).toBe(201);
			// Released with acme's last workload of the name: beta may take it then.
			for (const w of [a.body, again.body])
				expect((await api("delete", `/api/v1/workloads/${w.id}`, t.a)).status).toBe(200);
			expect(
				(
					await api("post", "/api/v1/workloads", t.b).send(
						workload("chat", { module: "chat" })
					)
				).status
			).toBe(201);
		});
	});
});
