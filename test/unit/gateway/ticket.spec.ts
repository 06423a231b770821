import crypto from "crypto";
import {
	ERR_INVALID_TICKET,
	ERR_TICKET_EXPIRED,
	ERR_TICKET_USED,
	EventTickets,
	SpentTickets,
	ticketKey
} from "../../../services/gateway/ticket";
import type { Principal } from "../../../services/shared/principal";

describe("event-stream tickets", () => {
	let now = 1_800_000_000_000;
	const clock = () => now;
	const principal: Principal = {
		sub: "ann",
		tenant: "acme",
		roles: ["viewer"],
		exp: now / 1000 + 3600
	};
	const key = ticketKey("a-cluster-secret");

	/** The 401 a redeem throws, as { code, type }. */
	async function refusal(tickets: EventTickets, ticket: string) {
		try {
			await tickets.redeem(ticket);
		} catch (err) {
			const e = err as { code: number; type: string; data: { reason: string } };
			return { code: e.code, type: e.type, reason: e.data.reason };
		}
		throw new Error("redeemed");
	}

	it("redeems once for the principal it was issued to, within 30 s", async () => {
		const tickets = new EventTickets({ key, now: clock });
		const { ticket, expiresIn } = tickets.issue(principal);
		expect(expiresIn).toBe(30);
		expect(ticket).toMatch(/^v1\.[\w-]+\.[\w-]+$/);
		expect(await tickets.redeem(ticket)).toEqual(principal);
		expect(await refusal(tickets, ticket)).toMatchObject({ code: 401, type: ERR_TICKET_USED });
	});

	it("refuses a ticket past its 30 s, and never outlives its token", async () => {
		const tickets = new EventTickets({ key, now: clock });
		const { ticket } = tickets.issue(principal);
		now += 30_001;
		expect(await refusal(tickets, ticket)).toMatchObject({
			code: 401,
			type: ERR_TICKET_EXPIRED,
			reason: expect.stringMatching(/POST \/api\/v1\/events\/ticket/)
		});
		const soon = { ...principal, exp: now / 1000 + 5 };
		const short = tickets.issue(soon);
		expect(short.expiresIn).toBe(5);
		now += 5_001;
		expect((await refusal(tickets, short.ticket)).type).toBe(ERR_TICKET_EXPIRED);
	});

	it("refuses an altered payload or signature, garbage, and another key's tickets", async () => {
		const tickets = new EventTickets({ key, now: clock });
		const { ticket } = tickets.issue(principal);
		const [v, payload, sig] = ticket.split(".");
		const claims = JSON.parse(Buffer.from(payload, "base64url").toString());
		const forged = Buffer.from(JSON.stringify({ ...claims, roles: ["admin"] })).toString(
			"base64url"
		);
		expect((await refusal(tickets, `${v}.${forged}.${sig}`)).type).toBe(ERR_INVALID_TICKET);
		expect((await refusal(tickets, `${v}.${payload}.${sig.slice(0, -2)}AA`)).type).toBe(
			ERR_INVALID_TICKET
		);
		for (const junk of ["", "v1", "v1..", "v2.a.b", "a.b.c.d", "eyJhbGciOiJIUzI1NiJ9.e30.x"])
			expect((await refusal(tickets, junk)).type).toBe(ERR_INVALID_TICKET);
		const stranger = new EventTickets({ key: crypto.randomBytes(32), now: clock });
		expect((await refusal(stranger, ticket)).type).toBe(ERR_INVALID_TICKET);
		// Still good for the one it was meant for: refusals used nothing up.
		expect((await tickets.redeem(ticket)).sub).toBe("ann");
	});

	it("is redeemable at another gateway with the same secret (once there too)", async () => {
		const a = new EventTickets({ key: ticketKey("shared"), now: clock });
		const b = new EventTickets({ key: ticketKey("shared"), now: clock });
		const { ticket } = a.issue(principal);
		expect((await b.redeem(ticket)).tenant).toBe("acme");
		expect((await refusal(b, ticket)).type).toBe(ERR_TICKET_USED);
	});

	it("is used up for every gateway that shares the record, and for the ticket's time only", async () => {
		// The shared record's contract, as redisSpentTickets keeps it in Redis (tested against
		// a real redis-server in test/integration/shared-counts.spec.ts).
		const taken = new Map<string, number>();
		const spent: SpentTickets = {
			async take(jti, ttlMs) {
				if ((taken.get(jti) ?? 0) > now) return false;
				taken.set(jti, now + ttlMs);
				return true;
			}
		};
		const a = new EventTickets({ key: ticketKey("shared"), now: clock });
		const b = new EventTickets({ key: ticketKey("shared"), now: clock });
		a.share(spent);
		b.share(spent);
		const { ticket } = a.issue(principal);
		now += 1000;
		expect((await b.redeem(ticket)).sub).toBe("ann");
		expect(await refusal(a, ticket)).toMatchObject({
			code: 401,
			type: ERR_TICKET_USED,
			reason: expect.stringMatching(/another gateway/)
		});
		// Kept as long as the ticket could still be used: 29 s here.
		expect([...taken.values()][0]).toBe(now + 29_000);
	});

	it("goes on with its own memory while the shared record does not answer", async () => {
		const errors: string[] = [];
		const tickets = new EventTickets({
			key,
			now: clock,
			onSharedError: err => errors.push(err.message)
		});
		tickets.share({ take: () => Promise.reject(new Error("Connection is closed.")) });
		const { ticket } = tickets.issue(principal);
		expect((await tickets.redeem(ticket)).sub).toBe("ann");
		expect(errors).toEqual(["Connection is closed."]);
		expect((await refusal(tickets, ticket)).type).toBe(ERR_TICKET_USED);
	});

	it("forgets used tickets once they expired", async () => {
		const tickets = new EventTickets({ key, now: clock });
		for (let i = 0; i < 5; i++) await tickets.redeem(tickets.issue(principal).ticket);
		expect(tickets.remembered).toBe(5);
		now += 31_000;
		await tickets.redeem(tickets.issue(principal).ticket);
		expect(tickets.remembered).toBe(1);
	});

	it("derives a key that is not the secret itself", async () => {
		expect(ticketKey("s").equals(Buffer.from("s"))).toBe(false);
		expect(ticketKey("s").equals(ticketKey("s"))).toBe(true);
	});
});
