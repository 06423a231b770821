/**
 * Who calls, in a form a stranger on the bus cannot forge. Every request a node sends to another
 * carries a proof in `ctx.meta.callerProof`: an HMAC-SHA256, with the cluster key, over the
 * sending node, the action, a short expiry and the caller's principal (`ctx.meta.user`, or none
 * for the control plane's own calls). A node that holds the key checks the proof of every
 * request before Moleculer runs it, so a broker that joined the bus without the key (with stolen
 * bus credentials, or a tenant's service on an agent, which is given no key) can neither claim a
 * user nor act as the control plane: its request is answered PRINCIPAL_UNVERIFIED (401).
 *
 * Each hop signs anew (the gateway's node for the gateway's call, the scheduler's for its calls
 * onward), so a proof names its sender and action: one read off the bus opens no other action,
 * and the same one only until it expires (it does not cover the parameters; NATS permissions
 * that keep members from reading others' subjects close that). Calls inside one process are not
 * signed nor checked: nothing crosses the bus. No action of ours takes a stream, whose later
 * chunks Moleculer sends without meta: they would be refused. Events carry no proof, so a user
 * named in a remote event's meta is dropped: no event handler acts for a user.
 *
 * A key holder also signs its announcements (INFO, DISCONNECT), so that a broker without the key
 * cannot make it stop by announcing its NODEID (Moleculer stops a node on an INFO of its own
 * NODEID from another instance), nor take its place or announce it gone to the other key holders
 * while it is up. Agents hold no key: their NODEIDs are protected by the lease only.
 */
import crypto from "crypto";
import type { Middleware, ServiceBroker } from "moleculer";
import { PrincipalUnverifiedError } from "./errors";
import type { Principal } from "./principal";

/** The meta field of the proof. */
export const PROOF_META = "callerProof";

/** How long a proof is valid; a cached one is renewed when less than half of this is left. */
export const PROOF_TTL_MS = 60_000;

/** How far the clocks of two nodes may disagree. */
export const CLOCK_SKEW_MS = 30_000;

/** Why a proof was refused. */
export type ProofRefusal = "unsigned" | "expired" | "tampered";

type MaybeUser = Partial<Principal> | null | undefined;

/** The signed form of a user: the four fields services read, in a fixed order. */
function userPart(user: MaybeUser): string {
	return user == null ? "-" : JSON.stringify([user.sub, user.tenant, user.roles, user.exp]);
}

/** Whether a user from the bus has the shape of a Principal (what its proof covers). */
function wellFormed(user: unknown): user is Principal {
	if (user == null || typeof user !== "object") return false;
	const u = user as Record<string, unknown>;
	return (
		typeof u.sub === "string" &&
		typeof u.tenant === "string" &&
		Array.isArray(u.roles) &&
		u.roles.every(role => typeof role === "string") &&
		(u.exp === undefined || typeof u.exp === "number")
	);
}

/** Signs and checks proofs with one cluster key. Pure apart from the clock it is given. */
export class CallSigner {
	private readonly cache = new Map<string, { until: number; proof: string }>();
	/**
	 * Proofs already checked, with what they were valid for: senders reuse a proof for 30 s, so
	 * most checks are a lookup instead of an HMAC (about 20 µs on a loaded 2-core machine).
	 */
	private readonly verified = new Map<string, string>();

	constructor(
		private readonly key: Buffer,
		private readonly now: () => number = Date.now
	) {}

	private mac(sender: string, action: string, until: number, user: string): string {
		return crypto
			.createHmac("sha256", this.key)
			.update(`v1\n${sender}\n${action}\n${until}\n${user}`)
			.digest("base64url");
	}

	/** The proof for a call of `action` from `sender` on behalf of `user` (none: the node itself). */
	sign(sender: string, action: string, user: MaybeUser): string {
		const part = userPart(user);
		const cacheKey = `${sender}\n${action}\n${part}`;
		const now = this.now();
		const cached = this.cache.get(cacheKey);
		if (cached && cached.until - now > PROOF_TTL_MS / 2) return cached.proof;
		const until = now + PROOF_TTL_MS;
		const proof = `${until}.${this.mac(sender, action, until, part)}`;
		// Bounded: principals come and go with their tokens.
		if (this.cache.size >= 10_000) this.cache.clear();
		this.cache.set(cacheKey, { until, proof });
		return proof;
	}

	/** null when `proof` is a valid one for this sender, action and user; else why not. */
	check(proof: unknown, sender: string, action: string, user: unknown): ProofRefusal | null {
		if (typeof proof !== "string" || proof === "") return "unsigned";
		if (user != null && !wellFormed(user)) return "tampered";
		const dot = proof.indexOf(".");
		const until = Number(proof.slice(0, dot));
		if (dot <= 0 || !Number.isSafeInteger(until)) return "tampered";
		const part = userPart(user as MaybeUser);
		const signed = `${sender}\n${action}\n${part}`;
		if (this.verified.get(proof) !== signed) {
			const expected = Buffer.from(this.mac(sender, action, until, part));
			const given = Buffer.from(proof.slice(dot + 1));
			if (given.length !== expected.length || !crypto.timingSafeEqual(given, expected))
				return "tampered";
			if (this.verified.size >= 10_000) this.verified.clear();
			this.verified.set(proof, signed);
		}
		const now = this.now();
		if (until < now - CLOCK_SKEW_MS) return "expired";
		// Nobody signs this far ahead: a key holder's clock is off, or the proof is made up.
		if (until > now + PROOF_TTL_MS + CLOCK_SKEW_MS) return "tampered";
		return null;
	}
}

/** What an announcement's proof covers, in place of an action; null for other packets. */
export function announcement(cmd: string, payload: Record<string, unknown>): string | null {
	if (cmd === "INFO")
		return `$INFO\n${payload.instanceID}\n${payload.seq}\n${JSON.stringify(payload.services)}`;
	if (cmd === "DISCONNECT") return `$DISCONNECT\n${payload.instanceID}`;
	return null;
}

interface RequestPayload {
	id: string;
	action: string;
	sender: string;
	meta?: Record<string, unknown>;
}

interface TransitLike {
	sendResponse(
		nodeID: string,
		id: string,
		meta: unknown,
		data: unknown,
		err: Error
	): Promise<unknown>;
}

type MessageHandler = (cmd: string, packet: { payload: unknown }) => Promise<boolean>;

type Publish = (packet: { type: string; payload: Record<string, unknown> }) => Promise<unknown>;

/**
 * The broker middleware: signs every request this node sends (remoteAction) and checks every
 * request it receives, before the action or any other middleware sees it (transitMessageHandler,
 * where the packet's real sender field is read; a request claiming this node as its sender is
 * checked too). A verified user is passed on with only its four fields.
 */
export function SignedPrincipals(key: Buffer): Middleware {
	const signer = new CallSigner(key);
	let broker: ServiceBroker;
	let nodeID = "";
	/** Nodes whose last INFO was signed: while up, their unsigned announcements are dropped. */
	const signedNodes = new Set<string>();
	/** When each sender's refused request was last logged: once a minute, not per request. */
	const warned = new Map<string, number>();

	function warnRefused(p: RequestPayload, reason: ProofRefusal): void {
		const now = Date.now();
		if (now - (warned.get(p.sender) ?? 0) < 60_000) return;
		if (warned.size >= 1000) warned.clear();
		warned.set(p.sender, now);
		broker.logger.warn(
			`Refused '${p.action}' from node '${p.sender}': no valid proof of its caller ` +
				`(${reason}). Its node lacks ISA_CLUSTER_KEY, or it is not one of the cluster's.`
		);
	}

	/** Whether to drop this INFO or DISCONNECT; remembers the nodes that sign theirs. */
	function forgedAnnouncement(cmd: string, p: Record<string, unknown>): boolean {
		const sender = String(p.sender);
		const signed =
			signer.check(p[PROOF_META], sender, announcement(cmd, p)!, undefined) === null;
		if (signed) {
			if (cmd === "INFO") signedNodes.add(sender);
			else signedNodes.delete(sender);
			return false;
		}
		if (cmd === "INFO" && sender === nodeID && p.instanceID !== broker.instanceID) return true;
		if (signedNodes.has(sender)) {
			if (broker.registry.nodes.get(sender)?.available) return true;
			// That node is gone: its NODEID may come back on a node without the key.
			signedNodes.delete(sender);
		}
		return false;
	}

	return {
		name: "SignedPrincipals",
		created(b: ServiceBroker) {
			broker = b;
			nodeID = b.nodeID;
		},
		transitPublish(next: Publish): Publish {
			return packet => {
				const p = packet.payload;
				if (packet.type === "DISCONNECT") p.instanceID = broker.instanceID;
				const covered = announcement(packet.type, p);
				if (covered) p[PROOF_META] = signer.sign(nodeID, covered, undefined);
				return next(packet);
			};
		},
		remoteAction(next: (ctx: any) => Promise<unknown>, action: { name: string }) {
			return (ctx: { meta: Record<string, unknown> }) => {
				ctx.meta[PROOF_META] = signer.sign(nodeID, action.name, ctx.meta.user as MaybeUser);
				return next(ctx);
			};
		},
		transitMessageHandler(this: TransitLike, next: MessageHandler): MessageHandler {
			// An arrow function: `this` stays the transit Moleculer binds the hook to.
			return (cmd, packet) => {
				if (cmd === "REQ") {
					const p = packet.payload as RequestPayload;
					const meta = p.meta ?? {};
					const refused = signer.check(meta[PROOF_META], p.sender, p.action, meta.user);
					if (refused) {
						warnRefused(p, refused);
						return this.sendResponse(
							p.sender,
							p.id,
							meta,
							null,
							new PrincipalUnverifiedError(p.action, p.sender, refused)
						).then(() => true);
					}
					if (meta.user != null) {
						const { sub, tenant, roles, exp } = meta.user as Principal;
						meta.user = { sub, tenant, roles, exp };
					}
				} else if (cmd === "EVENT") {
					const meta = (packet.payload as { meta?: Record<string, unknown> }).meta;
					if (meta) delete meta.user;
				} else if (cmd === "INFO" || cmd === "DISCONNECT") {
					const p = packet.payload as Record<string, unknown>;
					if (forgedAnnouncement(cmd, p)) {
						broker.logger.warn(
							`Dropped an unsigned ${cmd} announcing node '${p.sender}' (a node ` +
								"with that NODEID holds the cluster key and is up)."
						);
						return Promise.resolve(false);
					}
				}
				return next(cmd, packet);
			};
		}
	} as unknown as Middleware;
}
