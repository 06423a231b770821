/**
 * Load shedding through the HTTP API, with brokers in one process over Moleculer's in-memory
 * transporter (as scheduler.spec.ts): a control broker (gateway, inventory, scheduler, tenants,
 * audit) and three stub agents. Tenant "flood" sends far more creates at once than its bound
 * (ISA_QUEUE_TENANT_CREATES, 4 here): the ones past it get 503 OVERLOADED with Retry-After,
 * none 404 or hung, while tenant "quiet" is still answered 201 promptly. Then the process's
 * event loop is blocked (a busy-wait): the gateway sheds the flood's requests with 503 while it
 * serves the quiet tenant's, says so on /ready, and /health still answers. Last, with its
 * loop's utilization read as 90%: the flood is held back past HOLD_BACK_MIN mutations while the
 * quiet tenant is served. (That a stalled inventory declares no node down is
 * control-stall.spec.ts, with real processes.)
 */
import fs from "fs";
import os from "os";
import path from "path";
import { ServiceBroker } from "moleculer";
import request from "supertest";
import TenantsService from "../../services/tenants.service";
import GatewayService from "../../services/gateway.service";
import NodesService from "../../services/nodes.service";
import SchedulerService from "../../services/scheduler.service";
import { mintToken } from "../../services/gateway/jwt";
import { FAIR_SHARE_WINDOW_MS, HOLD_BACK_MIN, Shedder } from "../../services/gateway/overload";
import { auditService, withSettings } from "../helpers/services";
import { eventually } from "../helpers/cluster";
import { stubAgent } from "../helpers/stub-agent";

const SECRET = "shedding-test-secret";
const FLOOD_BOUND = 4;

describe("load shedding", () => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), "isa-shed-"));
	const store = path.join(dir, "isa.db");
	const namespace = `shed-${process.pid}`;
	const broker = (nodeID: string) =>
		new ServiceBroker({
			nodeID,
			namespace,
			transporter: "Fake",
			logger: false,
			heartbeatInterval: 1,
			heartbeatTimeout: 3
		});
	const control = broker("control");
	control.createService(withSettings(NodesService, { store }));
	control.createService(
		withSettings(SchedulerService, {
			store,
			createLimits: { total: 1000, perTenant: FLOOD_BOUND }
		})
	);
	control.createService(withSettings(TenantsService, { store }));
	control.createService(auditService(store));
	const gateway = control.createService(
		// The gateway's own bounds of a tenant's mutations, alone and beside others
		// (unit-tested), are set out of the way: here the scheduler's is the one met.
		withSettings(GatewayService, {
			port: 0,
			jwtSecret: SECRET,
			store,
			shedLag: 200,
			// The lag's shedding alone: a loop blocked on purpose is busy too, and holding back
			// a tenant over its part for that (ISA_SHED_BUSY) is unit-tested (overload.spec.ts).
			shedBusy: null,
			tenantMutations: 1000,
			mutations: 1000
		})
	);
	const agents: ServiceBroker[] = [];
	const tokens: Record<string, string> = {};
	let server: any;
	let seq = 0;

	const create = (tenant: "flood" | "quiet") =>
		request(server)
			.post("/api/v1/workloads")
			.set("Authorization", `Bearer ${tokens[tenant]}`)
			.send({
				name: `w${seq++}`,
				kind: "process",
				process: { command: "x" },
				resources: { cpu: 0.01, memory: "1Mi" }
			})
			.timeout(10_000);

	beforeAll(async () => {
		await control.start();
		server = (gateway as any).server;
		for (const tenant of ["flood", "quiet"])
			tokens[tenant] = await mintToken({
				secret: SECRET,
				sub: `${tenant}-user`,
				tenant,
				roles: ["operator"],
				ttl: 600
			});
		for (const id of ["n1", "n2", "n3"]) {
			const b = broker(id);
			b.createService(stubAgent({ id, cpu: 64, memoryGiB: 256, gpus: 0, interval: 200 }));
			agents.push(b);
			await b.start();
		}
		await eventually(
			async () =>
				(
					await request(server)
						.get("/api/v1/nodes")
						.set("Authorization", `Bearer ${tokens.quiet}`)
				).body.total === 3,
			5000,
			"3 nodes"
		);
	});

	afterAll(async () => {
		await Promise.all(agents.map(b => b.stop()));
		await control.stop();
		fs.rmSync(dir, { recursive: true, force: true });
	});

	it("answers a flooding tenant 503 with Retry-After past its bound, and the quiet one 201", async () => {
		// The scheduler is held busy (a task of its own first in its queue), so the flood's
		// creates pile up as they would under real load.
		let release!: () => void;
		const busy = new Promise<void>(resolve => (release = resolve));
		void (control.getLocalService("scheduler") as any).queue.run(() => busy);
		const answers: request.Response[] = [];
		const flood = Array.from({ length: 40 }, () =>
			Promise.resolve(create("flood")).then(r => answers.push(r))
		);
		await eventually(
			async () => answers.length === 40 - FLOOD_BOUND,
			10_000,
			"the creates past the bound refused"
		);
		for (const r of answers) {
			expect(r.status).toBe(503);
			expect(r.headers["retry-after"]).toBe("1");
			expect(r.body).toMatchObject({
				name: "OverloadedError",
				code: 503,
				type: "OVERLOADED",
				data: {
					queue: "the scheduler's creates of tenant 'flood'",
					limit: FLOOD_BOUND,
					retryAfter: 1
				}
			});
		}
		// The quiet tenant has a bound of its own: let in while the flood is refused.
		const quiet = Promise.resolve(create("quiet"));
		await new Promise(resolve => setTimeout(resolve, 200));
		const released = Date.now();
		release();
		expect((await quiet).status).toBe(201);
		expect(Date.now() - released).toBeLessThan(3000);
		await Promise.all(flood);
		const statuses = answers.map(r => r.status);
		expect(statuses.filter(s => s === 201)).toHaveLength(FLOOD_BOUND);
		expect(statuses.filter(s => s === 503)).toHaveLength(40 - FLOOD_BOUND);
		// Once the flood is answered, the tenant is let in again.
		expect((await create("flood")).status).toBe(201);
	});

	it("sheds the busiest tenant while its event loop lags, serves a quiet one, says so on /ready", async () => {
		const until = Date.now() + 1000;
		while (Date.now() < until);
		const [health, ready, quiet, ...flood] = await Promise.all([
			request(server).get("/health"),
			request(server).get("/ready"),
			create("quiet"),
			...Array.from({ length: 6 }, () => create("flood"))
		]);
		expect(health.status).toBe(200);
		expect(ready.status).toBe(503);
		expect(ready.body.data.checks.load).toMatch(/^overloaded: event-loop lag \d+ ms/);
		// The flood's requests come in together: the first is served, the others shed.
		expect(flood.every(r => r.status === 201 || r.status === 503)).toBe(true);
		const shed = flood.filter(r => r.status === 503);
		expect(shed.length).toBeGreaterThan(0);
		for (const r of shed) {
			expect(r.headers["retry-after"]).toBe("1");
			expect(r.body).toMatchObject({
				type: "OVERLOADED",
				data: { queue: "the gateway's event loop", limit: 200 }
			});
		}
		// The quiet tenant had nothing in flight: served while the flood is shed.
		expect(quiet.status).toBe(201);
		// Once the lag has passed, /ready says so and the flood is served again.
		await eventually(
			async () => (await request(server).get("/ready")).status === 200,
			5000,
			"ready again"
		);
		expect((await create("flood")).status).toBe(201);
	});

	it("while its event loop is busy, holds back the tenant sending more than its part, and serves the other", async () => {
		// The loop's utilization is made to read 90% (a real one at 90% is the benchmark's).
		const gw = gateway as any;
		const real = gw.shedder;
		gw.shedder = new Shedder(
			() => 0,
			null,
			{ budget: 1000, perTenant: 1000, windowMs: FAIR_SHARE_WINDOW_MS },
			() => 0.9,
			0.5
		);
		try {
			const flood: request.Response[] = [];
			const quiet: request.Response[] = [];
			for (let i = 0; i < HOLD_BACK_MIN + 10; i++) {
				// The quiet tenant stays active beside the flood.
				if (i % 10 === 0) quiet.push(await create("quiet"));
				flood.push(await create("flood"));
			}
			expect(quiet.map(r => r.status)).toEqual(quiet.map(() => 201));
			const statuses = flood.map(r => r.status);
			expect(statuses.slice(0, HOLD_BACK_MIN - 1)).toEqual(
				Array(HOLD_BACK_MIN - 1).fill(201)
			);
			expect(statuses.slice(HOLD_BACK_MIN)).toEqual(Array(10).fill(503));
			const refused = flood[flood.length - 1];
			expect(refused.headers["retry-after"]).toBe("1");
			expect(refused.body).toMatchObject({
				type: "OVERLOADED",
				data: { queue: "the gateway's event loop", tenant: "flood", utilization: 0.9 }
			});
		} finally {
			gw.shedder = real;
		}
	});
});
