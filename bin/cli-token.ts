/**
 * The token a command-line tool (`npm run apply`, `npm run adopt`) sends to the gateway:
 * ISA_TOKEN when set, else a short-lived admin token minted with ISA_JWT_SECRET or the secret a
 * single node keeps in its data directory. An admin's token, so that what the tool writes is the
 * cluster's; an operator's ISA_TOKEN writes that tenant's instead.
 */
import { mintToken } from "../services/gateway/jwt";
import { existingSecret } from "../services/gateway/secret";
import { loadEnv } from "../services/shared/env";

/** Resolves to the token, or calls `fail` with what to set when there is no way to make one. */
export async function cliToken(sub: string, fail: (message: string) => never): Promise<string> {
	const env = loadEnv();
	if (env.token) return env.token;
	const secret =
		existingSecret(env.jwtSecret, env.dataDir) ??
		fail(
			"set ISA_TOKEN (an admin's token), or ISA_JWT_SECRET, or run it beside a started single node."
		);
	return mintToken({
		secret,
		sub,
		tenant: "default",
		roles: ["admin"],
		ttl: 300,
		issuer: env.jwtIssuer,
		audience: env.jwtAudience
	});
}
