/**
 * Hostile input through the gateway over real HTTP: compressed bodies that do not decompress,
 * encodings the gateway cannot undo, numbers out of bounds, enum errors that must list the
 * allowed values, and slow clients that must not hold a socket.
 */
import fs from "fs";
import http from "http";
import net from "net";
import os from "os";
import path from "path";
import zlib from "zlib";
import { ServiceBroker } from "moleculer";
import request from "supertest";
import GatewayService from "../../services/gateway.service";
import MonitorService from "../../services/monitor.service";
import NodesService from "../../services/nodes.service";
import RegistryService from "../../services/registry.service";
import SchedulerService from "../../services/scheduler.service";
import TenantsService from "../../services/tenants.service";
import { mintToken } from "../../services/gateway/jwt";
import { createValidator } from "../../services/shared/validator";
import { auditService, withSettings } from "../helpers/services";

const SECRET = "hostile-secret";
/** Short deadlines, so that the slow-client tests take a second, not the defaults' 10 s. */
const HEADERS_TIMEOUT = 300;
const REQUEST_TIMEOUT = 600;

describe("hostile input", () => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), "isa-hostile-"));
	const store = path.join(dir, "isa.db");
	// The validator of moleculer.config.ts, with its messages.
	const broker = new ServiceBroker({ logger: false, validator: createValidator() });
	for (const schema of [
		NodesService,
		SchedulerService,
		TenantsService,
		RegistryService,
		MonitorService
	])
		broker.createService(withSettings(schema, { store }));
	broker.createService(auditService(store));
	const gateway = broker.createService(
		withSettings(GatewayService, {
			port: 0,
			jwtSecret: SECRET,
			store,
			httpLimits: {
				headersTimeout: HEADERS_TIMEOUT,
				requestTimeout: REQUEST_TIMEOUT,
				keepAliveTimeout: 5000,
				maxHeaderSize: 16 * 1024
			}
		})
	);
	let server: any;
	let port: number;
	let token: string;

	beforeAll(async () => {
		await broker.start();
		server = (gateway as any).server;
		port = server.address().port;
		token = await mintToken({
			secret: SECRET,
			sub: "a",
			tenant: "t",
			roles: ["admin"],
			ttl: 600
		});
	});
	afterAll(async () => {
		await broker.stop();
		fs.rmSync(dir, { recursive: true, force: true });
	});

	const post = (url: string) =>
		request(server)
			.post(url)
			.set("Authorization", `Bearer ${token}`)
			.set("Content-Type", "application/json");
	/** POSTs these exact bytes (supertest would serialize a Buffer as JSON). */
	const postBytes = (url: string, headers: Record<string, string>, bytes: Buffer) =>
		new Promise<{ status: number; body: any }>((resolve, reject) => {
			const req = http.request(
				{
					port,
					host: "127.0.0.1",
					method: "POST",
					path: url,
					headers: {
						Authorization: `Bearer ${token}`,
						"Content-Type": "application/json",
						...headers
					}
				},
				res => {
					let text = "";
					res.on("data", d => (text += d));
					res.on("end", () =>
						resolve({ status: res.statusCode!, body: JSON.parse(text) })
					);
				}
			);
			req.on("error", reject);
			req.end(bytes);
		});
	const workload = (resources: object) => ({
		name: "w",
		kind: "process",
		process: { command: "sleep" },
		resources
	});

	describe("Content-Encoding", () => {
		const body = Buffer.from(JSON.stringify(workload({ cpu: 0, memory: "1Gi" })));

		it("reads a gzip body (and so refuses its cpu 0 with 422)", async () => {
			const res = await postBytes(
				"/api/v1/workloads",
				{ "Content-Encoding": "gzip" },
				zlib.gzipSync(body)
			);
			expect(res.status).toBe(422);
			expect(res.body.data).toMatchObject({ field: "resources.cpu" });
		});

		it.each([
			["gzip", Buffer.from("not gzip at all")],
			["gzip", zlib.gzipSync(body).subarray(0, 15)],
			["deflate", Buffer.from("not deflate")]
		])("answers a broken %s body with 400 BAD_CONTENT_ENCODING", async (encoding, bytes) => {
			const res = await postBytes(
				"/api/v1/workloads",
				{ "Content-Encoding": encoding },
				bytes
			);
			expect(res.status).toBe(400);
			expect(res.body).toMatchObject({
				name: "BadContentEncodingError",
				type: "BAD_CONTENT_ENCODING",
				data: { encoding }
			});
		});

		it.each(["br", "foo"])("answers Content-Encoding %s with 415 and the list", async enc => {
			const res = await postBytes("/api/v1/workloads", { "Content-Encoding": enc }, body);
			expect(res.status).toBe(415);
			expect(res.body).toMatchObject({
				type: "UNSUPPORTED_CONTENT_ENCODING",
				data: { encoding: enc, supported: ["identity", "gzip", "deflate"] }
			});
		});

		it("answers an unknown charset with 415 and malformed JSON with 400 INVALID_JSON", async () => {
			const charset = await postBytes(
				"/api/v1/workloads",
				{ "Content-Type": "application/json; charset=latin-9" },
				body
			);
			expect(charset.status).toBe(415);
			expect(charset.body).toMatchObject({
				type: "UNSUPPORTED_CHARSET",
				data: { charset: "latin-9" }
			});
			const malformed = await post("/api/v1/workloads").send("{not json");
			expect(malformed.status).toBe(400);
			expect(malformed.body.type).toBe("INVALID_JSON");
		});
	});

	describe("number bounds", () => {
		it.each([
			[{ cpu: 0, memory: "1Gi" }, "resources.cpu", /above 0 and at most 1024 cores; got 0/],
			[{ cpu: 1, memory: 0 }, "resources.memory", /above 0 and at most 64Ti; got 0/],
			[{ cpu: 1e30, memory: "1Gi" }, "resources.cpu", /got 1e\+30/],
			[{ cpu: 1, memory: 1e308 }, "resources.memory", /got 1e\+308/],
			[
				{ cpu: 1, memory: "1Gi", gpuMemory: 1e30 },
				"resources.gpuMemory",
				/from 0B to 1Ti; got 1e\+30/
			],
			[{ cpu: 1, memory: "1Gi", gpuMemory: "1e30Gi" }, "resources.gpuMemory", /not a size/]
		])(
			"refuses workload resources %j with 422 naming %s",
			async (resources, field, message) => {
				const res = await post("/api/v1/workloads").send(workload(resources));
				expect(res.status).toBe(422);
				expect(res.body).toMatchObject({ type: "INVALID_INPUT", data: { field } });
				expect(res.body.message).toMatch(message);
			}
		);

		it("refuses -1, NaN and Infinity (1e400 in JSON) and GPU counts above 64", async () => {
			const negative = await post("/api/v1/workloads").send(
				workload({ cpu: -1, memory: "1Gi" })
			);
			expect(negative.status).toBe(422);
			expect(negative.body.data[0]).toMatchObject({
				field: "resources.cpu",
				type: "numberMin"
			});
			const nan = await post("/api/v1/workloads").send(workload({ cpu: "NaN", memory: 1 }));
			expect(nan.status).toBe(422);
			expect(nan.body.data).toMatchObject({ field: "resources.cpu" });
			const inf = await post("/api/v1/workloads").send(
				'{"name":"w","kind":"process","process":{"command":"x"},"resources":{"cpu":1e400,"memory":1}}'
			);
			expect(inf.status).toBe(422);
			expect(inf.body.data[0]).toMatchObject({ field: "resources.cpu", type: "number" });
			const gpus = await post("/api/v1/workloads").send(
				workload({ cpu: 1, memory: 1, gpu: 65 })
			);
			expect(gpus.status).toBe(422);
			expect(JSON.stringify(gpus.body.data)).toMatch(/resources.gpu/);
		});

		it("refuses a quota of 1e308 and stores no tenant", async () => {
			const res = await post("/api/v1/tenants").send({ id: "big", quota: { memory: 1e308 } });
			expect(res.status).toBe(422);
			expect(res.body).toMatchObject({ data: { field: "quota.memory", max: 4 * 1024 ** 5 } });
			const cpu = await post("/api/v1/tenants").send({ id: "big", quota: { cpu: "1e308" } });
			expect(cpu.status).toBe(422);
			const gpu = await post("/api/v1/tenants").send({ id: "big", quota: { gpu: 1e9 } });
			expect(gpu.status).toBe(422);
			const get = await request(server)
				.get("/api/v1/tenants/big")
				.set("Authorization", `Bearer ${token}`);
			expect(get.status).toBe(404);
		});

		it("refuses a health check interval of 1e30 s and an alert threshold of 1e30", async () => {
			const resource = await post("/api/v1/resources").send({
				name: "r",
				type: "http",
				endpoint: "http://127.0.0.1:1",
				healthCheck: { interval: 1e30 }
			});
			expect(resource.status).toBe(422);
			expect(resource.body.data).toMatchObject({ field: "healthCheck.interval" });
			const rule = await post("/api/v1/alerts/rules").send({
				name: "r",
				metric: "node.cpu.usage",
				op: ">",
				threshold: 1e30,
				for: "1m",
				severity: "warning"
			});
			expect(rule.status).toBe(422);
			expect(rule.body.data).toMatchObject({ field: "threshold", max: 1e15 });
		});
	});

	describe("enum errors list the allowed values", () => {
		const enumError = (res: request.Response, field: string) => {
			expect(res.status).toBe(422);
			const item = res.body.data.find((d: any) => d.type === "enumValue");
			expect(item).toMatchObject({ field });
			return item.message as string;
		};

		it("scheduler: kind", async () => {
			const res = await post("/api/v1/workloads").send({
				...workload({ cpu: 1, memory: 1 }),
				kind: "vm"
			});
			expect(enumError(res, "kind")).toBe(
				"The 'kind' field must be one of: service, process; got 'vm'."
			);
		});

		it("registry: a resource's type", async () => {
			const res = await post("/api/v1/resources").send({
				name: "r",
				type: "mongo",
				endpoint: "x"
			});
			expect(enumError(res, "type")).toMatch(
				/^The 'type' field must be one of: postgres, neo4j, .*, tcp; got 'mongo'\.$/
			);
		});

		it("monitor: an alert rule's op and severity", async () => {
			const res = await post("/api/v1/alerts/rules").send({
				name: "r",
				metric: "node.cpu.usage",
				op: "~",
				threshold: 1,
				for: "1m",
				severity: "loud"
			});
			expect(res.status).toBe(422);
			const messages = res.body.data.map((d: any) => d.message);
			expect(messages).toContain(
				"The 'op' field must be one of: >, >=, <, <=, ==, !=; got '~'."
			);
			expect(messages.join("\n")).toMatch(
				/The 'severity' field must be one of: .*; got 'loud'/
			);
		});

		it("nodes: the status filter", async () => {
			const res = await request(server)
				.get("/api/v1/nodes?status=gone")
				.set("Authorization", `Bearer ${token}`);
			expect(enumError(res, "status")).toBe(
				"The 'status' field must be one of: ready, draining, down; got 'gone'."
			);
		});
	});

	describe("slow clients", () => {
		/** Opens a socket, writes `data`, and resolves when the server ends it: what it said, when. */
		function hold(data: string): Promise<{ reply: string; ms: number }> {
			return new Promise((resolve, reject) => {
				const started = Date.now();
				const socket = net.connect(port, "127.0.0.1", () => socket.write(data));
				let reply = "";
				socket.on("data", d => (reply += d));
				socket.on("error", reject);
				socket.on("close", () => resolve({ reply, ms: Date.now() - started }));
				// A server that never closes fails the test, not the suite's timeout.
				setTimeout(() => socket.destroy(), 5000).unref();
			});
		}

		it("closes a connection that sends half its headers and waits", async () => {
			const { reply, ms } = await hold("GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: 1");
			expect(ms).toBeLessThan(HEADERS_TIMEOUT + 2000);
			expect(ms).toBeGreaterThanOrEqual(HEADERS_TIMEOUT - 50);
			expect(reply === "" || reply.startsWith("HTTP/1.1 408")).toBe(true);
		});

		it("closes a connection whose body stops coming", async () => {
			const { reply, ms } = await hold(
				"POST /api/v1/nodes/x/drain HTTP/1.1\r\nHost: x\r\n" +
					`Authorization: Bearer ${token}\r\nContent-Type: application/json\r\n` +
					'Content-Length: 100\r\n\r\n{"a":'
			);
			expect(ms).toBeLessThan(REQUEST_TIMEOUT + 2000);
			expect(ms).toBeGreaterThanOrEqual(REQUEST_TIMEOUT - 50);
			expect(reply === "" || /^HTTP\/1.1 (408|400)/.test(reply)).toBe(true);
		});

		it("answers headers over 16 KiB with 431", async () => {
			const { reply } = await hold(
				`GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`
			);
			expect(reply).toMatch(/^HTTP\/1.1 431/);
		});

		it("still serves a client that is not slow", async () => {
			expect((await request(server).get("/health")).status).toBe(200);
		});
	});
});
