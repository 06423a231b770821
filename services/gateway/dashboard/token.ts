/**
 * The access token the page holds: what people paste, and what its claims say before the
 * gateway is asked (who it names, when it expires). The gateway verifies it on every request;
 * the page only reads it. Pure.
 */
import type { Principal } from "../../shared/principal";

/** The localStorage key the token is kept under until sign-out. */
export const TOKEN_KEY = "isa.token";

/**
 * The token in what was pasted: `npm start` prints `export TOKEN=…` and people copy headers
 * (`Bearer …`) too. Null when it cannot be a JWT (three dot-separated parts).
 */
export function cleanToken(text: string): string | null {
	const token = text
		.trim()
		.replace(/^Bearer\s+/i, "")
		.replace(/^export TOKEN=/, "");
	return token.split(".").length === 3 ? token : null;
}

/** The claims of a JWT, unverified; null when the payload is not base64url JSON. */
export function decodeClaims(token: string): Partial<Principal> | null {
	try {
		const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
		const claims: unknown = JSON.parse(atob(part + "===".slice((part.length + 3) % 4)));
		return claims && typeof claims === "object" ? (claims as Partial<Principal>) : null;
	} catch {
		return null;
	}
}

export function isExpired(claims: Partial<Principal> | null, now: number): boolean {
	return typeof claims?.exp === "number" && claims.exp * 1000 < now;
}

export function isAdmin(claims: Partial<Principal> | null): boolean {
	return claims?.roles?.includes("admin") ?? false;
}
