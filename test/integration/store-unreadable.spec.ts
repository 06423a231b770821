/**
 * One bad stored record can never take a route down: a document written past the API (by hand,
 * by an older version, cut short) that does not parse, does not fit its schema, or nests
 * thousands deep is skipped by lists and gets, with a warning naming its collection and id,
 * while the good documents are still served. Against the embedded SQLite file and a real Redis.
 */
import fs from "fs";
import os from "os";
import path from "path";
import Database from "better-sqlite3";
import Redis from "ioredis";
import { type LoggerInstance, ServiceBroker } from "moleculer";
import request from "supertest";
import GatewayService from "../../services/gateway.service";
import RegistryService from "../../services/registry.service";
import { mintToken } from "../../services/gateway/jwt";
import { startRedis, TestServer } from "../helpers/servers";
import AuditService from "../../services/audit.service";
import { withSettings } from "../helpers/services";

const SECRET = "unreadable-secret";

/** A JSON text nested `depth` levels: {"a":{"a":…1}}. */
function deepJson(depth: number): string {
	return '{"a":'.repeat(depth) + "1" + "}".repeat(depth);
}

/** The raw documents: not JSON, JSON of the wrong shape, and a 3,000-deep one. */
const BAD: Record<string, string> = {
	"bad-json": '{"id": "bad-json", "name": ',
	"bad-shape": JSON.stringify({ id: "bad-shape", name: 5, type: "mongo" }),
	deep: deepJson(3000)
};

interface Place {
	name: string;
	start(): Promise<string>;
	/** Writes each raw document into the resources collection, past the Store interface. */
	writeRaw(docs: Record<string, string>): Promise<void>;
	stop(): Promise<void>;
}

function sqlitePlace(): Place {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), "isa-unreadable-"));
	const file = path.join(dir, "isa.db");
	return {
		name: "sqlite",
		start: async () => file,
		async writeRaw(docs) {
			const db = new Database(file);
			const insert = db.prepare(
				"INSERT INTO docs (collection, id, version, value) VALUES ('resources', ?, 1, ?)"
			);
			for (const [id, json] of Object.entries(docs)) insert.run(id, json);
			db.close();
		},
		async stop() {
			fs.rmSync(dir, { recursive: true, force: true });
		}
	};
}

function redisPlace(): Place {
	let server: TestServer;
	return {
		name: "redis",
		async start() {
			server = await startRedis();
			return server.url;
		},
		async writeRaw(docs) {
			const redis = new Redis(server.url);
			for (const [id, json] of Object.entries(docs)) {
				await redis.hset("unreadable:doc:resources", id, json);
				await redis.hset("unreadable:ver:resources", id, "1");
			}
			await redis.quit();
		},
		stop: () => server.stop()
	};
}

describe.each([sqlitePlace(), redisPlace()])("unreadable stored documents: $name", place => {
	const broker = new ServiceBroker({ logger: false });
	const warnings: string[] = [];
	// The store's logger (store.mixin.ts asks for "store"), to see what it reports.
	const getLogger = broker.getLogger.bind(broker);
	jest.spyOn(broker, "getLogger").mockImplementation((mod: string, props?: any) => {
		const logger = getLogger(mod, props);
		if (mod !== "store") return logger;
		const capturing: LoggerInstance = {
			fatal: logger.fatal,
			error: logger.error,
			info: logger.info,
			debug: logger.debug,
			trace: logger.trace,
			warn: (...args: unknown[]) => void warnings.push(args.join(" "))
		};
		return capturing;
	});
	let server: any;
	let token: string;
	const api = (method: "get" | "post" | "delete", url: string) =>
		request(server)[method](url).set("Authorization", `Bearer ${token}`);

	beforeAll(async () => {
		const store = await place.start();
		const settings = { store, storePrefix: "unreadable" };
		broker.createService(withSettings(RegistryService, settings));
		broker.createService(
			withSettings(AuditService, { ...settings, auditKey: "test-audit-key" })
		);
		const gateway = broker.createService(
			withSettings(GatewayService, { ...settings, port: 0, jwtSecret: SECRET })
		);
		await broker.start();
		server = (gateway as any).server;
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
		await place.stop();
	});

	it("lists the good resources with 200 and skips the bad ones, with a warning each", async () => {
		const good = await api("post", "/api/v1/resources").send({
			name: "good",
			type: "http",
			endpoint: "http://127.0.0.1:1"
		});
		expect(good.status).toBe(201);
		await place.writeRaw(BAD);
		const list = await api("get", "/api/v1/resources");
		expect(list.status).toBe(200);
		expect(list.body.items.map((r: any) => r.id)).toEqual([good.body.id]);
		expect(list.body.total).toBe(1);
		for (const id of Object.keys(BAD))
			expect(warnings.some(w => w.includes(`resources/${id}`))).toBe(true);
		expect(warnings.find(w => w.includes("resources/bad-json"))).toMatch(/not JSON/);
		expect(warnings.find(w => w.includes("resources/deep"))).toMatch(/nested deeper/);
	});

	it("answers a get of a bad document with 404, not 500", async () => {
		for (const id of Object.keys(BAD))
			expect((await api("get", `/api/v1/resources/${id}`)).status).toBe(404);
	});

	it("lets an admin delete a bad document by the id the warning named, and only that", async () => {
		const bad = Object.fromEntries(
			Object.entries(BAD).map(([id, json]) => [`purge-${id}`, json])
		);
		await place.writeRaw(bad);
		for (const id of Object.keys(bad)) {
			const res = await api("delete", `/api/v1/resources/${id}`);
			expect([res.status, res.body]).toEqual([200, { id, deleted: true, unreadable: true }]);
			expect((await api("delete", `/api/v1/resources/${id}`)).status).toBe(404);
		}
		// Gone from the store, not only hidden: no warning names them on the next list.
		const before = warnings.length;
		expect((await api("get", "/api/v1/resources")).status).toBe(200);
		expect(warnings.slice(before).some(w => w.includes("purge-"))).toBe(false);
	});
});
