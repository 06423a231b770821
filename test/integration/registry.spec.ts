/**
 * The registry through the HTTP API, in one process over Moleculer's in-memory transporter:
 * resources and services with health checks against real servers (PostgreSQL on this machine,
 * HTTP and TCP servers the test starts and stops), secrets, dependencies, the call proxy,
 * declarative apply, and two registry instances sharing the checks.
 */
import fs from "fs";
import http from "http";
import net from "net";
import os from "os";
import path from "path";
import { ServiceBroker } from "moleculer";
import request from "supertest";
import GatewayService from "../../services/gateway.service";
import RegistryService from "../../services/registry.service";
import { mintToken } from "../../services/gateway/jwt";
import { auditService, withSettings } from "../helpers/services";
import { eventually } from "../helpers/cluster";

const SECRET = "registry-test-secret";
jest.setTimeout(60_000);

/** A local HTTP server that counts hits per path and can be told to fail or to stop. */
async function httpServer(port?: number) {
	const hits = new Map<string, number>();
	let status = 200;
	/** Paths that answer with their own status, whatever `status` is. */
	const failing = new Map<string, number>();
	const server = http.createServer((req, res) => {
		const url = req.url ?? "/";
		hits.set(url, (hits.get(url) ?? 0) + 1);
		res.writeHead(failing.get(url) ?? status, { "content-type": "application/json" });
		res.end(
			JSON.stringify({
				path: url,
				method: req.method,
				port: (server.address() as net.AddressInfo).port
			})
		);
	});
	await new Promise<void>(r => server.listen(port ?? 0, "127.0.0.1", () => r()));
	const p = (server.address() as net.AddressInfo).port;
	return {
		url: `http://127.0.0.1:${p}`,
		port: p,
		hits,
		setStatus: (s: number) => (status = s),
		failPath: (path: string, s: number) => failing.set(path, s),
		close: () =>
			new Promise<void>(r => {
				server.closeAllConnections();
				server.close(() => r());
			})
	};
}

describe("registry", () => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), "isa-reg-"));
	const store = path.join(dir, "isa.db");
	const namespace = `reg-${process.pid}`;
	const brokers: ServiceBroker[] = [];
	const control = new ServiceBroker({
		nodeID: "control",
		namespace,
		transporter: "Fake",
		logger: false
	});
	control.createService(
		withSettings(RegistryService, { store, tickInterval: 100, applyFile: null })
	);
	control.createService(auditService(store));
	const gateway = control.createService(
		withSettings(GatewayService, { port: 0, jwtSecret: SECRET, store })
	);
	let server: any;
	let op: string;
	let viewer: string;

	const api = (method: "get" | "post" | "put" | "delete", url: string, token = op) =>
		request(server)[method](url).set("Authorization", `Bearer ${token}`);

	beforeAll(async () => {
		await control.start();
		server = (gateway as any).server;
		op = await mintToken({
			secret: SECRET,
			sub: "ops",
			tenant: "acme",
			roles: ["operator"],
			ttl: 600
		});
		viewer = await mintToken({
			secret: SECRET,
			sub: "v",
			tenant: "acme",
			roles: ["viewer"],
			ttl: 600
		});
	});
	afterAll(async () => {
		await Promise.all(brokers.map(b => b.stop()));
		await control.stop();
		fs.rmSync(dir, { recursive: true, force: true });
	});

	describe("resources", () => {
		it("checks a real PostgreSQL and never shows its password", async () => {
			const res = await api("post", "/api/v1/resources").send({
				name: "pg",
				type: "postgres",
				endpoint: "postgres://postgres:s3cret-pw@127.0.0.1:5432/postgres",
				config: { password: "another-secret", pool: 4 },
				healthCheck: { interval: "500ms", timeout: "400ms" }
			});
			expect(res.status).toBe(201);
			expect(res.headers.location).toBe(`/api/v1/resources/${res.body.id}`);
			expect(JSON.stringify(res.body)).not.toMatch(/s3cret-pw|another-secret/);
			expect(res.body.endpoint).toBe("postgres://postgres:***@127.0.0.1:5432/postgres");
			expect(res.body.config).toEqual({ password: "***", pool: 4 });
			const healthy = await eventually(
				async () => {
					const { body } = await api("get", `/api/v1/resources/${res.body.id}`, viewer);
					return body.health.status === "healthy" && body;
				},
				10_000,
				"pg healthy"
			);
			expect(healthy.health).toEqual({
				status: "healthy",
				checkedAt: expect.any(Number),
				latencyMs: expect.any(Number)
			});
			expect(
				(
					await api("post", "/api/v1/resources").send({
						name: "pg",
						type: "redis",
						endpoint: "redis://127.0.0.1:1"
					})
				).status
			).toBe(409);
			expect(
				(
					await api("post", "/api/v1/resources", viewer).send({
						name: "x",
						type: "tcp",
						endpoint: "127.0.0.1:1"
					})
				).status
			).toBe(403);
		});

		it("sees an HTTP resource go unhealthy when its server stops, and recover when it returns", async () => {
			const srv = await httpServer();
			const events: any[] = [];
			const listener = control.createService({
				name: "listener",
				events: {
					"resource.health.changed": (ctx: any) => {
						events.push(ctx.params);
					}
				}
			});
			const { body } = await api("post", "/api/v1/resources").send({
				name: "web",
				type: "http",
				endpoint: srv.url,
				healthCheck: { interval: "500ms", timeout: "300ms", unhealthyThreshold: 2 }
			});
			const status = async () =>
				(await api("get", `/api/v1/resources/${body.id}`)).body.health;
			await eventually(
				async () => (await status()).status === "healthy",
				5000,
				"web healthy"
			);
			await srv.close();
			const down = await eventually(
				async () => {
					const h = await status();
					return h.status === "unhealthy" && h;
				},
				5000,
				"web unhealthy"
			);
			expect(down.error).toMatch(/ECONNREFUSED/);
			const again = await httpServer(srv.port);
			await eventually(
				async () => (await status()).status === "healthy",
				5000,
				"web healthy again"
			);
			expect(events.filter(e => e.name === "web").map(e => e.health.status)).toEqual([
				"healthy",
				"unhealthy",
				"healthy"
			]);
			await again.close();
			await control.destroyService(listener);
		});

		it("lists with ?type=, updates and deletes", async () => {
			const tcp = net.createServer(s => s.end());
			await new Promise<void>(r => tcp.listen(0, "127.0.0.1", () => r()));
			const port = (tcp.address() as net.AddressInfo).port;
			const created = await api("post", "/api/v1/resources").send({
				name: "socket",
				type: "tcp",
				endpoint: `127.0.0.1:${port}`,
				healthCheck: { interval: "500ms", timeout: "200ms" }
			});
			expect(
				(await api("get", "/api/v1/resources?type=tcp")).body.items.map((r: any) => r.name)
			).toEqual(["socket"]);
			const updated = await api("put", `/api/v1/resources/${created.body.id}`).send({
				name: "socket2",
				type: "tcp",
				endpoint: `127.0.0.1:${port}`
			});
			expect(updated.status).toBe(200);
			expect(updated.body.name).toBe("socket2");
			expect((await api("delete", `/api/v1/resources/${created.body.id}`)).status).toBe(200);
			expect((await api("get", `/api/v1/resources/${created.body.id}`)).status).toBe(404);
			tcp.close();
		});

		it("refuses bad input with 422 and stores nothing", async () => {
			const before = (await api("get", "/api/v1/resources")).body.total;
			for (const body of [
				{ name: "a", type: "mongo", endpoint: "x" },
				{ name: "a", type: "postgres", endpoint: "http://x" },
				{
					name: "a",
					type: "tcp",
					endpoint: "127.0.0.1:1",
					healthCheck: { interval: "1s", timeout: "5s" }
				},
				{ name: "a b", type: "tcp", endpoint: "127.0.0.1:1" },
				{ name: "a", type: "tcp", endpoint: "127.0.0.1:1", colour: "red" }
			])
				expect((await api("post", "/api/v1/resources").send(body)).status).toBe(422);
			expect((await api("get", "/api/v1/resources")).body.total).toBe(before);
		});
	});

	describe("services", () => {
		let a: Awaited<ReturnType<typeof httpServer>>;
		let b: Awaited<ReturnType<typeof httpServer>>;
		let c: Awaited<ReturnType<typeof httpServer>>;

		beforeAll(async () => {
			[a, b, c] = await Promise.all([httpServer(), httpServer(), httpServer()]);
		});
		afterAll(async () => {
			await Promise.all([a.close(), b.close(), c.close()]);
		});

		it("registers services with endpoints and dependencies, refusing a cycle", async () => {
			const model = await api("post", "/api/v1/services").send({
				name: "isa_model",
				type: "http",
				endpoints: [a.url, b.url],
				healthCheck: { path: "/health", interval: "500ms", timeout: "300ms" },
				resources: { gpu: 2, memory: "16Gi", storage: "100Gi" }
			});
			expect(model.status).toBe(201);
			const agent = await api("post", "/api/v1/services").send({
				name: "isa_agent",
				type: "http",
				endpoints: [c.url],
				dependencies: ["isa_model", "pg"],
				healthCheck: { interval: "500ms", timeout: "300ms" }
			});
			expect(agent.status).toBe(201);
			const cycle = await api("post", "/api/v1/services").send({
				name: "isa_model2",
				type: "http",
				endpoints: [],
				dependencies: ["isa_agent"]
			});
			expect(cycle.status).toBe(201);
			// isa_model → isa_model2 → isa_agent → isa_model closes a cycle.
			const again = await api("post", "/api/v1/services").send({
				name: "isa_model",
				type: "http",
				endpoints: [a.url],
				dependencies: ["isa_model2"]
			});
			expect(again.status).toBe(409);
			await api("delete", "/api/v1/services/isa_model2");
			const c1 = await api("post", "/api/v1/services").send({
				name: "c1",
				type: "http",
				endpoints: [],
				dependencies: ["c2"]
			});
			expect(c1.status).toBe(201);
			const c2 = await api("post", "/api/v1/services").send({
				name: "c2",
				type: "http",
				endpoints: [],
				dependencies: ["c1"]
			});
			expect(c2.status).toBe(422);
			expect(c2.body.message).toMatch(/cycle: c2 → c1 → c2/);
			await api("delete", "/api/v1/services/c1");
		});

		it("shows each endpoint's health, the dependency tree, and degraded when a dependency is down", async () => {
			const view = await eventually(
				async () => {
					const { body } = await api("get", "/api/v1/services/isa_agent", viewer);
					return body.status === "healthy" && body;
				},
				10_000,
				"isa_agent healthy"
			);
			expect(view.dependencyTree).toMatchObject({
				name: "isa_agent",
				status: "healthy",
				dependencies: [
					{ name: "isa_model", kind: "service", status: "healthy" },
					{ name: "pg", kind: "resource", status: "healthy" }
				]
			});
			expect(a.hits.get("/health")).toBeGreaterThan(0);
			b.setStatus(503);
			a.setStatus(503);
			const degraded = await eventually(
				async () => {
					const { body } = await api("get", "/api/v1/services/isa_agent");
					return body.dependencyTree.dependencies[0].status === "unhealthy" && body;
				},
				10_000,
				"isa_model unhealthy"
			);
			// isa_agent's own endpoint (c) is fine: it runs, degraded by its dependency.
			expect(degraded.status).toBe("degraded");
			c.setStatus(503);
			await eventually(
				async () =>
					(await api("get", "/api/v1/services/isa_agent")).body.status === "unhealthy",
				10_000,
				"isa_agent unhealthy: its own endpoint beats the dependency"
			);
			c.setStatus(200);
			a.setStatus(200);
			b.setStatus(200);
			await eventually(
				async () =>
					(await api("get", "/api/v1/services/isa_model")).body.status === "healthy",
				10_000,
				"isa_model healthy"
			);
		});

		it("lists discovered Moleculer services with their nodes and actions", async () => {
			const worker = new ServiceBroker({
				nodeID: "worker",
				namespace,
				transporter: "Fake",
				logger: false
			});
			worker.createService({
				name: "embedder",
				actions: {
					embed: (ctx: any) => ({
						tenant: ctx.meta.tenant,
						user: ctx.meta.user?.sub,
						n: ctx.params.text.length
					})
				}
			});
			brokers.push(worker);
			await worker.start();
			const list = await eventually(
				async () => {
					const { body } = await api("get", "/api/v1/services");
					return body.items.some((s: any) => s.name === "embedder") && body;
				},
				5000,
				"embedder discovered"
			);
			expect(list.items.find((s: any) => s.name === "embedder")).toMatchObject({
				type: "moleculer",
				nodes: ["worker"],
				actions: ["embedder.embed"],
				status: "healthy"
			});
		});

		it("calls a Moleculer action with the caller's tenant and user, but never a control service", async () => {
			const res = await api("post", "/api/v1/services/call").send({
				service: "embedder",
				action: "embed",
				params: { text: "hello" }
			});
			expect(res.status).toBe(200);
			expect(res.body).toEqual({ tenant: "acme", user: "ops", n: 5 });
			const scheduler = await api("post", "/api/v1/services/call").send({
				service: "tenants",
				action: "createTenant",
				params: { id: "x" }
			});
			expect(scheduler.status).toBe(403);
			expect(
				(
					await api("post", "/api/v1/services/call").send({
						service: "$node",
						action: "list"
					})
				).status
			).toBe(403);
			expect(
				(
					await api("post", "/api/v1/services/call").send({
						service: "nobody",
						action: "x"
					})
				).status
			).toBe(404);
		});

		it("calls HTTP on healthy endpoints, balanced, and answers 503 with the reason when none is healthy", async () => {
			await eventually(
				async () =>
					(await api("get", "/api/v1/services/isa_model")).body.endpoints.every(
						(e: any) => e.health.status === "healthy"
					),
				10_000,
				"both endpoints healthy"
			);
			const ports = new Set<number>();
			for (let i = 0; i < 4; i++) {
				const res = await api("post", "/api/v1/services/call").send({
					service: "isa_model",
					path: "/v1/models",
					method: "GET"
				});
				expect(res.status).toBe(200);
				expect(res.body).toMatchObject({
					service: "isa_model",
					status: 200,
					body: { path: "/v1/models", method: "GET" }
				});
				ports.add(res.body.body.port);
			}
			expect(ports).toEqual(new Set([a.port, b.port]));
			// One endpoint fails a path: GET (idempotent) is retried on the other, POST is not.
			a.failPath("/v1/flaky", 502);
			for (let i = 0; i < 2; i++) {
				const get = await api("post", "/api/v1/services/call").send({
					service: "isa_model",
					path: "/v1/flaky"
				});
				expect(get.body).toMatchObject({ status: 200, body: { port: b.port } });
			}
			const posts = [];
			for (let i = 0; i < 2; i++)
				posts.push(
					(
						await api("post", "/api/v1/services/call").send({
							service: "isa_model",
							path: "/v1/flaky",
							method: "POST",
							body: { n: i }
						})
					).body
				);
			expect(posts.map(p => p.status).sort()).toEqual([200, 502]);
			// Three failures in a row open a's circuit: calls skip it until the cooldown.
			await api("post", "/api/v1/services/call").send({
				service: "isa_model",
				path: "/v1/flaky"
			});
			await api("post", "/api/v1/services/call").send({
				service: "isa_model",
				path: "/v1/flaky"
			});
			const view = (await api("get", "/api/v1/services/isa_model")).body;
			expect(view.endpoints.find((e: any) => e.url === a.url).circuit).toBe("open");
			const hitsBefore = a.hits.get("/v1/models") ?? 0;
			for (let i = 0; i < 3; i++)
				expect(
					(
						await api("post", "/api/v1/services/call").send({
							service: "isa_model",
							path: "/v1/models"
						})
					).body.body.port
				).toBe(b.port);
			expect(a.hits.get("/v1/models") ?? 0).toBe(hitsBefore);

			a.setStatus(503);
			b.setStatus(503);
			await eventually(
				async () =>
					(await api("get", "/api/v1/services/isa_model")).body.status === "unhealthy",
				10_000,
				"isa_model unhealthy"
			);
			const res = await api("post", "/api/v1/services/call").send({
				service: "isa_model",
				path: "/v1/models"
			});
			expect(res.status).toBe(503);
			expect(res.body).toMatchObject({ type: "SERVICE_UNAVAILABLE" });
			// Each endpoint's state in words: "http://… unhealthy (HTTP 503, 0 s ago)".
			expect(res.body.message).toMatch(
				/^No endpoint of 'isa_model' is healthy: http:\/\/\S+ unhealthy \(.+, \d+ s ago\); http:\/\/\S+ unhealthy \(.+, \d+ s ago\)\.$/
			);
			expect(res.body.data.endpoints).toHaveLength(2);
			a.setStatus(200);
			b.setStatus(200);
		});
	});

	describe("apply", () => {
		it("creates from YAML, then says the second apply changed nothing", async () => {
			const srv = await httpServer();
			const yaml = [
				"services:",
				"  isa_mcp:",
				"    type: http",
				`    endpoints: ["${srv.url}"]`,
				"    healthCheck: { path: /health, interval: 1s, timeout: 500ms }",
				"    dependencies: [mcp_pg]",
				"resources:",
				"  mcp_pg:",
				"    type: postgres",
				"    endpoint: postgres://postgres@127.0.0.1:5432/postgres"
			].join("\n");
			const first = await api("post", "/api/v1/apply")
				.set("Content-Type", "application/yaml")
				.send(yaml);
			expect(first.status).toBe(200);
			expect(first.body).toMatchObject({
				created: ["resource/mcp_pg", "service/isa_mcp"],
				updated: [],
				changed: true
			});
			const second = await api("post", "/api/v1/apply")
				.set("Content-Type", "application/yaml")
				.send(yaml);
			expect(second.body).toMatchObject({
				created: [],
				updated: [],
				unchanged: ["resource/mcp_pg", "service/isa_mcp"],
				changed: false
			});
			const changed = await api("post", "/api/v1/apply").send({
				resources: {
					mcp_pg: {
						type: "postgres",
						endpoint: "postgres://postgres@127.0.0.1:5432/test"
					}
				}
			});
			expect(changed.body).toMatchObject({ updated: ["resource/mcp_pg"], changed: true });
			expect(
				(
					await api("post", "/api/v1/apply")
						.set("Content-Type", "application/yaml")
						.send("services: [1, 2")
				).status
			).toBe(422);
			expect(
				(
					await api("post", "/api/v1/apply").send({
						resources: { x: { type: "nope", endpoint: "y" } }
					})
				).status
			).toBe(422);
			await srv.close();
		});

		it("applies the shipped configs/isa-platform.yaml", async () => {
			const yaml = fs.readFileSync(
				path.join(__dirname, "../../configs/isa-platform.yaml"),
				"utf8"
			);
			const res = await api("post", "/api/v1/apply?dryRun=true")
				.set("Content-Type", "application/yaml")
				.send(yaml);
			expect(res.status).toBe(200);
			expect([...res.body.created, ...res.body.updated, ...res.body.unchanged]).toEqual(
				expect.arrayContaining([
					"service/isa_agent",
					"service/isa_model",
					"resource/isa_mcp_postgres",
					"resource/isa_mcp_graph",
					"resource/isa_mcp_vector",
					"resource/isa_mcp_objects",
					"resource/isa_mcp_analytics"
				])
			);
			expect(res.body.dryRun).toBe(true);
		});
	});

	describe("two registry instances", () => {
		it("check each target once between them, and take over when one leaves", async () => {
			const srv = await httpServer();
			const second = new ServiceBroker({
				nodeID: "registry-2",
				namespace,
				transporter: "Fake",
				logger: false
			});
			second.createService(
				withSettings(RegistryService, { store, tickInterval: 100, applyFile: null })
			);
			brokers.push(second);
			await second.start();
			// Both must know each other before the checks are shared out.
			await eventually(
				async () =>
					(control.registry.getServiceList({ onlyAvailable: true }) as any[]).filter(
						s => s.name === "registry"
					).length === 2,
				5000,
				"two registry instances"
			);
			for (let i = 0; i < 6; i++)
				await api("post", "/api/v1/resources").send({
					name: `shard-${i}`,
					type: "http",
					endpoint: `${srv.url}/r${i}`,
					healthCheck: { interval: "500ms", timeout: "300ms" }
				});
			await new Promise(r => setTimeout(r, 500));
			srv.hits.clear();
			await new Promise(r => setTimeout(r, 2000));
			const counts = Array.from({ length: 6 }, (_, i) => srv.hits.get(`/r${i}`) ?? 0);
			// One checker each: about 4 checks in 2 s, not 8.
			for (const c of counts) {
				expect(c).toBeGreaterThanOrEqual(3);
				expect(c).toBeLessThanOrEqual(5);
			}
			await second.stop();
			await new Promise(r => setTimeout(r, 500));
			srv.hits.clear();
			await new Promise(r => setTimeout(r, 2000));
			for (let i = 0; i < 6; i++)
				expect(srv.hits.get(`/r${i}`) ?? 0).toBeGreaterThanOrEqual(3);
			await srv.close();
		});
	});

	describe("stopping", () => {
		it("waits for a check in flight before the store closes", async () => {
			// A server that takes every connection and never answers: the check hangs until its timeout.
			const sockets: net.Socket[] = [];
			const silent = net.createServer(socket => sockets.push(socket));
			await new Promise<void>(r => silent.listen(0, "127.0.0.1", () => r()));
			const port = (silent.address() as net.AddressInfo).port;
			const ownStore = path.join(dir, "stopping.db");
			const broker = new ServiceBroker({
				nodeID: "stopping",
				transporter: "Fake",
				logger: false
			});
			broker.createService(
				withSettings(RegistryService, {
					store: ownStore,
					tickInterval: 50,
					applyFile: null
				})
			);
			const rejections: unknown[] = [];
			const onRejection = (reason: unknown) => rejections.push(reason);
			process.on("unhandledRejection", onRejection);
			try {
				await broker.start();
				await broker.call("registry.createResource", {
					name: "silent",
					type: "http",
					endpoint: `http://127.0.0.1:${port}/`,
					healthCheck: { interval: "1s", timeout: "700ms" }
				});
				await eventually(async () => sockets.length > 0, 5000, "a check in flight");
				const began = Date.now();
				await broker.stop();
				// stop() waited for the hanging check to time out and write its result.
				expect(Date.now() - began).toBeGreaterThan(200);
				await new Promise(r => setTimeout(r, 100));
				expect(rejections).toEqual([]);
			} finally {
				process.off("unhandledRejection", onRejection);
				for (const s of sockets) s.destroy();
				silent.close();
			}
		});
	});
});
