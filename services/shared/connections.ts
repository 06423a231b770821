/**
 * How a node connects to the bus (NATS) and to a Redis store: TLS with a CA (and a client
 * certificate for mTLS), and credentials, from the ISA_NATS_* and ISA_REDIS_* settings
 * (services/shared/env.ts). Secrets are kept out of the URLs, which Moleculer and the store's
 * identity file name in logs and settings.
 */
import fs from "fs";
import { credsAuthenticator, nkeyAuthenticator } from "nats";
import type { RedisOptions } from "ioredis";
import { InvalidInputError } from "./errors";
import type { IsaEnv, NatsAuth, RedisAuth, TlsFiles } from "./env";

/** The NATS transporter Moleculer is given: its URL, or the URL with TLS and credentials. */
export type TransporterOption = string | { type: "NATS"; options: Record<string, unknown> };

/** `nats://a:4222,tls://b:4222`: the scheme of every server is nats or tls. */
function isNatsUrl(url: string): boolean {
	return url.split(",").every(part => /^(nats|tls):\/\//i.test(part.trim()));
}

function readFile(file: string, name: string): Buffer {
	try {
		return fs.readFileSync(file);
	} catch (err) {
		throw new InvalidInputError(
			`${name}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? err}).`,
			{ name, file }
		);
	}
}

function wantsTls(url: string, tls: TlsFiles): boolean {
	return /(^|,)\s*tls:\/\//i.test(url) || Boolean(tls.ca || tls.cert);
}

function hasNatsCredentials(auth: NatsAuth): boolean {
	return Boolean(auth.user || auth.token || auth.creds || auth.nkey);
}

/**
 * What `transporter` is in the broker options. A plain `nats://` URL with nothing else set stays
 * a string, as before; `tls://` URLs (which Moleculer does not know) become `nats://` with TLS
 * required, the server checked against ISA_NATS_CA (else the system's CAs). Transporters other
 * than NATS are passed on untouched.
 */
export function natsTransporter(
	env: Pick<IsaEnv, "transporter" | "nats">
): TransporterOption | null {
	const url = env.transporter;
	if (!url) return null;
	const auth = env.nats;
	const tls = wantsTls(url, auth.tls);
	if (!isNatsUrl(url)) return url;
	if (!tls && !hasNatsCredentials(auth)) return url;
	// Servers as host:port, not `url`: Moleculer would take user and pass from the URL and
	// overwrite the ones given here with nothing.
	const servers = url.split(",").map(part => new URL(part.trim()));
	const options: Record<string, unknown> = { servers: servers.map(server => server.host) };
	const inUrl = servers.find(server => server.username);
	if (inUrl) {
		options.user = decodeURIComponent(inUrl.username);
		options.pass = decodeURIComponent(inUrl.password) || undefined;
	}
	if (tls)
		options.tls = {
			...(auth.tls.ca ? { ca: readFile(auth.tls.ca, "ISA_NATS_CA").toString() } : {}),
			...(auth.tls.cert
				? {
						cert: readFile(auth.tls.cert, "ISA_NATS_CERT").toString(),
						key: readFile(auth.tls.key!, "ISA_NATS_KEY").toString()
					}
				: {})
		};
	if (auth.user) {
		options.user = auth.user;
		options.pass = auth.password ?? undefined;
	}
	if (auth.token) options.token = auth.token;
	if (auth.creds)
		options.authenticator = credsAuthenticator(
			new Uint8Array(readFile(auth.creds, "ISA_NATS_CREDS"))
		);
	if (auth.nkey)
		options.authenticator = nkeyAuthenticator(
			new TextEncoder().encode(readFile(auth.nkey, "ISA_NATS_NKEY").toString().trim())
		);
	return { type: "NATS", options };
}

/** The ioredis options a store connection adds to its URL: credentials and TLS files. */
export function redisConnection(auth: RedisAuth): RedisOptions {
	const options: RedisOptions = {};
	if (auth.username) options.username = auth.username;
	if (auth.password) options.password = auth.password;
	const { ca, cert, key } = auth.tls;
	if (ca || cert)
		options.tls = {
			...(ca ? { ca: readFile(ca, "ISA_REDIS_CA") } : {}),
			...(cert
				? {
						cert: readFile(cert, "ISA_REDIS_CERT"),
						key: readFile(key!, "ISA_REDIS_KEY")
					}
				: {})
		};
	return options;
}
