/**
 * The gateway in one process, over HTTP on a free port (supertest): authentication, role checks,
 * the restricted mapping, error shapes, body limits and the open endpoints.
 */
import fs from "fs";
import os from "os";
import path from "path";
import { ServiceBroker } from "moleculer";
import { SignJWT, UnsecuredJWT } from "jose";
import request from "supertest";
import GatewayService from "../../services/gateway.service";
import NodesService from "../../services/nodes.service";
import { mintToken } from "../../services/gateway/jwt";
import { IsaPrometheusReporter } from "../../reporters/prometheus";
import type { NodeReport } from "../../services/shared/types";
import { auditService, withSettings } from "../helpers/services";

const SECRET = "gateway-test-secret";

function report(nodeID: string): NodeReport {
	return {
		nodeID,
		hostname: nodeID,
		labels: {},
		capacity: { cpu: 4, memory: 8 * 1024 ** 3, gpus: [] },
		usage: { cpu: 1, cpuPercent: 25, memory: 1024 ** 3, gpus: [], loadAvg: [0, 0, 0] },
		interval: 60_000,
		sentAt: Date.now()
	};
}

describe("gateway", () => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), "isa-gw-"));
	const store = path.join(dir, "isa.db");
	const broker = new ServiceBroker({
		logger: false,
		metrics: {
			enabled: true,
			reporter: [new IsaPrometheusReporter({ port: null, host: "127.0.0.1" }) as any]
		}
	});
	broker.createService(withSettings(NodesService, { store }));
	broker.createService(auditService(store));
	const gateway = broker.createService(
		withSettings(GatewayService, { port: 0, jwtSecret: SECRET, store })
	);
	let server: any;
	const tokens: Record<string, string> = {};

	beforeAll(async () => {
		await broker.start();
		server = (gateway as any).server;
		for (const role of ["admin", "operator", "viewer"] as const)
			tokens[role] = await mintToken({
				secret: SECRET,
				sub: role,
				tenant: "t1",
				roles: [role],
				ttl: 600
			});
		await broker.broadcast("node.report", report("n1"));
		await new Promise(r => setTimeout(r, 50));
	});
	afterAll(async () => {
		await broker.stop();
		fs.rmSync(dir, { recursive: true, force: true });
	});

	const get = (url: string, token?: string) => {
		const req = request(server).get(url);
		return token ? req.set("Authorization", `Bearer ${token}`) : req;
	};

	describe("open endpoints", () => {
		it("/health answers ok", async () => {
			const res = await get("/health");
			expect(res.status).toBe(200);
			expect(res.body).toEqual({ status: "ok" });
		});

		it("/ready checks the store (no transporter in one process)", async () => {
			const res = await get("/ready");
			expect(res.status).toBe(200);
			expect(res.body.checks).toEqual({ transporter: "ok", load: "ok", store: "ok" });
		});

		it("/metrics is Prometheus text with Moleculer's metrics", async () => {
			const res = await get("/metrics");
			expect(res.status).toBe(200);
			expect(res.headers["content-type"]).toMatch(/^text\/plain/);
			expect(res.text).toMatch(
				/# TYPE moleculer_broker_started gauge\nmoleculer_broker_started 1/
			);
		});
	});

	describe("authentication", () => {
		it("refuses a request without a token with 401 NO_TOKEN", async () => {
			const res = await get("/api/v1/nodes");
			expect(res.status).toBe(401);
			expect(res.body).toMatchObject({
				name: "UnAuthorizedError",
				code: 401,
				type: "NO_TOKEN"
			});
		});

		it("refuses a bad signature", async () => {
			const forged = await mintToken({
				secret: "not-the-secret",
				sub: "x",
				tenant: "t1",
				roles: ["admin"],
				ttl: 60
			});
			const res = await get("/api/v1/nodes", forged);
			expect(res.status).toBe(401);
			expect(res.body.type).toBe("INVALID_TOKEN");
		});

		it("refuses a token expired beyond the clock tolerance, and takes one 5 s late", async () => {
			const expiredAgo = (seconds: number) =>
				new SignJWT({ tenant: "t1", roles: ["admin"] })
					.setProtectedHeader({ alg: "HS256" })
					.setSubject("x")
					.setExpirationTime(Math.floor(Date.now() / 1000) - seconds)
					.sign(new TextEncoder().encode(SECRET));
			const res = await get("/api/v1/nodes", await expiredAgo(60));
			expect(res.status).toBe(401);
			expect(res.body.type).toBe("TOKEN_EXPIRED");
			// A clock 5 s fast is within the default 30 s tolerance.
			expect((await get("/api/v1/nodes", await expiredAgo(5))).status).toBe(200);
		});

		it("refuses alg none", async () => {
			const none = new UnsecuredJWT({ sub: "x", tenant: "t1", roles: ["admin"] })
				.setExpirationTime("1h")
				.encode();
			const res = await get("/api/v1/nodes", none);
			expect(res.status).toBe(401);
			expect(res.body.type).toBe("INVALID_TOKEN");
		});
	});

	describe("nodes", () => {
		it("lets a viewer list nodes in the API's shape", async () => {
			const res = await get("/api/v1/nodes", tokens.viewer);
			expect(res.status).toBe(200);
			expect(res.body.total).toBe(1);
			expect(res.body.items[0]).toMatchObject({
				id: "n1",
				hostname: "n1",
				status: "ready",
				labels: {},
				capacity: { cpu: 4, memory: 8 * 1024 ** 3, gpus: [] },
				usage: { cpu: 1, memory: 1024 ** 3, gpus: [] },
				allocated: { cpu: 0, memory: 0, gpus: 0 },
				lastSeen: expect.any(Number)
			});
		});

		it("pages with limit and offset, and refuses bad or unknown query fields with 422", async () => {
			expect((await get("/api/v1/nodes?limit=1&offset=1", tokens.viewer)).body).toEqual({
				items: [],
				total: 1
			});
			const bad = await get("/api/v1/nodes?limit=zero", tokens.viewer);
			expect(bad.status).toBe(422);
			expect(bad.body.type).toBe("VALIDATION_ERROR");
			const unknown = await get("/api/v1/nodes?colour=red", tokens.viewer);
			expect(unknown.status).toBe(422);
		});

		it("answers 404 for an unknown node", async () => {
			const res = await get("/api/v1/nodes/nope", tokens.viewer);
			expect(res.status).toBe(404);
			expect(res.body).toMatchObject({
				code: 404,
				type: "NOT_FOUND",
				data: { kind: "Node", id: "nope" }
			});
		});

		it("lets only an admin drain and uncordon, and tells others which role is needed", async () => {
			for (const role of ["viewer", "operator"]) {
				const res = await request(server)
					.post("/api/v1/nodes/n1/drain")
					.set("Authorization", `Bearer ${tokens[role]}`);
				expect(res.status).toBe(403);
				expect(res.body).toMatchObject({
					type: "FORBIDDEN",
					data: { access: "admin", roles: [role] }
				});
				expect(res.body.message).toMatch(/needs the role admin/);
			}
			expect((await get("/api/v1/nodes/n1", tokens.viewer)).body.status).toBe("ready");

			const drained = await request(server)
				.post("/api/v1/nodes/n1/drain")
				.set("Authorization", `Bearer ${tokens.admin}`);
			expect(drained.status).toBe(200);
			expect(drained.body.status).toBe("draining");
			const back = await request(server)
				.post("/api/v1/nodes/n1/uncordon")
				.set("Authorization", `Bearer ${tokens.admin}`);
			expect(back.body.status).toBe("ready");
		});
	});

	describe("the restricted mapping and limits", () => {
		it.each([
			"/api/v1/~node/list",
			"/api/v1/$node/list",
			"/api/v1/nodes.list",
			"/api/v1/gateway/health",
			"/api/v1/agent/facts",
			"/nodes/list"
		])("does not reach %s", async url => {
			const res = await get(url, tokens.admin);
			expect(res.status).toBe(404);
		});

		it("refuses a body over the limit with 413 and changes nothing", async () => {
			const res = await request(server)
				.post("/api/v1/nodes/n1/drain")
				.set("Authorization", `Bearer ${tokens.admin}`)
				.set("Content-Type", "application/json")
				.send(JSON.stringify({ pad: "x".repeat(2 * 1024 * 1024) }));
			expect(res.status).toBe(413);
			expect((await get("/api/v1/nodes/n1", tokens.viewer)).body.status).toBe("ready");
		});

		it("refuses malformed JSON with 400 and unknown body fields with 422", async () => {
			const malformed = await request(server)
				.post("/api/v1/nodes/n1/drain")
				.set("Authorization", `Bearer ${tokens.admin}`)
				.set("Content-Type", "application/json")
				.send("{not json");
			expect(malformed.status).toBe(400);
			const unknown = await request(server)
				.post("/api/v1/nodes/n1/drain")
				.set("Authorization", `Bearer ${tokens.admin}`)
				.send({ force: true });
			expect(unknown.status).toBe(422);
			expect((await get("/api/v1/nodes/n1", tokens.viewer)).body.status).toBe("ready");
		});

		it("refuses a body nested 3,000 deep with 400 and a body without Content-Type with 415", async () => {
			let deep = "1";
			for (let i = 0; i < 3000; i++) deep = `{"a":${deep}}`;
			const tooDeep = await request(server)
				.post("/api/v1/nodes/n1/drain")
				.set("Authorization", `Bearer ${tokens.admin}`)
				.set("Content-Type", "application/json")
				.send(deep);
			expect(tooDeep.status).toBe(400);
			expect(tooDeep.body).toMatchObject({ type: "BODY_TOO_DEEP", data: { limit: 64 } });
			const untyped = await request(server)
				.post("/api/v1/nodes/n1/drain")
				.set("Authorization", `Bearer ${tokens.admin}`)
				.set("Content-Type", "")
				.send(Buffer.from('{"force":true}'));
			expect(untyped.status).toBe(415);
			expect(untyped.body.type).toBe("UNSUPPORTED_MEDIA_TYPE");
			expect(untyped.body.message).toMatch(/Content-Type: application\/json/);
			expect((await get("/api/v1/nodes/n1", tokens.viewer)).body.status).toBe("ready");
		});
	});
});
