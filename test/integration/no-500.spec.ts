/**
 * No request from a client can cause a 500: every route of the API, with malformed queries and
 * bodies (wrong types, huge numbers, bad units, prototype keys, broken JSON, YAML aliases…),
 * answers with a 4xx (or a 503 when nothing can serve it), and the node stays up.
 */
import fs from "fs";
import http from "http";
import os from "os";
import path from "path";
import zlib from "zlib";
import Database from "better-sqlite3";
import { ServiceBroker } from "moleculer";
import request from "supertest";
import TenantsService from "../../services/tenants.service";
import ConfigService from "../../services/config.service";
import GatewayService from "../../services/gateway.service";
import MonitorService from "../../services/monitor.service";
import NodesService from "../../services/nodes.service";
import RegistryService from "../../services/registry.service";
import SchedulerService from "../../services/scheduler.service";
import { mintToken } from "../../services/gateway/jwt";
import { auditService, withSettings } from "../helpers/services";

const SECRET = "no-500-secret";
jest.setTimeout(60_000);

const ROUTES: Array<[string, string]> = [
	["GET", "/api/v1/nodes"],
	["GET", "/api/v1/nodes/x"],
	["POST", "/api/v1/nodes/x/drain"],
	["POST", "/api/v1/workloads"],
	["GET", "/api/v1/workloads"],
	["GET", "/api/v1/workloads/x"],
	["POST", "/api/v1/workloads/x/scale"],
	["DELETE", "/api/v1/workloads/x"],
	["GET", "/api/v1/workloads/x/logs"],
	["GET", "/api/v1/tenants"],
	["POST", "/api/v1/tenants"],
	["PUT", "/api/v1/tenants/x"],
	["GET", "/api/v1/resources"],
	["POST", "/api/v1/resources"],
	["PUT", "/api/v1/resources/x"],
	["GET", "/api/v1/services"],
	["POST", "/api/v1/services"],
	["GET", "/api/v1/services/x"],
	["POST", "/api/v1/services/call"],
	["POST", "/api/v1/apply"],
	["GET", "/api/v1/config"],
	["PUT", "/api/v1/config/x"],
	["GET", "/api/v1/stats"],
	["POST", "/api/v1/alerts/rules"],
	["GET", "/api/v1/alerts"]
];

const BODIES: unknown[] = [
	{},
	{ a: 1 },
	{ name: "" },
	{ name: "a".repeat(5000) },
	{
		name: "x",
		kind: "process",
		process: { command: "x" },
		resources: { cpu: "NaN", memory: "1e400" }
	},
	{
		name: "x",
		kind: "process",
		process: { command: "x" },
		resources: { cpu: 1e308, memory: 1e308, gpu: 1e9 }
	},
	{ replicas: -1 },
	{ replicas: 1e9 },
	{ value: { __proto__: { x: 1 } } },
	{ id: "ok", quota: { cpu: "1e999", memory: "-1" } },
	{ name: "r", type: "tcp", endpoint: "127.0.0.1:99999" },
	{ name: "s", type: "http", endpoints: ["http://[::1"] },
	{ service: "x", path: "//evil.example/x" },
	{ service: "x", action: "../y" },
	{ document: "a: &a [*a]" },
	{ document: "x: !!js/function 'f'" },
	{ services: [1, 2] },
	{
		name: "r",
		metric: "node.cpu.usage{node=",
		op: ">",
		threshold: "x",
		for: "forever",
		severity: "x"
	},
	{
		name: "r",
		metric: "node.cpu.usage",
		op: ">",
		threshold: Number.MAX_VALUE * 10,
		for: -5,
		severity: "warning"
	},
	{ value: "x".repeat(70_000) },
	[1, 2, 3],
	"a string",
	null,
	12
];

const QUERIES = [
	"",
	"?limit=-1&offset=abc",
	"?since=garbage&step=0&metric=%7B",
	"?node=%00&tenant[$ne]=1&type=zz"
];
const RAW = ["{", "\u0000", '{"a":', "[".repeat(10_000)];

describe("no request causes a 500", () => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), "isa-no500-"));
	const store = path.join(dir, "isa.db");
	const broker = new ServiceBroker({ logger: false });
	for (const schema of [
		NodesService,
		SchedulerService,
		TenantsService,
		RegistryService,
		ConfigService,
		MonitorService
	])
		broker.createService(withSettings(schema, { store }));
	broker.createService(auditService(store));
	const gateway = broker.createService(
		withSettings(GatewayService, { port: 0, jwtSecret: SECRET, store })
	);
	let token: string;

	beforeAll(async () => {
		await broker.start();
		token = await mintToken({
			secret: SECRET,
			sub: "fuzz",
			tenant: "t",
			roles: ["admin"],
			ttl: 600
		});
	});
	afterAll(async () => {
		await broker.stop();
		fs.rmSync(dir, { recursive: true, force: true });
	});

	it("answers every malformed request with a 4xx or a 503", async () => {
		const server = (gateway as any).server;
		const failures: string[] = [];
		const check = (what: string, status: number, text: string) => {
			if (status >= 500 && status !== 503)
				failures.push(`${status} ${what}: ${text.slice(0, 200)}`);
		};
		const send = (method: string, url: string) => {
			const verb = method.toLowerCase() as "get" | "post" | "put" | "delete";
			return request(server)[verb](url).set("Authorization", `Bearer ${token}`);
		};
		for (const [method, url] of ROUTES) {
			for (const q of QUERIES) {
				const bodies = method === "GET" ? [undefined] : BODIES;
				for (const body of bodies) {
					let req = send(method, url + q);
					if (body !== undefined)
						req = req
							.set("Content-Type", "application/json")
							.send(JSON.stringify(body));
					const res = await req;
					check(
						`${method} ${url}${q} ${JSON.stringify(body)?.slice(0, 60)}`,
						res.status,
						res.text
					);
				}
			}
			if (method !== "GET")
				for (const raw of RAW) {
					const res = await send(method, url)
						.set("Content-Type", "application/json")
						.send(raw);
					check(
						`${method} ${url} raw ${JSON.stringify(raw.slice(0, 10))}`,
						res.status,
						res.text
					);
				}
		}
		expect(failures).toEqual([]);
		expect((await request(server).get("/health")).status).toBe(200);
	});

	/** Sends these exact bytes (supertest would serialize a Buffer as JSON). */
	function raw(url: string, headers: Record<string, string>, bytes: Buffer) {
		const { port } = (gateway as any).server.address();
		return new Promise<number>((resolve, reject) => {
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
				res => res.resume().on("end", () => resolve(res.statusCode!))
			);
			req.on("error", reject);
			req.end(bytes);
		});
	}

	it("answers the poison bodies with their 4xx", async () => {
		const body = Buffer.from(JSON.stringify({ id: "t1" }));
		for (const [, url] of ROUTES.filter(([m]) => m !== "GET")) {
			const broken = await raw(url, { "Content-Encoding": "gzip" }, Buffer.from("no gzip"));
			const truncated = await raw(
				url,
				{ "Content-Encoding": "gzip" },
				zlib.gzipSync(body).subarray(0, 12)
			);
			const br = await raw(url, { "Content-Encoding": "br" }, zlib.brotliCompressSync(body));
			expect([url, broken, truncated, br]).toEqual([url, 400, 400, 415]);
		}
		const workload = (resources: object) =>
			request((gateway as any).server)
				.post("/api/v1/workloads")
				.set("Authorization", `Bearer ${token}`)
				.send({ name: "w", kind: "process", process: { command: "x" }, resources });
		for (const resources of [
			{ cpu: 0, memory: "1Gi" },
			{ cpu: 1, memory: 0 },
			{ cpu: 1e30, memory: "1Gi" },
			{ cpu: 1, memory: "1Gi", gpuMemory: 1e30 },
			{ cpu: 1, memory: "1Gi", gpuMemory: "1e30Gi" }
		])
			expect((await workload(resources)).status).toBe(422);
		const quota = await request((gateway as any).server)
			.post("/api/v1/tenants")
			.set("Authorization", `Bearer ${token}`)
			.send({ id: "huge", quota: { cpu: 1e308, memory: 1e308 } });
		expect(quota.status).toBe(422);
	});

	it("lists resources with 200 when a stored one is not JSON", async () => {
		const db = new Database(store);
		db.prepare(
			"INSERT INTO docs (collection, id, version, value) VALUES ('resources', 'poison', 1, ?)"
		).run('{"id": "poison", ');
		db.close();
		const res = await request((gateway as any).server)
			.get("/api/v1/resources")
			.set("Authorization", `Bearer ${token}`);
		expect(res.status).toBe(200);
		expect(res.body.items.map((r: any) => r.id)).not.toContain("poison");
	});
});
