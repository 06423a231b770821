/**
 * The notifier against a real HTTP receiver on loopback, which fails or hangs on the first
 * requests as each test configures.
 */
import http from "http";
import type { AddressInfo } from "net";
import { AlertRule, makeRule, Transition } from "../../../services/monitor/alerts";
import { Notifier, WebhookBody } from "../../../services/monitor/notify";
import { eventually } from "../../helpers/cluster";

interface Receiver {
	url: string;
	bodies: WebhookBody[];
	attempts: number;
	close(): Promise<void>;
}

/** Answers 503 to the first `failures` POSTs (or never answers them, with `hang`), then 200. */
async function receiver(failures: number, hang = false): Promise<Receiver> {
	const r = { bodies: [] as WebhookBody[], attempts: 0 };
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

function transition(status: "firing" | "resolved", r: AlertRule, node = "n1"): Transition {
	return {
		status,
		rule: r,
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
	const events: string[] = [];
	const warnings: string[] = [];
	const notifier = new Notifier({
		broadcast: (status, alert) => events.push(`${status} ${alert.id}`),
		logger: { warn: (...a) => warnings.push(a.join(" ")), debug: () => {} },
		backoff: 20,
		maxBackoff: 100,
		timeout: 300,
		...opts
	});
	return { notifier, events, warnings };
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

	it("broadcasts at once, and posts in order, retrying failures with backoff", async () => {
		const rx = await receiver(2);
		open.push(rx);
		const s = setup();
		notifier = s.notifier;
		const r = ruleTo(rx.url);
		const started = Date.now();
		s.notifier.notify(transition("firing", r));
		s.notifier.notify(transition("resolved", r));
		expect(s.events).toEqual(["firing a-n1", "resolved a-n1"]);
		expect(s.notifier.pending).toBe(2);
		await eventually(async () => rx.bodies.length === 2, 5000, "two deliveries");
		// The first notification failed twice: 20 ms, then 40 ms of backoff before it got through.
		expect(Date.now() - started).toBeGreaterThanOrEqual(60);
		expect(rx.attempts).toBe(4);
		expect(rx.bodies.map(b => b.status)).toEqual(["firing", "resolved"]);
		expect(rx.bodies[0]).toEqual({
			version: 1,
			status: "firing",
			alert: transition("firing", r).alert,
			rule: { id: "r1", name: "down" }
		});
		// The receiver stores the body before it answers, so the second delivery can be seen
		// above while the notifier's HTTP client has not yet handled the answer to it.
		await eventually(async () => s.notifier.pending === 0, 5000, "the last answer handled");
		expect(s.notifier.pending).toBe(0);
	});

	it("gives a receiver that never answers a timeout, then gives up after maxAttempts", async () => {
		const rx = await receiver(Infinity, true);
		open.push(rx);
		const s = setup({ timeout: 100, maxAttempts: 2 });
		notifier = s.notifier;
		s.notifier.notify(transition("firing", ruleTo(rx.url)));
		await eventually(async () => s.notifier.pending === 0, 5000, "giving up");
		expect(rx.attempts).toBe(2);
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
		for (const node of ["a", "b", "c", "d"]) s.notifier.notify(transition("firing", r, node));
		expect(s.notifier.pending).toBe(2);
		expect(s.warnings).toHaveLength(2);
		expect(s.warnings[0]).toMatch(
			/queue full \(2\): dropped the oldest notification, firing 'down' \(node.status\{node="b"\}\)/
		);
		await eventually(async () => rx.bodies.length === 2, 5000, "deliveries");
		expect(rx.bodies.map(b => b.alert.labels.node)).toEqual(["a", "d"]);
	});

	it("only broadcasts for a rule without a webhook, and nothing once closed", () => {
		const s = setup();
		s.notifier.notify(transition("firing", ruleTo()));
		expect(s.events).toEqual(["firing a-n1"]);
		expect(s.notifier.pending).toBe(0);
		s.notifier.close();
		s.notifier.notify(transition("resolved", ruleTo()));
		expect(s.events).toHaveLength(1);
	});
});
