/**
 * Event-stream tickets: what the dashboard puts in the URL of `GET /api/v1/events` instead of
 * its token (EventSource cannot send an Authorization header, and a URL lands in logs).
 *
 * `POST /api/v1/events/ticket` (authenticated, read access) answers `{ticket, expiresIn}`. A
 * ticket is good for one connection within 30 s (never past its token's own expiry) and
 * carries the principal of the token it was issued for, so the stream it opens ends when the
 * token would have.
 *
 * The choice: a self-contained signed ticket, not a random one kept by the gateway that issued
 * it, so that behind a load balancer any gateway can redeem it (the page's ticket request and
 * its EventSource may reach different gateways). It is `v1.<payload>.<HMAC-SHA256>`, base64url,
 * with a key derived from the cluster's HS256 JWT secret (HKDF, so a ticket is never a valid
 * JWT and the secret is not used twice); a gateway without an HS256 secret (RS256 or JWKS
 * only) signs with a random key of its own, and its tickets are redeemable at it alone.
 * Single use: a redeemed ticket's `jti` is remembered until the ticket expires, in this process
 * and, with a Redis store, in Redis for all gateways (`SET NX PX`: one key per ticket that
 * expires with it), so a ticket opens one stream in the whole cluster. While Redis does not
 * answer, a gateway goes on with its own memory: a ticket could then be used once more at
 * another gateway within its 30 s, which for a capability that only opens a read-only stream
 * is preferred to refusing every dashboard.
 */
import crypto from "crypto";
import type { Redis } from "ioredis";
import ApiGateway from "moleculer-web";
import type { Principal } from "../shared/principal";
import { principalFromClaims } from "./jwt";

const WebErrors = ApiGateway.Errors;

/** Seconds a ticket is good for. */
export const TICKET_TTL_S = 30;

export const ERR_INVALID_TICKET = "INVALID_TICKET";
export const ERR_TICKET_EXPIRED = "TICKET_EXPIRED";
export const ERR_TICKET_USED = "TICKET_USED";

const PREFIX = "v1";
/** Past this many remembered tickets, expired ones are swept out. */
const SWEEP_AT = 10_000;

/** What a ticket's payload holds. */
interface TicketClaims {
	jti: string;
	sub: string;
	tenant: string;
	roles: string[];
	/** The token's expiry (s since the epoch): the stream's end. */
	exp: number;
	/** The ticket's own expiry (ms since the epoch). */
	tex: number;
}

function refused(type: string, reason: string): Error {
	return new WebErrors.UnAuthorizedError(type, { reason });
}

/** The ticket key for an HS256 secret; the same on every gateway that shares the secret. */
export function ticketKey(secret: string): Buffer {
	return Buffer.from(
		crypto.hkdfSync("sha256", secret, "isa-cloud", "event-stream ticket v1", 32)
	);
}

/** The record of used tickets that all gateways share. */
export interface SpentTickets {
	/** Marks the ticket used for `ttlMs`; resolves to false when it was used already. */
	take(jti: string, ttlMs: number): Promise<boolean>;
}

/** Used tickets in Redis: a key per ticket, expiring with it. */
export function redisSpentTickets(redis: Redis, prefix: string): SpentTickets {
	return {
		async take(jti, ttlMs) {
			const set = await redis.set(
				`${prefix}:ticket:${jti}`,
				"1",
				"PX",
				Math.max(1, ttlMs),
				"NX"
			);
			return set === "OK";
		}
	};
}

export interface TicketOptions {
	/** The HMAC key (ticketKey(secret), or random bytes). */
	key: Buffer;
	/** Seconds a ticket is good for (default TICKET_TTL_S). */
	ttl?: number;
	now?: () => number;
	/** Told when the shared record did not answer (the ticket is then judged by this process). */
	onSharedError?(err: Error): void;
}

export class EventTickets {
	/** Redeemed tickets' ids, until they expire (insertion order ≈ expiry order). */
	private readonly used = new Map<string, number>();
	private readonly ttlMs: number;
	private readonly now: () => number;
	private shared: SpentTickets | null = null;
	private readonly onSharedError: (err: Error) => void;

	constructor(private readonly opts: TicketOptions) {
		this.ttlMs = (opts.ttl ?? TICKET_TTL_S) * 1000;
		this.now = opts.now ?? Date.now;
		this.onSharedError = opts.onSharedError ?? (() => {});
	}

	/** From now on, also keeps used tickets in `spent`, shared with the other gateways. */
	share(spent: SpentTickets): void {
		this.shared = spent;
	}

	/** Remembered ticket ids (for tests and the memory bound). */
	get remembered(): number {
		return this.used.size;
	}

	/** A ticket for the principal; `expiresIn` in seconds. */
	issue(principal: Principal): { ticket: string; expiresIn: number } {
		const now = this.now();
		const tex = Math.min(now + this.ttlMs, principal.exp * 1000);
		const claims: TicketClaims = {
			jti: crypto.randomBytes(12).toString("base64url"),
			sub: principal.sub,
			tenant: principal.tenant,
			roles: principal.roles,
			exp: principal.exp,
			tex
		};
		const payload = Buffer.from(JSON.stringify(claims)).toString("base64url");
		return {
			ticket: `${PREFIX}.${payload}.${this.sign(payload)}`,
			expiresIn: Math.max(0, Math.floor((tex - now) / 1000))
		};
	}

	/** The principal of a ticket, used up by this call; a 401 error when it is not good. */
	async redeem(ticket: string): Promise<Principal> {
		const [prefix, payload, signature, ...rest] = ticket.split(".");
		if (prefix !== PREFIX || !payload || !signature || rest.length)
			throw refused(ERR_INVALID_TICKET, "This is not an event-stream ticket.");
		const expected = Buffer.from(this.sign(payload));
		const given = Buffer.from(signature);
		if (given.length !== expected.length || !crypto.timingSafeEqual(given, expected))
			throw refused(
				ERR_INVALID_TICKET,
				"The ticket's signature does not match (altered, or issued by another cluster)."
			);
		let claims: TicketClaims;
		try {
			claims = JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as TicketClaims;
		} catch {
			throw refused(ERR_INVALID_TICKET, "The ticket's payload is not JSON.");
		}
		const now = this.now();
		if (typeof claims.tex !== "number" || claims.tex <= now)
			throw refused(
				ERR_TICKET_EXPIRED,
				"The ticket has expired: get a new one with POST /api/v1/events/ticket."
			);
		if (typeof claims.jti !== "string" || this.used.has(claims.jti))
			throw refused(
				ERR_TICKET_USED,
				"The ticket was used already: get a new one for each connection."
			);
		const principal = principalFromClaims(claims as unknown as Record<string, unknown>);
		this.remember(claims.jti, claims.tex, now);
		if (this.shared && !(await this.takeShared(claims.jti, claims.tex - now)))
			throw refused(
				ERR_TICKET_USED,
				"The ticket was used already (at another gateway): get a new one for each connection."
			);
		return principal;
	}

	/** Whether the shared record took the ticket as new; true when it does not answer. */
	private async takeShared(jti: string, ttlMs: number): Promise<boolean> {
		try {
			return await this.shared!.take(jti, ttlMs);
		} catch (err) {
			this.onSharedError(err as Error);
			return true;
		}
	}

	private sign(payload: string): string {
		return crypto
			.createHmac("sha256", this.opts.key)
			.update(`${PREFIX}.${payload}`)
			.digest("base64url");
	}

	private remember(jti: string, tex: number, now: number): void {
		for (const [id, expiry] of this.used) {
			if (expiry > now) break;
			this.used.delete(id);
		}
		// Tickets cut short by their token's expiry can sit behind later ones: sweep them all.
		if (this.used.size >= SWEEP_AT)
			for (const [id, expiry] of this.used) if (expiry <= now) this.used.delete(id);
		this.used.set(jti, tex);
	}
}
