/**
 * The notifier against a real HTTP receiver on loopback, which fails or hangs on the first
 * requests as each test configures.
 */
import http from "http";
import type { AddressInfo } from "net";
import { AlertRule, makeRule } from "../../../services/monitor/alerts";
import { Notice, noticeRule } from "../../../services/monitor/notices";
import { Notifier, WebhookBody } from "../../../services/monitor/notify";
import { eventually } from "../../helpers/cluster";

interface Receiver {
	url: string;
	bodies: WebhookBody[];
	/** The Idempotency-Key of each body taken. */
	keys: string[];
	attempts: number;
	close(): Promise<void>;
}

/** Answers 503 to the first `failures` POSTs (or never answers them, with `hang`), then 200. */
async function receiver(failures: number, hang = false): Promise<Receiver> {
	const r = { bodies: [] as WebhookBody[], keys: [] as string[], attempts: 0 };
	const server = http.createServer((req, res) => {
		let data = "";
		req.on("data", c => (data += c));
		req.on("end", () => {
			r.attempts++;
			if (r.attempts <= failures) {
				if (!hang) res.writeHead(503).end();
				return;
			}
			expect(req.headers["content-type"]).toBe("application/json");
			r.bodies.push(JSON.parse(data));
			r.keys.push(String(req.headers["idempotency-key"]));
			res.writeHead(204).end();
		});
	});
	await new Promise<void>(resolve => server.listen(0, "127.0.0.1", resolve));
	return Object.assign(r, {
		url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook?token=secret`,
		close: () =>
			new Promise<void>(resolve => {
				server.closeAllConnections();
				server.close(() => resolve());
			})
	});
}

let seq = 0;

function notice(status: "firing" | "resolved", r: AlertRule, node = "n1"): Notice {
	return {
		id: `a-${node}.${status}`,
		seq: ++seq,
		status,
		rule: noticeRule(r),
		alert: {
			id: `a-${node}`,
			ruleId: r.id,
			rule: r.name,
			severity: r.severity,
			series: `node.status{node="${node}"}`,
			labels: { node },
			op: r.op,
			threshold: r.threshold,
			state: status,
			since: 1,
			activeAt: 1,
			value: 0
		}
	};
}

function setup(opts: Partial<ConstructorParameters<typeof Notifier>[0]> = {}) {
	const settled: string[] = [];
	const warnings: string[] = [];
	const notifier = new Notifier({
		onSettled: (n, delivered) =>
			settled.push(`${n.id} ${delivered ? "delivered" : "given up"}`),
		logger: { warn: (...a) => warnings.push(a.join(" ")), debug: () => {} },
		backoff: 20,
		maxBackoff: 100,
		timeout: 300,
		...opts
	});
	return { notifier, settled, warnings };
}

const ruleTo = (webhook?: string) =>
	makeRule(
		{
			name: "down",
			metric: "node.status",
			op: "==",
			threshold: 0,
			for: 0,
			severity: "critical",
			...(webhook ? { notify: { webhook } } : {})
		},
		{ id: "r1", now: 0, createdBy: "test" }
	);

describe("Notifier", () => {
	const open: Receiver[] = [];
	let notifier: Notifier | null = null;
	afterEach(async () => {
		notifier?.close();
		await Promise.all(open.splice(0).map(r => r.close()));
	});

	it("posts in order, retrying failures with backoff, each with its notice's key", async () => {
		const rx = await receiver(2);
		open.push(rx);
		const s = setup();
		notifier = s.notifier;
		const r = ruleTo(rx.url);
		const started = Date.now();
		s.notifier.deliver(notice("firing", r));
		s.notifier.deliver(notice("resolved", r));
		// A notice queued already (a new leader delivering its outbox again) is not queued twice.
		s.notifier.deliver(notice("firing", r));
		expect(s.notifier.pending).toBe(2);
		await eventually(async () => rx.bodies.length === 2, 5000, "two deliveries");
		// The first notification failed twice: 20 ms, then 40 ms of backoff before it got through.
		expect(Date.now() - started).toBeGreaterThanOrEqual(60);
		expect(rx.attempts).toBe(4);
		expect(rx.bodies.map(b => b.status)).toEqual(["firing", "resolved"]);
		expect(rx.bodies[0]).toEqual({
			version: 1,
			id: "a-n1.firing",
			status: "firing",
			alert: notice("firing", r).alert,
			rule: { id: "r1", name: "down" }
		});
		// The same key on every attempt: a receiver can drop a copy.
		expect(rx.keys).toEqual(["a-n1.firing", "a-n1.resolved"]);
		// The receiver stores the body before it answers, so the second delivery can be seen
		// above while the notifier's HTTP client has not yet handled the answer to it.
		await eventually(async () => s.notifier.pending === 0, 5000, "the last answer handled");
		expect(s.settled).toEqual(["a-n1.firing delivered", "a-n1.resolved delivered"]);
	});

	it("gives a receiver that never answers a timeout, then gives up after maxAttempts", async () => {
		const rx = await receiver(Infinity, true);
		open.push(rx);
		const s = setup({ timeout: 100, maxAttempts: 2 });
		notifier = s.notifier;
		s.notifier.deliver(notice("firing", ruleTo(rx.url)));
		await eventually(async () => s.notifier.pending === 0, 5000, "giving up");
		expect(rx.attempts).toBe(2);
		expect(s.settled).toEqual(["a-n1.firing given up"]);
		expect(s.warnings).toHaveLength(1);
		// The warning names the receiver's origin, never its secret-bearing path.
		expect(s.warnings[0]).toMatch(/^Webhook http:\/\/127\.0\.0\.1:\d+ failed 2 times/);
		expect(s.warnings[0]).not.toMatch(/secret/);
	});

	it("drops the oldest waiting notification past maxQueue, never the one in flight", async () => {
		const rx = await receiver(0);
		open.push(rx);
		const s = setup({ maxQueue: 2 });
		notifier = s.notifier;
		const r = ruleTo(rx.url);
		for (const node of ["a", "b", "c", "d"]) s.notifier.deliver(notice("firing", r, node));
		expect(s.notifier.pending).toBe(2);
		expect(s.warnings).toHaveLength(2);
		expect(s.settled).toEqual(["a-b.firing given up", "a-c.firing given up"]);
		expect(s.warnings[0]).toMatch(
			/queue full \(2\): dropped the oldest notification, firing 'down' \(node.status\{node="b"\}\)/
		);
		await eventually(async () => rx.bodies.length === 2, 5000, "deliveries");
		expect(rx.bodies.map(b => b.alert.labels.node)).toEqual(["a", "d"]);
	});

	it("queues nothing for a rule without a webhook, and nothing once closed", async () => {
		const rx = await receiver(0);
		open.push(rx);
		const s = setup();
		s.notifier.deliver(notice("firing", ruleTo()));
		expect(s.notifier.pending).toBe(0);
		s.notifier.close();
		s.notifier.deliver(notice("resolved", ruleTo(rx.url)));
		expect(s.notifier.pending).toBe(0);
	});

	it("holds while it may not send, without spending attempts; clear() drops without settling", async () => {
		const rx = await receiver(0);
		open.push(rx);
		let may = false;
		const s = setup({ maySend: () => may, maxAttempts: 1 });
		notifier = s.notifier;
		s.notifier.deliver(notice("firing", ruleTo(rx.url)));
		await new Promise(r => setTimeout(r, 150));
		expect(rx.attempts).toBe(0);
		expect(s.settled).toEqual([]);
		may = true;
		await eventually(async () => s.settled.length === 1, 5000, "the held notice sent");
		expect(s.settled).toEqual(["a-n1.firing delivered"]);
		may = false;
		s.notifier.deliver(notice("resolved", ruleTo(rx.url)));
		s.notifier.clear();
		expect(s.notifier.pending).toBe(0);
		may = true;
		await new Promise(r => setTimeout(r, 150));
		expect(rx.attempts).toBe(1);
		expect(s.settled).toHaveLength(1);
	});
});
