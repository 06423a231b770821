/**
 * The isolation matrix, generated from the gateway's route table: every /api/v1 route × every
 * kind of caller (admin, an operator and a viewer of the object's tenant and of another tenant,
 * no token, an expired token) × every kind of owner the route's object can have (a tenant, the
 * cluster), each with the status it must answer. A route that is added to the gateway without
 * its row here fails the first test, so no route escapes the tenant rules.
 *
 * Every cell gets an object of its own, made just before the request, so that a DELETE in one
 * cell never changes what the next one sees.
 */
import fs from "fs";
import os from "os";
import path from "path";
import { ServiceBroker } from "moleculer";
import AuditService from "../../services/audit.service";
import ConfigService from "../../services/config.service";
import GatewayService from "../../services/gateway.service";
import MonitorService from "../../services/monitor.service";
import NodesService from "../../services/nodes.service";
import RegistryService from "../../services/registry.service";
import SchedulerService from "../../services/scheduler.service";
import TenantsService from "../../services/tenants.service";
import { mintToken } from "../../services/gateway/jwt";
import type { Access, Role } from "../../services/shared/principal";
import { idleReport } from "../helpers/nodes";
import { withSettings } from "../helpers/services";

const SECRET = "route-matrix-secret";
jest.setTimeout(120_000);

type Caller =
	"admin" | "operator" | "viewer" | "other-operator" | "other-viewer" | "no-token" | "expired";
const CALLERS: Caller[] = [
	"admin",
	"operator",
	"viewer",
	"other-operator",
	"other-viewer",
	"no-token",
	"expired"
];
type Owner = "tenant" | "cluster";

/** What one cell sends: the path with its parameters filled in, and a body. */
interface Request {
	path: string;
	body?: unknown;
}

interface Row {
	/** The role the route needs. */
	access: Access;
	/** Who may own the object the route names; none for a route on a collection. */
	owners: Owner[];
	/** The status an allowed caller gets. */
	ok: number;
	/** Makes the cell's object (owned by `owner`, of tenant `tenant`) and says what to send. */
	make: (owner: Owner, tenant: string) => Promise<Request>;
	/**
	 * For a list: makes an item of the tenant and answers how the list shows it, so that the
	 * cell also checks that only the tenant's users and admins see it there.
	 */
	item?: (tenant: string) => Promise<{ field: string; value: string }>;
}

/** The object's tenant and another one; each cell's callers come from these two. */
const TENANT = "acme";
const OTHER = "beta";

let serial = 0;
const unique = (prefix: string) => `${prefix}-${++serial}`;

describe("route matrix: every route × every caller × every owner", () => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), "isa-matrix-"));
	const store = path.join(dir, "isa.db");
	const broker = new ServiceBroker({ logger: false });
	for (const schema of [
		NodesService,
		SchedulerService,
		TenantsService,
		RegistryService,
		ConfigService,
		MonitorService,
		AuditService
	])
		broker.createService(withSettings(schema, { store, dataDir: dir }));
	const gateway = broker.createService(
		withSettings(GatewayService, { port: 0, jwtSecret: SECRET, store, dataDir: dir })
	);
	let base: string;

	function token(roles: Role[], tenant: string, ttl = 600): Promise<string> {
		return mintToken({ secret: SECRET, sub: `${roles[0]}@${tenant}`, tenant, roles, ttl });
	}

	async function tokenOf(caller: Caller, tenant: string): Promise<string | null> {
		switch (caller) {
			case "admin":
				return token(["admin"], "ops");
			case "operator":
				return token(["operator"], tenant);
			case "viewer":
				return token(["viewer"], tenant);
			case "other-operator":
				return token(["operator"], OTHER);
			case "other-viewer":
				return token(["viewer"], OTHER);
			case "no-token":
				return null;
			case "expired":
				return token(["admin"], tenant, -3600);
		}
	}

	/** One request; a stream (the event route) counts as answered once its headers arrive. */
	async function send(
		method: string,
		url: string,
		tok: string | null,
		body?: unknown
	): Promise<{ status: number; body: any }> {
		const abort = new AbortController();
		const res = await fetch(base + url, {
			method,
			signal: abort.signal,
			headers: {
				...(tok ? { Authorization: `Bearer ${tok}` } : {}),
				...(body !== undefined ? { "Content-Type": "application/json" } : {})
			},
			body: body !== undefined ? JSON.stringify(body) : undefined
		});
		if ((res.headers.get("content-type") ?? "").startsWith("text/event-stream")) {
			abort.abort();
			return { status: res.status, body: null };
		}
		const text = await res.text();
		let parsed: unknown = text;
		try {
			parsed = JSON.parse(text);
		} catch {
			// Not JSON (jsonl, logs): the status is what the matrix checks.
		}
		return { status: res.status, body: parsed };
	}

	/** Makes an object as its owner would: the tenant's operator, or an admin for the cluster. */
	async function create(owner: Owner, tenant: string, url: string, body: unknown) {
		const tok =
			owner === "cluster" ? await token(["admin"], "ops") : await token(["operator"], tenant);
		const res = await send("POST", url, tok, body);
		if (res.status !== 201)
			throw new Error(
				`making ${url} as ${owner} gave ${res.status}: ${JSON.stringify(res.body)}`
			);
		return res.body;
	}

	const workload = async (tenant: string) =>
		(
			await create("tenant", tenant, "/api/v1/workloads", {
				name: unique("w"),
				kind: "process",
				process: { command: "sleep", args: ["60"] },
				resources: { cpu: 0.1, memory: "16Mi" }
			})
		).id as string;
	const resource = async (owner: Owner, tenant: string) =>
		(
			await create(owner, tenant, "/api/v1/resources", {
				name: unique("r"),
				type: "tcp",
				endpoint: "127.0.0.1:1"
			})
		).id as string;
	const service = async (owner: Owner, tenant: string) =>
		(
			await create(owner, tenant, "/api/v1/services", {
				name: unique("s"),
				type: "http",
				endpoints: ["http://127.0.0.1:1"]
			})
		).name as string;
	const rule = async (owner: Owner, tenant: string) =>
		(
			await create(owner, tenant, "/api/v1/alerts/rules", {
				name: unique("rule"),
				metric: "node.cpu.usage",
				op: ">",
				threshold: 1000,
				for: "1m",
				severity: "warning"
			})
		).id as string;
	const tenantObject = async (tenant: string) => {
		await create("cluster", "ops", "/api/v1/tenants", { id: tenant });
		return tenant;
	};
	const configKey = async () => {
		const key = unique("key");
		const res = await send("PUT", `/api/v1/config/${key}`, await token(["admin"], "ops"), {
			value: 1
		});
		if (res.status !== 200) throw new Error(`config ${key}: ${res.status}`);
		return key;
	};
	const node = async () => {
		const nodeID = unique("node");
		await broker.broadcast("node.report", idleReport(nodeID));
		await new Promise(resolve => setTimeout(resolve, 20));
		return nodeID;
	};
	/** A node that reported and then left (Moleculer's disconnect marks it down at once). */
	const downNode = async () => {
		const nodeID = await node();
		broker.broadcastLocal("$node.disconnected", { node: { id: nodeID } });
		await new Promise(resolve => setTimeout(resolve, 20));
		return nodeID;
	};
	const none = async (req: Request = { path: "" }) => req;
	const at = (p: string, body?: unknown): Request => ({ path: `/api/v1/${p}`, body });

	const ROWS: Record<string, Row> = {
		"GET /api/v1/nodes": { access: "read", owners: [], ok: 200, make: () => none(at("nodes")) },
		"GET /api/v1/nodes/:id": {
			access: "read",
			owners: ["cluster"],
			ok: 200,
			make: async () => at(`nodes/${await node()}`)
		},
		"POST /api/v1/nodes/:id/drain": {
			access: "admin",
			owners: ["cluster"],
			ok: 200,
			make: async () => at(`nodes/${await node()}/drain`, {})
		},
		"POST /api/v1/nodes/:id/uncordon": {
			access: "admin",
			owners: ["cluster"],
			ok: 200,
			make: async () => at(`nodes/${await node()}/uncordon`, {})
		},
		"DELETE /api/v1/nodes/:id": {
			access: "admin",
			owners: ["cluster"],
			ok: 200,
			make: async () => at(`nodes/${await downNode()}`)
		},

		"POST /api/v1/workloads": {
			access: "write",
			owners: [],
			ok: 201,
			make: () =>
				none(
					at("workloads", {
						name: unique("w"),
						kind: "process",
						process: { command: "sleep", args: ["60"] },
						resources: { cpu: 0.1, memory: "16Mi" }
					})
				)
		},
		"GET /api/v1/workloads": {
			access: "read",
			owners: [],
			ok: 200,
			item: async t => ({ field: "id", value: await workload(t) }),
			make: () => none(at("workloads?limit=1000"))
		},
		"GET /api/v1/workloads/:id": {
			access: "read",
			owners: ["tenant"],
			ok: 200,
			make: async (_o, t) => at(`workloads/${await workload(t)}`)
		},
		"POST /api/v1/workloads/:id/scale": {
			access: "write",
			owners: ["tenant"],
			ok: 200,
			make: async (_o, t) => at(`workloads/${await workload(t)}/scale`, { replicas: 2 })
		},
		// No agent runs here, so no replica failed: an allowed retry gets 409 (nothing to retry).
		"POST /api/v1/workloads/:id/retry": {
			access: "write",
			owners: ["tenant"],
			ok: 409,
			make: async (_o, t) => at(`workloads/${await workload(t)}/retry`, {})
		},
		"DELETE /api/v1/workloads/:id": {
			access: "write",
			owners: ["tenant"],
			ok: 200,
			make: async (_o, t) => at(`workloads/${await workload(t)}`)
		},
		"GET /api/v1/workloads/:id/logs": {
			access: "read",
			owners: ["tenant"],
			ok: 200,
			make: async (_o, t) => at(`workloads/${await workload(t)}/logs`)
		},

		"GET /api/v1/tenants": {
			access: "admin",
			owners: [],
			ok: 200,
			make: () => none(at("tenants"))
		},
		"POST /api/v1/tenants": {
			access: "admin",
			owners: [],
			ok: 201,
			make: () => none(at("tenants", { id: unique("t") }))
		},
		// A tenant is owned by itself: its users may read it, only admins change it.
		"GET /api/v1/tenants/:id": {
			access: "read",
			owners: ["tenant"],
			ok: 200,
			make: async (_o, t) => at(`tenants/${await tenantObject(t)}`)
		},
		"PUT /api/v1/tenants/:id": {
			access: "admin",
			owners: ["tenant"],
			ok: 200,
			make: async (_o, t) => at(`tenants/${await tenantObject(t)}`, { name: "renamed" })
		},
		"DELETE /api/v1/tenants/:id": {
			access: "admin",
			owners: ["tenant"],
			ok: 200,
			make: async (_o, t) => at(`tenants/${await tenantObject(t)}`)
		},

		"GET /api/v1/resources": {
			access: "read",
			owners: [],
			ok: 200,
			item: async t => ({ field: "id", value: await resource("tenant", t) }),
			make: () => none(at("resources?limit=1000"))
		},
		"POST /api/v1/resources": {
			access: "write",
			owners: [],
			ok: 201,
			make: () =>
				none(at("resources", { name: unique("r"), type: "tcp", endpoint: "127.0.0.1:1" }))
		},
		"GET /api/v1/resources/:id": {
			access: "read",
			owners: ["tenant", "cluster"],
			ok: 200,
			make: async (o, t) => at(`resources/${await resource(o, t)}`)
		},
		"PUT /api/v1/resources/:id": {
			access: "write",
			owners: ["tenant", "cluster"],
			ok: 200,
			make: async (o, t) =>
				at(`resources/${await resource(o, t)}`, {
					name: unique("r"),
					type: "tcp",
					endpoint: "127.0.0.1:2"
				})
		},
		"DELETE /api/v1/resources/:id": {
			access: "write",
			owners: ["tenant", "cluster"],
			ok: 200,
			make: async (o, t) => at(`resources/${await resource(o, t)}`)
		},

		"GET /api/v1/services": {
			access: "read",
			owners: [],
			ok: 200,
			item: async t => ({ field: "name", value: await service("tenant", t) }),
			make: () => none(at("services?limit=1000"))
		},
		"POST /api/v1/services": {
			access: "write",
			owners: [],
			ok: 201,
			make: () =>
				none(
					at("services", {
						name: unique("s"),
						type: "http",
						endpoints: ["http://127.0.0.1:1"]
					})
				)
		},
		// Calling is using, not changing: a cluster service is callable by every operator. No
		// endpoint is healthy, so an allowed call gets 503.
		"POST /api/v1/services/call": {
			access: "write",
			owners: ["tenant", "cluster"],
			ok: 503,
			make: async (o, t) =>
				at("services/call", { service: await service(o, t), path: "/", method: "GET" })
		},
		"GET /api/v1/services/:name": {
			access: "read",
			owners: ["tenant", "cluster"],
			ok: 200,
			make: async (o, t) => at(`services/${await service(o, t)}`)
		},
		"DELETE /api/v1/services/:name": {
			access: "write",
			owners: ["tenant", "cluster"],
			ok: 200,
			make: async (o, t) => at(`services/${await service(o, t)}`)
		},
		"POST /api/v1/apply": {
			access: "write",
			owners: [],
			ok: 200,
			make: () =>
				none(
					at("apply", {
						resources: { [unique("ar")]: { type: "tcp", endpoint: "127.0.0.1:3" } }
					})
				)
		},

		"GET /api/v1/config": {
			access: "read",
			owners: [],
			ok: 200,
			make: () => none(at("config"))
		},
		"GET /api/v1/config/:key": {
			access: "read",
			owners: ["cluster"],
			ok: 200,
			make: async () => at(`config/${await configKey()}`)
		},
		"PUT /api/v1/config/:key": {
			access: "admin",
			owners: ["cluster"],
			ok: 200,
			make: async () => at(`config/${await configKey()}`, { value: 2 })
		},
		"DELETE /api/v1/config/:key": {
			access: "admin",
			owners: ["cluster"],
			ok: 200,
			make: async () => at(`config/${await configKey()}`)
		},

		"GET /api/v1/stats": { access: "read", owners: [], ok: 200, make: () => none(at("stats")) },
		"GET /api/v1/alerts/rules": {
			access: "read",
			owners: [],
			ok: 200,
			item: async t => ({ field: "id", value: await rule("tenant", t) }),
			make: () => none(at("alerts/rules?limit=1000"))
		},
		"POST /api/v1/alerts/rules": {
			access: "write",
			owners: [],
			ok: 201,
			make: () =>
				none(
					at("alerts/rules", {
						name: unique("rule"),
						metric: "node.cpu.usage",
						op: ">",
						threshold: 1000,
						for: "1m",
						severity: "warning"
					})
				)
		},
		"DELETE /api/v1/alerts/rules/:id": {
			access: "write",
			owners: ["tenant", "cluster"],
			ok: 200,
			make: async (o, t) => at(`alerts/rules/${await rule(o, t)}`)
		},
		"GET /api/v1/alerts": {
			access: "read",
			owners: [],
			ok: 200,
			make: () => none(at("alerts"))
		},
		"GET /api/v1/audit": {
			access: "read",
			owners: [],
			ok: 200,
			item: async t => ({ field: "target", value: await resource("tenant", t) }),
			make: () => none(at("audit?limit=1000"))
		},
		"GET /api/v1/events": {
			access: "read",
			owners: [],
			ok: 200,
			make: () => none(at("events"))
		},
		// A single-use ticket for the stream: any role, nothing of a tenant's in it but the
		// caller's own principal.
		"POST /api/v1/events/ticket": {
			access: "read",
			owners: [],
			ok: 200,
			make: () => none(at("events/ticket", {}))
		},
		// The cluster's own: an admin adopts the store (no agent runs here, so nothing is
		// re-registered and the identity only moves to the next epoch).
		"POST /api/v1/cluster/adopt": {
			access: "admin",
			owners: [],
			ok: 200,
			make: () => none(at("cluster/adopt", {}))
		}
	};

	/** The gateway's /api/v1 routes, as "METHOD /api/v1/path" from its route table. */
	function routeTable(): string[] {
		const routes = (GatewayService.settings as { routes: { path: string; aliases?: object }[] })
			.routes;
		return routes
			.filter(r => r.path.startsWith("/api/v1"))
			.flatMap(r =>
				Object.keys(r.aliases ?? {}).map(alias => {
					const [method, p] = alias.split(/\s+/);
					return `${method} ${path.posix.join(r.path, p)}`.replace(/\/$/, "");
				})
			);
	}

	/** The status a caller must get on a route's object of that owner. */
	function expected(row: Row, caller: Caller, owner: Owner | null): number {
		if (caller === "no-token" || caller === "expired") return 401;
		const roles: Record<string, Role> = {
			admin: "admin",
			operator: "operator",
			viewer: "viewer",
			"other-operator": "operator",
			"other-viewer": "viewer"
		};
		const role = roles[caller];
		const allowed = {
			read: ["admin", "operator", "viewer"],
			write: ["admin", "operator"],
			admin: ["admin"]
		};
		// The role is checked before any object is looked up: the same 403 for every id.
		if (!allowed[row.access].includes(role)) return 403;
		if (role === "admin" || owner === null) return row.ok;
		const sameTenant = !caller.startsWith("other-");
		if (owner === "tenant") return sameTenant ? row.ok : 404;
		// The cluster's objects: readable (and callable) by all, changed only by admins.
		return row.access === "read" || row.ok === 503 ? row.ok : 403;
	}

	beforeAll(async () => {
		await broker.start();
		const address = (gateway as any).server.address();
		base = `http://127.0.0.1:${address.port}`;
	});
	afterAll(async () => {
		await broker.stop();
		fs.rmSync(dir, { recursive: true, force: true });
	});

	it("has a row for every route of the gateway, and no row for a route it lacks", () => {
		const table = routeTable().sort();
		expect(Object.keys(ROWS).sort()).toEqual(table);
	});

	const cells: [string, Caller, Owner | null][] = Object.entries(ROWS).flatMap(([route, row]) =>
		(row.owners.length ? row.owners : [null]).flatMap(owner =>
			CALLERS.map(caller => [route, caller, owner] as [string, Caller, Owner | null])
		)
	);

	it.each(cells)("%s as %s on the object of %s", async (route, caller, owner) => {
		const row = ROWS[route];
		const tenant = route.includes("/tenants/:id") ? unique("tenant") : TENANT;
		const item = await row.item?.(tenant);
		const req = await row.make(owner ?? "tenant", tenant);
		const [method] = route.split(" ");
		const res = await send(method, req.path, await tokenOf(caller, tenant), req.body);
		const want = expected(row, caller, owner);
		if (res.status !== want)
			throw new Error(
				`${route} as ${caller} (owner ${owner ?? "-"}): expected ${want}, got ${res.status} ${JSON.stringify(res.body)}`
			);
		// Another tenant's object looks exactly like a missing one.
		if (want === 404) expect(res.body).toMatchObject({ code: 404, type: "NOT_FOUND" });
		if (item && want === 200) {
			const shown = (res.body.items as Record<string, unknown>[]).some(
				i => i[item.field] === item.value
			);
			expect(shown).toBe(!caller.startsWith("other-"));
		}
	});
});
