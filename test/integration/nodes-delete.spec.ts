/**
 * DELETE /api/v1/nodes/:id over HTTP (supertest, one process, a real SQLite store): an admin
 * forgets a down node (200, gone from the list and the store, audited); a live node is 409 and
 * stays; a viewer or operator is 403 and changes nothing; an unknown node is 404.
 */
import fs from "fs";
import os from "os";
import path from "path";
import { ServiceBroker } from "moleculer";
import request from "supertest";
import GatewayService from "../../services/gateway.service";
import NodesService from "../../services/nodes.service";
import { mintToken } from "../../services/gateway/jwt";
import { COLLECTIONS } from "../../services/shared/collections";
import { SqliteStore } from "../../services/shared/store/sqlite";
import { idleReport } from "../helpers/nodes";
import { auditService, withSettings } from "../helpers/services";

const SECRET = "nodes-delete-secret";

describe("DELETE /api/v1/nodes/:id", () => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), "isa-nodes-delete-"));
	const file = path.join(dir, "isa.db");
	const broker = new ServiceBroker({ logger: false });
	broker.createService(withSettings(NodesService, { store: file }));
	broker.createService(auditService(file));
	const gateway = broker.createService(
		withSettings(GatewayService, { port: 0, jwtSecret: SECRET, store: file })
	);
	let server: any;
	const tokens: Record<string, string> = {};
	let store: SqliteStore;

	const del = (id: string, role: string) =>
		request(server)
			.delete(`/api/v1/nodes/${id}`)
			.set("Authorization", `Bearer ${tokens[role]}`);
	const get = (id: string) =>
		request(server).get(`/api/v1/nodes/${id}`).set("Authorization", `Bearer ${tokens.admin}`);

	async function join(id: string, down: boolean) {
		await broker.broadcast("node.report", idleReport(id));
		await new Promise(r => setTimeout(r, 30));
		if (down) broker.broadcastLocal("$node.disconnected", { node: { id } });
		await new Promise(r => setTimeout(r, 30));
		expect((await get(id)).body.status).toBe(down ? "down" : "ready");
	}

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
		store = new SqliteStore(file);
	});
	afterAll(async () => {
		await store.close();
		await broker.stop();
		fs.rmSync(dir, { recursive: true, force: true });
	});

	it("forgets a down node: 200, gone from the API and the store, and audited", async () => {
		await join("gone-1", true);
		expect(await store.get(COLLECTIONS.nodes, "gone-1")).not.toBeNull();

		const res = await del("gone-1", "admin");
		expect(res.status).toBe(200);
		expect(res.body).toEqual({ id: "gone-1", deleted: true });
		expect((await get("gone-1")).status).toBe(404);
		const list = await request(server)
			.get("/api/v1/nodes")
			.set("Authorization", `Bearer ${tokens.viewer}`);
		expect(list.body.items.map((n: { id: string }) => n.id)).not.toContain("gone-1");
		expect(await store.get(COLLECTIONS.nodes, "gone-1")).toBeNull();

		const audit = await request(server)
			.get("/api/v1/audit?action=nodes.remove")
			.set("Authorization", `Bearer ${tokens.admin}`);
		expect(audit.status).toBe(200);
		expect(audit.body.items).toEqual([
			expect.objectContaining({ action: "nodes.remove", actor: "admin" })
		]);

		// A second DELETE finds nothing to forget.
		expect((await del("gone-1", "admin")).status).toBe(404);
		// The node, reporting again, is known again as new.
		await join("gone-1", false);
	});

	it("refuses to forget a live node with 409 CONFLICT and keeps it", async () => {
		await join("live-1", false);
		const res = await del("live-1", "admin");
		expect(res.status).toBe(409);
		expect(res.body).toMatchObject({
			code: 409,
			type: "CONFLICT",
			data: { id: "live-1", status: "ready" }
		});
		expect(res.body.message).toMatch(/only a down node can be deleted/);
		expect((await get("live-1")).body.status).toBe("ready");

		await request(server)
			.post("/api/v1/nodes/live-1/drain")
			.set("Authorization", `Bearer ${tokens.admin}`)
			.expect(200);
		expect((await del("live-1", "admin")).body).toMatchObject({
			type: "CONFLICT",
			data: { status: "draining" }
		});
	});

	it("lets only an admin delete: viewer and operator get 403 and the node stays", async () => {
		await join("gone-2", true);
		for (const role of ["viewer", "operator"]) {
			const res = await del("gone-2", role);
			expect(res.status).toBe(403);
			expect(res.body).toMatchObject({ type: "FORBIDDEN", data: { access: "admin" } });
		}
		expect((await get("gone-2")).body.status).toBe("down");
		expect(await store.get(COLLECTIONS.nodes, "gone-2")).not.toBeNull();
	});

	it("answers 404 for an unknown node and 422 for a bad id", async () => {
		const res = await del("nope", "admin");
		expect(res.status).toBe(404);
		expect(res.body).toMatchObject({ type: "NOT_FOUND", data: { kind: "Node", id: "nope" } });
		expect((await del("x".repeat(300), "admin")).status).toBe(422);
	});
});
