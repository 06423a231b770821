/**
 * Mints an HS256 token for the gateway:
 *
 *   npm run -s token -- --tenant acme --role operator [--sub alice] [--ttl 24h]
 *
 * The secret is ISA_JWT_SECRET, or the one the single-node default keeps in the data directory.
 * Only the token goes to stdout, so `TOKEN=$(npm run -s token -- …)` works.
 */
import { parseArgs } from "util";
import { loadEnv } from "../services/shared/env";
import { mintToken } from "../services/gateway/jwt";
import { parseDuration } from "../services/shared/duration";
import { Role, ROLES } from "../services/shared/principal";
import { existingSecret, secretPath } from "../services/gateway/secret";

const USAGE =
	"usage: npm run -s token -- --tenant T --role admin|operator|viewer [--role …] [--sub NAME] [--ttl 24h]";

function fail(message: string): never {
	console.error(`token: ${message}\n${USAGE}`);
	process.exit(2);
}

async function main(): Promise<void> {
	let values;
	try {
		({ values } = parseArgs({
			options: {
				tenant: { type: "string" },
				role: { type: "string", multiple: true },
				sub: { type: "string" },
				ttl: { type: "string", default: "24h" }
			}
		}));
	} catch (err) {
		fail((err as Error).message);
	}
	const roles = (values.role ?? []).flatMap(r => r.split(","));
	if (!values.tenant) fail("--tenant is required.");
	if (roles.length === 0) fail("at least one --role is required.");
	const unknown = roles.filter(r => !(ROLES as readonly string[]).includes(r));
	if (unknown.length) fail(`unknown role ${unknown.join(", ")}; roles are ${ROLES.join(", ")}.`);

	const env = loadEnv();
	const secret =
		existingSecret(env.jwtSecret, env.dataDir) ??
		fail(
			`no ISA_JWT_SECRET and no ${secretPath(env.dataDir)} yet: start the node once ` +
				"(`npm start`) or set ISA_JWT_SECRET to the gateway's secret."
		);
	let ttl: number;
	try {
		ttl = Math.round(parseDuration(values.ttl ?? "24h", { field: "--ttl", min: 1000 }) / 1000);
	} catch (err) {
		fail((err as Error).message);
	}
	const token = await mintToken({
		secret,
		sub: values.sub ?? `${values.tenant}-${roles[0]}`,
		tenant: values.tenant,
		roles: roles as Role[],
		ttl,
		issuer: env.jwtIssuer,
		audience: env.jwtAudience
	});
	process.stdout.write(token + "\n");
}

void main();
