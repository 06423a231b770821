/**
 * Two monitors in two processes on one Redis: one leads and announces, the other stands by. A
 * receiver counts every webhook notice: each alert's `firing` and `resolved` must arrive exactly
 * once through two handovers.
 *
 * 1. The leader is paused (SIGSTOP: a long GC or VM pause; its pid still exists, so only the
 *    lease tells) while a webhook of its is still failing. The standby takes over within one
 *    lease, delivers what the paused leader could not, then what changed while no copy led. The
 *    paused leader resumes (SIGCONT), finds itself replaced and sends nothing.
 * 2. The new leader is killed (SIGKILL). The other copy runs on the same host and sees its pid
 *    gone: it takes over at once.
 *
 * The alert is `workloads.pending > 0`: a workload created on a cluster without agents stays
 * pending until it is deleted, so the test turns the alert on and off through the API.
 */
import http from "http";
import type { AddressInfo } from "net";
import { COLLECTIONS } from "../../services/shared/collections";
import { RedisStore } from "../../services/shared/store";
import type { WebhookBody } from "../../services/monitor/notify";
import {
	ClusterFixture,
	clusterFixture,
	eventually,
	NodeProcess,
	startControl,
	startNode
} from "../helpers/cluster";

const SECRET = "leader-secret";
/** The default lease (ISA_LEADER_LEASE): what the takeover is measured against. */
const LEASE_MS = 8000;
jest.setTimeout(120_000);

interface Receiver {
	url: string;
	/** Answer 503 instead of 200 while set. */
	refusing: boolean;
	attempts: number;
	/** Accepted notices, with their Idempotency-Key. */
	taken: { key: string; body: WebhookBody }[];
	close(): Promise<void>;
}

async function receiver(): Promise<Receiver> {
	const rx = { refusing: false, attempts: 0, taken: [] as Receiver["taken"] };
	const server = http.createServer((req, res) => {
		let data = "";
		req.on("data", c => (data += c));
		req.on("end", () => {
			rx.attempts++;
			if (rx.refusing) return void res.writeHead(503).end();
			rx.taken.push({ key: String(req.headers["idempotency-key"]), body: JSON.parse(data) });
			res.writeHead(200).end();
		});
	});
	await new Promise<void>(resolve => server.listen(0, "127.0.0.1", resolve));
	return Object.assign(rx, {
		url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
		close: () =>
			new Promise<void>(resolve => {
				server.closeAllConnections();
				server.close(() => resolve());
			})
	});
}

interface Term {
	term: number;
	nodeID: string;
}

describe("monitor leader election (two monitor processes)", () => {
	let cluster: ClusterFixture;
	let store: RedisStore;
	let hook: Receiver;
	const nodes = new Map<string, NodeProcess>();

	const startMonitor = (id: string) =>
		nodes.set(id, startNode(id, { ...cluster.common, SERVICES: "monitor" }));
	const term = async () =>
		(await store.get<Term>(COLLECTIONS.leaders, "monitor.term"))?.value ?? null;
	const notices = () => hook.taken.map(t => `${t.body.status} ${t.body.alert.id}`);

	async function createPending(name: string): Promise<string> {
		const res = await cluster.api("/api/v1/workloads", {
			method: "POST",
			body: JSON.stringify({
				name,
				kind: "process",
				process: { command: "sleep" },
				resources: { cpu: 1, memory: "64Mi" }
			})
		});
		expect(res.status).toBe(201);
		expect(res.body.status).toBe("pending");
		return res.body.id;
	}

	async function remove(id: string): Promise<void> {
		const res = await cluster.api(`/api/v1/workloads/${id}`, { method: "DELETE" });
		expect(res.status).toBeLessThan(300);
	}

	beforeAll(async () => {
		hook = await receiver();
		cluster = await clusterFixture({
			name: "leader",
			secret: SECRET,
			token: { sub: "ops", tenant: "ops", roles: ["admin"] },
			env: { LOGLEVEL: "info" }
		});
		store = new RedisStore(cluster.common.STORE, { prefix: cluster.common.NAMESPACE });
		nodes.set("control", startControl(cluster));
		startMonitor("monitor-a");
		startMonitor("monitor-b");
		await eventually(async () => (await term()) !== null, 30_000, "a monitor leading");
		await eventually(
			async () => (await cluster.api("/api/v1/alerts/rules")).status === 200,
			30_000,
			"the gateway reaching a monitor"
		);
	});

	afterAll(async () => {
		await Promise.all([...nodes.values()].map(n => n.stop()));
		await store?.close();
		await cluster?.stop();
		await hook?.close();
	});

	it("hands over within one lease, and every notice arrives exactly once", async () => {
		const rule = await cluster.api("/api/v1/alerts/rules", {
			method: "POST",
			body: JSON.stringify({
				name: "work waits",
				metric: "workloads.pending",
				op: ">",
				threshold: 0,
				for: 0,
				severity: "warning",
				notify: { webhook: hook.url }
			})
		});
		expect(rule.status).toBe(201);
		// Both monitors read rules from the store every 2 s.
		await new Promise(r => setTimeout(r, 2500));

		// 1. The leader's first webhook fails: it is still retrying when it is paused.
		hook.refusing = true;
		const first = await createPending("first");
		await eventually(async () => hook.attempts > 0, 20_000, "the leader's first attempt");
		const before = (await term())!;
		const paused = nodes.get(before.nodeID)!;
		const standby = before.nodeID === "monitor-a" ? "monitor-b" : "monitor-a";
		process.kill(paused.proc.pid!, "SIGSTOP");
		const pausedAt = Date.now();
		hook.refusing = false;
		// The alert resolves while the leader is paused.
		await remove(first);

		const after = await eventually(
			async () => {
				const t = await term();
				return t && t.term > before.term ? t : null;
			},
			LEASE_MS + 10_000,
			"the standby taking over"
		);
		const takeover = Date.now() - pausedAt;
		expect(after).toMatchObject({ term: before.term + 1, nodeID: standby });
		expect(takeover).toBeLessThanOrEqual(10_000);

		// The paused leader's undelivered firing, then the resolution nobody announced yet.
		await eventually(async () => hook.taken.length >= 2, 15_000, "firing and resolved");
		const [fired, resolved] = hook.taken;
		expect(notices()).toEqual([
			`firing ${fired.body.alert.id}`,
			`resolved ${fired.body.alert.id}`
		]);
		expect(resolved.body.alert.id).toBe(fired.body.alert.id);
		const standbyLogs = nodes.get(standby)!.output();
		expect(standbyLogs).toMatch(/This monitor leads \(term \d+\)/);
		expect(standbyLogs).toMatch(/Delivering 1 webhook notice\(s\) left by the last leader/);

		// The paused leader resumes with a retry due: it finds itself replaced and sends nothing.
		const attempts = hook.attempts;
		process.kill(paused.proc.pid!, "SIGCONT");
		await eventually(
			async () => paused.output().includes("This monitor no longer leads"),
			10_000,
			"the resumed leader standing down"
		);
		await new Promise(r => setTimeout(r, 3000));
		expect(hook.attempts).toBe(attempts);

		// 2. The new leader is killed; the resumed copy on the same host sees its pid gone.
		await nodes.get(standby)!.kill();
		const killedAt = Date.now();
		await eventually(
			async () => ((await term())?.term ?? 0) > after.term,
			LEASE_MS + 10_000,
			"the resumed copy taking over"
		);
		const sameHost = Date.now() - killedAt;
		const second = await createPending("second");
		await eventually(async () => hook.taken.length >= 3, 15_000, "the second firing");
		await remove(second);
		await eventually(async () => hook.taken.length >= 4, 15_000, "the second resolved");
		// Long enough for a doubled notice to show (the copies evaluate every second).
		startMonitor(standby);
		await new Promise(r => setTimeout(r, 4000));

		const ids = hook.taken.map(t => t.body.alert.id);
		expect(notices()).toEqual([
			`firing ${ids[0]}`,
			`resolved ${ids[0]}`,
			`firing ${ids[2]}`,
			`resolved ${ids[2]}`
		]);
		expect(ids[2]).not.toBe(ids[0]);
		// Each notice's key is its id: unique, so a receiver could drop copies by it.
		expect(hook.taken.map(t => t.key)).toEqual(hook.taken.map(t => t.body.id));
		expect(new Set(hook.taken.map(t => t.key)).size).toBe(4);
		expect(await term()).toMatchObject({ term: before.term + 2, nodeID: before.nodeID });
		console.log(
			`Monitor takeover: ${takeover} ms after SIGSTOP (lease ${LEASE_MS} ms), ` +
				`${sameHost} ms after SIGKILL on the same host.`
		);
	});
});
