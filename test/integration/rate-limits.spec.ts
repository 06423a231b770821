/**
 * Rate limits shared by two gateways, each its own OS process (dist/bin/isa.js) over a real
 * nats-server and redis-server. Tenant "flood" sends three times its limit (20 reads/s here),
 * spread over both gateways and with a new X-Forwarded-For on every request: together they let
 * it through at its limit (within 10%), the rest get 429 RATE_LIMITED with Retry-After and
 * RateLimit-* headers, each leaves one audit record, and tenant "quiet" is answered 200
 * throughout. A tenant record's override takes effect. An event-stream ticket issued by one
 * gateway opens one stream at either, once for both. Last (it blocks 127.0.0.1 for a
 * minute): tokens and event-stream tickets that do not verify, sent to both gateways' API and
 * event stream, block the address after 5 of them (ISA_RATE_AUTH_FAILURES), a valid token from
 * it included.
 */
import { mintToken } from "../../services/gateway/jwt";
import { clusterFixture, eventually, startNode, NodeProcess } from "../helpers/cluster";
import { freePort } from "../helpers/servers";

const SECRET = "rate-limit-secret";
const READS = 20;
const FAILURES = 5;
const LOAD_SECONDS = 3;

jest.setTimeout(60_000);

describe("rate limits and tickets across two gateways", () => {
	let fixture: Awaited<ReturnType<typeof clusterFixture>>;
	let ports: number[];
	const nodes: NodeProcess[] = [];
	const tokens: Record<string, string> = {};
	let seq = 0;

	const get = (port: number, path: string, token: string, headers: Record<string, string> = {}) =>
		fetch(`http://127.0.0.1:${port}${path}`, {
			headers: { Authorization: `Bearer ${token}`, ...headers }
		});

	beforeAll(async () => {
		fixture = await clusterFixture({
			name: "rate",
			secret: SECRET,
			token: { sub: "ops", tenant: "ops", roles: ["admin"] },
			env: {
				ISA_RATE_READS: String(READS),
				// The tenant's limit is what is measured here; a subject's share is unit-tested.
				ISA_RATE_SUBJECT_SHARE: "100%",
				ISA_RATE_AUTH_FAILURES: String(FAILURES)
			}
		});
		ports = [fixture.port, await freePort()];
		nodes.push(
			startNode("rate-control", {
				...fixture.common,
				SERVICES: "nodes,scheduler,tenants,config,audit,gateway",
				PORT: String(ports[0])
			}),
			startNode("rate-gateway-2", {
				...fixture.common,
				SERVICES: "gateway",
				PORT: String(ports[1])
			})
		);
		for (const tenant of ["flood", "quiet", "custom"])
			tokens[tenant] = await mintToken({
				secret: SECRET,
				sub: `${tenant}-user`,
				tenant,
				roles: ["viewer"],
				ttl: 600
			});
		for (const port of ports)
			await eventually(
				async () => (await get(port, "/api/v1/tenants", fixture.token)).status === 200,
				30_000,
				`the gateway on ${port}`
			);
	});

	afterAll(async () => {
		await Promise.all(nodes.map(n => n.stop()));
		await fixture?.stop();
	});

	it("holds a tenant at its limit across both gateways, and leaves another tenant alone", async () => {
		const flood: Response[] = [];
		const quiet: Response[] = [];
		const sends: Promise<void>[] = [];
		const rate = 3 * READS;
		const start = Date.now();
		for (let i = 0; i < rate * LOAD_SECONDS; i++) {
			// A steady pace, not one burst: the load covers LOAD_SECONDS windows.
			const wait = start + (i * 1000) / rate - Date.now();
			if (wait > 0) await new Promise(r => setTimeout(r, wait));
			sends.push(
				get(ports[i % 2], "/api/v1/nodes", tokens.flood, {
					"X-Forwarded-For": `198.51.100.${seq++ % 250}`
				}).then(res => void flood.push(res))
			);
			if (i % 6 === 0)
				sends.push(
					get(ports[(i + 1) % 2], "/api/v1/nodes", tokens.quiet).then(
						res => void quiet.push(res)
					)
				);
		}
		await Promise.all(sends);
		const accepted = flood.filter(r => r.status === 200).length;
		const limited = flood.filter(r => r.status === 429);
		expect(accepted + limited.length).toBe(flood.length);
		const expected = READS * LOAD_SECONDS;
		expect(Math.abs(accepted - expected)).toBeLessThanOrEqual(0.1 * expected);
		// Both gateways answered some of each: the count is theirs together.
		expect(new Set(limited.map(r => r.url.split("/")[2])).size).toBe(2);
		expect(quiet.map(r => r.status)).toEqual(quiet.map(() => 200));

		const refusal = limited[0];
		expect(Number(refusal.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
		expect(refusal.headers.get("ratelimit-limit")).toBe(String(READS));
		expect(refusal.headers.get("ratelimit-remaining")).toBe("0");
		expect(Number(refusal.headers.get("ratelimit-reset"))).toBeGreaterThanOrEqual(1);
		expect(await refusal.json()).toMatchObject({
			code: 429,
			type: "RATE_LIMITED",
			data: { scope: "tenant", key: "flood", kind: "reads", limit: READS }
		});
		const ok = flood.find(r => r.status === 200)!;
		expect(ok.headers.get("ratelimit-limit")).toBe(String(READS));

		// One audit record per 429, with the limit it met.
		const audit = await fixture.api("/api/v1/audit?tenant=flood&outcome=denied&limit=1000");
		expect(audit.status).toBe(200);
		const records = audit.body.items;
		expect(records).toHaveLength(limited.length);
		expect(records[0]).toMatchObject({
			outcome: { status: 429, errorType: "RATE_LIMITED" },
			detail: expect.stringMatching(/tenant 'flood' may make 20 reads per second/)
		});
	});

	it("applies a tenant record's override on both gateways within seconds", async () => {
		expect(
			(await fixture.api("/api/v1/tenants", { method: "POST", body: '{"id":"custom"}' }))
				.status
		).toBe(201);
		const put = await fixture.api("/api/v1/tenants/custom", {
			method: "PUT",
			body: JSON.stringify({ rateLimits: { reads: 3 } })
		});
		expect(put.status).toBe(200);
		expect(put.body.rateLimits).toEqual({ reads: 3 });
		for (const port of ports)
			await eventually(
				async () =>
					(await get(port, "/api/v1/nodes", tokens.custom)).headers.get(
						"ratelimit-limit"
					) === "3",
				10_000,
				`the override on ${port}`
			);
		const bad = await fixture.api("/api/v1/tenants/custom", {
			method: "PUT",
			body: JSON.stringify({ rateLimits: { reads: 0 } })
		});
		expect(bad.status).toBe(422);
	});

	it("uses an event-stream ticket from one gateway up for both", async () => {
		const token = await mintToken({
			secret: SECRET,
			sub: "stream-user",
			tenant: "streams",
			roles: ["viewer"],
			ttl: 600
		});
		const issued = await fetch(`http://127.0.0.1:${ports[0]}/api/v1/events/ticket`, {
			method: "POST",
			headers: { Authorization: `Bearer ${token}` }
		});
		expect(issued.status).toBe(200);
		const { ticket } = (await issued.json()) as { ticket: string };
		const stream = (port: number, signal: AbortSignal) =>
			fetch(`http://127.0.0.1:${port}/api/v1/events?ticket=${encodeURIComponent(ticket)}`, {
				signal
			});
		// Redeemed at the other gateway (behind a load balancer the two requests may part).
		const open = new AbortController();
		const opened = await stream(ports[1], open.signal);
		expect(opened.status).toBe(200);
		expect(opened.headers.get("content-type")).toMatch(/^text\/event-stream/);
		open.abort();
		// Then used up for both: replayed at the first gateway, or again at the second.
		for (const port of ports) {
			const again = await stream(port, AbortSignal.timeout(5000));
			expect(again.status).toBe(401);
			expect(await again.json()).toMatchObject({ type: "TICKET_USED" });
		}
	});

	it("blocks an address after too many bad tokens and tickets, at the API and the event stream, on both gateways", async () => {
		const bad = `${tokens.quiet.slice(0, -4)}AAAA`;
		// Guesses at the API and at the event stream (a token, or a ticket) count alike.
		const tries = [
			(port: number, xff: string) =>
				get(port, "/api/v1/nodes", bad, { "X-Forwarded-For": xff }),
			(port: number, xff: string) =>
				fetch(`http://127.0.0.1:${port}/api/v1/events?ticket=not-a-ticket`, {
					headers: { "X-Forwarded-For": xff },
					signal: AbortSignal.timeout(5000)
				}),
			(port: number, xff: string) =>
				fetch(`http://127.0.0.1:${port}/api/v1/events`, {
					headers: { Authorization: `Bearer ${bad}`, "X-Forwarded-For": xff },
					signal: AbortSignal.timeout(5000)
				})
		];
		const statuses: number[] = [];
		for (let i = 0; i < FAILURES + 2; i++)
			statuses.push((await tries[i % 3](ports[i % 2], `203.0.113.${i}`)).status);
		expect(statuses).toEqual([...Array(FAILURES).fill(401), ...Array(2).fill(429)]);
		// Both gateways have now seen a failure past the limit: a valid token gets 429 too,
		// at the API and at the event stream.
		for (const port of ports) {
			const res = await get(port, "/api/v1/nodes", tokens.quiet);
			expect(res.status).toBe(429);
			expect(Number(res.headers.get("retry-after"))).toBeGreaterThan(1);
			expect(await res.json()).toMatchObject({
				type: "RATE_LIMITED",
				data: { scope: "address", key: "127.0.0.1", kind: "authentication failures" }
			});
			const events = await fetch(`http://127.0.0.1:${port}/api/v1/events`, {
				headers: { Authorization: `Bearer ${tokens.quiet}` },
				signal: AbortSignal.timeout(5000)
			});
			expect(events.status).toBe(429);
			expect(await events.json()).toMatchObject({ type: "RATE_LIMITED" });
		}
	});
});
