/**
 * JWT checks for the gateway (jose): HS256 with shared secrets, RS256 with a configured public
 * key, and RS256/ES256 with keys chosen by `kid` from a JWKS file. `exp` is required; `alg: none`
 * and any other algorithm are refused. `exp`, `nbf` and `iat` are checked with a clock
 * tolerance, `iss` and `aud` when configured.
 *
 * Keys rotate without downtime: during a grace several HS256 secrets are accepted (the first
 * signs; tokens name theirs by `kid`), and the JWKS file is read again when it changes.
 * Verified tokens are cached until they expire, because signature checks on every request would
 * cost the gateway a large share of its throughput.
 */
import crypto from "crypto";
import fs from "fs";
import {
	createLocalJWKSet,
	decodeProtectedHeader,
	importSPKI,
	JSONWebKeySet,
	jwtVerify,
	JWTVerifyGetKey,
	KeyLike,
	SignJWT,
	errors as joseErrors
} from "jose";
import ApiGateway from "moleculer-web";
import { Principal, Role, ROLES } from "../shared/principal";

const WebErrors = ApiGateway.Errors;

/** 401 with moleculer-web's shape; `type` says which check failed. */
function unauthorized(type: string, reason: string): Error {
	return new WebErrors.UnAuthorizedError(type, { reason });
}

// moleculer-web's typings name these constants wrongly; its runtime values are these.
export const ERR_NO_TOKEN = "NO_TOKEN";
export const ERR_INVALID_TOKEN = "INVALID_TOKEN";
export const ERR_TOKEN_EXPIRED = "TOKEN_EXPIRED";

/** Algorithms a JWKS key may sign with. */
const JWKS_ALGORITHMS = ["RS256", "ES256"];

/** The `kid` of an HS256 secret: a short hash, so the token names its secret, never shows it. */
export function secretKid(secret: string): string {
	return crypto.createHash("sha256").update(secret).digest("base64url").slice(0, 12);
}

/**
 * A JWKS file (ISA_JWT_JWKS), read again when its modification time changes, so that a key
 * added to it before use (and removed after its tokens expired) needs no restart.
 */
export class JwksFile {
	private mtimeMs = -1;
	private keys: JWTVerifyGetKey | null = null;

	constructor(private readonly file: string) {
		this.load();
	}

	/** The key set as it is in the file now; the old one when the file became unreadable. */
	current(): JWTVerifyGetKey {
		try {
			if (fs.statSync(this.file).mtimeMs !== this.mtimeMs) this.load();
		} catch {
			// Moved away while being replaced: keep the keys read last.
		}
		return this.keys as JWTVerifyGetKey;
	}

	private load(): void {
		const mtimeMs = fs.statSync(this.file).mtimeMs;
		const jwks = JSON.parse(fs.readFileSync(this.file, "utf8")) as JSONWebKeySet;
		if (!Array.isArray(jwks.keys))
			throw new TypeError(`${this.file} is not a JWKS: it has no "keys" list.`);
		this.keys = createLocalJWKSet(jwks);
		this.mtimeMs = mtimeMs;
	}
}

export interface VerifierOptions {
	/** HS256 shared secret: the one that signs. */
	secret?: string | null;
	/** HS256 secrets still accepted during a rotation's grace. */
	previousSecrets?: string[];
	/** RS256 public key, PEM (SPKI). */
	publicKeyPem?: string | null;
	/** A JWKS file with RS256/ES256 public keys, chosen by the token's `kid`. */
	jwksFile?: string | null;
	/** Most tokens kept verified in memory. */
	cacheSize?: number;
	/**
	 * Seconds a token's `exp`, `nbf` and `iat` may be off, for clocks that do not agree
	 * exactly (default 30).
	 */
	clockTolerance?: number;
	/** When set, the `iss` a token must carry. */
	issuer?: string | null;
	/** When set, the `aud` a token must carry (one of them, for a list). */
	audience?: string | null;
	now?: () => number;
}

export class TokenVerifier {
	/** HS256 secrets by kid, the signing one first. */
	private readonly secrets: Map<string, Uint8Array>;
	private publicKey: Promise<KeyLike> | null;
	private readonly jwks: JwksFile | null;
	private readonly cache = new Map<string, Principal>();
	private readonly cacheSize: number;
	private readonly tolerance: number;
	private readonly issuer: string | undefined;
	private readonly audience: string | undefined;
	private readonly now: () => number;

	constructor(opts: VerifierOptions) {
		const secrets = [opts.secret, ...(opts.previousSecrets ?? [])].filter((s): s is string =>
			Boolean(s)
		);
		if (!secrets.length && !opts.publicKeyPem && !opts.jwksFile)
			throw new TypeError(
				"TokenVerifier needs an HS256 secret, an RS256 public key or a JWKS file."
			);
		this.secrets = new Map(secrets.map(s => [secretKid(s), new TextEncoder().encode(s)]));
		this.publicKey = opts.publicKeyPem ? importSPKI(opts.publicKeyPem, "RS256") : null;
		this.jwks = opts.jwksFile ? new JwksFile(opts.jwksFile) : null;
		this.cacheSize = opts.cacheSize ?? 10000;
		this.tolerance = opts.clockTolerance ?? 30;
		this.issuer = opts.issuer ?? undefined;
		this.audience = opts.audience ?? undefined;
		this.now = opts.now ?? Date.now;
	}

	/** The principal of an `Authorization` header value, or a 401 error. */
	async verifyHeader(header: string | undefined): Promise<Principal> {
		if (!header) throw unauthorized(ERR_NO_TOKEN, "Send 'Authorization: Bearer <token>'.");
		const match = /^Bearer\s+(\S+)$/i.exec(header);
		if (!match)
			throw unauthorized(ERR_NO_TOKEN, "The Authorization header must be 'Bearer <token>'.");
		return this.verify(match[1]);
	}

	async verify(token: string): Promise<Principal> {
		const cached = this.cache.get(token);
		if (cached) {
			if ((cached.exp + this.tolerance) * 1000 > this.now()) return cached;
			this.cache.delete(token);
			throw unauthorized(ERR_TOKEN_EXPIRED, "The token has expired.");
		}
		const principal = await this.verifySignature(token);
		if (this.cache.size >= this.cacheSize) this.cache.delete(this.cache.keys().next().value!);
		this.cache.set(token, principal);
		return principal;
	}

	/**
	 * The keys a token may be signed with: for HS256 the secret its `kid` names (or each
	 * secret, for a token without one); for RS256 without a `kid` the configured public key;
	 * else the JWKS, whose keys jose picks by `kid` and `alg`.
	 */
	private async candidateKeys(
		alg: string | undefined,
		kid: string | undefined
	): Promise<(Uint8Array | KeyLike | JWTVerifyGetKey)[]> {
		if (alg === "HS256") {
			if (kid === undefined) return [...this.secrets.values()];
			const secret = this.secrets.get(kid);
			if (!secret)
				throw unauthorized(
					ERR_INVALID_TOKEN,
					`The token's key '${kid}' is not one of this gateway's secrets.`
				);
			return [secret];
		}
		if (alg === undefined || !JWKS_ALGORITHMS.includes(alg)) return [];
		if (alg === "RS256" && this.publicKey && (kid === undefined || !this.jwks))
			return [await this.publicKey];
		return this.jwks ? [this.jwks.current()] : [];
	}

	private async verifySignature(token: string): Promise<Principal> {
		let alg: string | undefined;
		let kid: string | undefined;
		try {
			({ alg, kid } = decodeProtectedHeader(token));
		} catch {
			throw unauthorized(ERR_INVALID_TOKEN, "The token is not a JWT.");
		}
		const keys = await this.candidateKeys(alg, kid);
		if (!keys.length)
			throw unauthorized(ERR_INVALID_TOKEN, `Tokens signed with '${alg}' are not accepted.`);
		let payload: Record<string, unknown> | undefined;
		for (const [i, key] of keys.entries()) {
			try {
				payload = await this.verifyWith(token, key, alg as string);
				break;
			} catch (err) {
				// Without a kid, a signature that does not match may be the next secret's.
				const last = i === keys.length - 1;
				if (!last && err instanceof joseErrors.JWSSignatureVerificationFailed) continue;
				if (err instanceof joseErrors.JWTExpired)
					throw unauthorized(ERR_TOKEN_EXPIRED, "The token has expired.");
				if (err instanceof joseErrors.JWKSNoMatchingKey)
					throw unauthorized(
						ERR_INVALID_TOKEN,
						`No key of the JWKS matches the token's kid '${kid}' and alg '${alg}'.`
					);
				throw unauthorized(ERR_INVALID_TOKEN, (err as Error).message);
			}
		}
		// jose checks `iat` only against a maximum age; a token issued in the future comes from a
		// wrong clock or a forger, and is refused beyond the tolerance like `nbf`.
		if (typeof payload!.iat === "number" && payload!.iat > this.now() / 1000 + this.tolerance)
			throw unauthorized(ERR_INVALID_TOKEN, "The token's 'iat' claim is in the future.");
		return principalFromClaims(payload!);
	}

	private async verifyWith(
		token: string,
		key: Uint8Array | KeyLike | JWTVerifyGetKey,
		alg: string
	): Promise<Record<string, unknown>> {
		const options = {
			algorithms: [alg],
			requiredClaims: ["exp", "sub", "tenant"],
			currentDate: new Date(this.now()),
			clockTolerance: this.tolerance,
			issuer: this.issuer,
			audience: this.audience
		};
		const { payload } =
			typeof key === "function"
				? await jwtVerify(token, key, options)
				: await jwtVerify(token, key, options);
		return payload;
	}
}

/** Checks the claims' shapes: a token with a typo in its roles is refused, not half-trusted. */
export function principalFromClaims(claims: Record<string, unknown>): Principal {
	const { sub, tenant, roles, exp } = claims;
	if (typeof sub !== "string" || !sub)
		throw unauthorized(
			ERR_INVALID_TOKEN,
			"The token's 'sub' claim must be a non-empty string."
		);
	if (typeof tenant !== "string" || !tenant)
		throw unauthorized(
			ERR_INVALID_TOKEN,
			"The token's 'tenant' claim must be a non-empty string."
		);
	if (
		!Array.isArray(roles) ||
		roles.length === 0 ||
		!roles.every(r => (ROLES as readonly string[]).includes(r))
	)
		throw unauthorized(
			ERR_INVALID_TOKEN,
			`The token's 'roles' claim must list some of: ${ROLES.join(", ")}.`
		);
	if (typeof exp !== "number")
		throw unauthorized(ERR_INVALID_TOKEN, "The token's 'exp' claim must be a number.");
	return { sub, tenant, roles: roles as Role[], exp };
}

export interface MintOptions {
	secret: string;
	sub: string;
	tenant: string;
	roles: Role[];
	/** Lifetime in seconds. */
	ttl: number;
	/** `iss` and `aud` to set, as the verifier checks them (ISA_JWT_ISSUER, ISA_JWT_AUDIENCE). */
	issuer?: string | null;
	audience?: string | null;
}

/**
 * An HS256 token, as `npm run token` and the single-node start print it; its `kid` names the
 * secret, so that the gateway finds it among the secrets of a rotation.
 */
export async function mintToken(opts: MintOptions): Promise<string> {
	const jwt = new SignJWT({ tenant: opts.tenant, roles: opts.roles })
		.setProtectedHeader({ alg: "HS256", typ: "JWT", kid: secretKid(opts.secret) })
		.setSubject(opts.sub)
		.setIssuedAt()
		.setExpirationTime(Math.floor(Date.now() / 1000) + opts.ttl);
	if (opts.issuer) jwt.setIssuer(opts.issuer);
	if (opts.audience) jwt.setAudience(opts.audience);
	return jwt.sign(new TextEncoder().encode(opts.secret));
}
