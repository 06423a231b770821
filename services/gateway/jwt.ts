/**
 * JWT checks for the gateway (jose): HS256 with a shared secret, or RS256 with a configured
 * public key. `exp` is required; `alg: none` and any other algorithm are refused. `exp`, `nbf`
 * and `iat` are checked with a clock tolerance, `iss` and `aud` when configured.
 * Verified tokens are cached until they expire, because signature checks on every request would
 * cost the gateway a large share of its throughput.
 */
import {
	decodeProtectedHeader,
	importSPKI,
	jwtVerify,
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

export interface VerifierOptions {
	/** HS256 shared secret. */
	secret?: string | null;
	/** RS256 public key, PEM (SPKI). */
	publicKeyPem?: string | null;
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
	private readonly secret: Uint8Array | null;
	private publicKey: Promise<KeyLike> | null;
	private readonly cache = new Map<string, Principal>();
	private readonly cacheSize: number;
	private readonly tolerance: number;
	private readonly issuer: string | undefined;
	private readonly audience: string | undefined;
	private readonly now: () => number;

	constructor(opts: VerifierOptions) {
		if (!opts.secret && !opts.publicKeyPem)
			throw new TypeError("TokenVerifier needs an HS256 secret or an RS256 public key.");
		this.secret = opts.secret ? new TextEncoder().encode(opts.secret) : null;
		this.publicKey = opts.publicKeyPem ? importSPKI(opts.publicKeyPem, "RS256") : null;
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

	private async verifySignature(token: string): Promise<Principal> {
		let alg: string | undefined;
		try {
			alg = decodeProtectedHeader(token).alg;
		} catch {
			throw unauthorized(ERR_INVALID_TOKEN, "The token is not a JWT.");
		}
		const key = alg === "HS256" ? this.secret : alg === "RS256" ? await this.publicKey : null;
		if (!key)
			throw unauthorized(ERR_INVALID_TOKEN, `Tokens signed with '${alg}' are not accepted.`);
		let payload: Record<string, unknown>;
		try {
			({ payload } = await jwtVerify(token, key, {
				algorithms: [alg as string],
				requiredClaims: ["exp", "sub", "tenant"],
				currentDate: new Date(this.now()),
				clockTolerance: this.tolerance,
				issuer: this.issuer,
				audience: this.audience
			}));
		} catch (err) {
			if (err instanceof joseErrors.JWTExpired)
				throw unauthorized(ERR_TOKEN_EXPIRED, "The token has expired.");
			throw unauthorized(ERR_INVALID_TOKEN, (err as Error).message);
		}
		// jose checks `iat` only against a maximum age; a token issued in the future comes from a
		// wrong clock or a forger, and is refused beyond the tolerance like `nbf`.
		if (typeof payload.iat === "number" && payload.iat > this.now() / 1000 + this.tolerance)
			throw unauthorized(ERR_INVALID_TOKEN, "The token's 'iat' claim is in the future.");
		return principalFromClaims(payload);
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

/** An HS256 token, as `npm run token` and the single-node start print it. */
export async function mintToken(opts: MintOptions): Promise<string> {
	const jwt = new SignJWT({ tenant: opts.tenant, roles: opts.roles })
		.setProtectedHeader({ alg: "HS256", typ: "JWT" })
		.setSubject(opts.sub)
		.setIssuedAt()
		.setExpirationTime(Math.floor(Date.now() / 1000) + opts.ttl);
	if (opts.issuer) jwt.setIssuer(opts.issuer);
	if (opts.audience) jwt.setAudience(opts.audience);
	return jwt.sign(new TextEncoder().encode(opts.secret));
}
