/**
 * HTTPS for the gateway (ISA_TLS_CERT, ISA_TLS_KEY, ISA_TLS_CLIENT_CA).
 *
 * - One server speaks HTTP/2 and HTTP/1.1 on the same port: Node's HTTP/2 secure server with
 *   `allowHTTP1`, so that ALPN picks `h2` for clients that offer it and `http/1.1` for the rest
 *   (curl, wrk, older proxies). moleculer-web's handler runs on both through Node's
 *   compatibility request and response.
 * - With a client CA, every connection must present a certificate that CA signed
 *   (`requestCert` and `rejectUnauthorized`): the TLS handshake fails before any HTTP.
 * - Renewed files (cert-manager, certbot, a Kubernetes Secret's symlink swap) are picked up
 *   without a restart: `CertificateReloader` looks at the files' identity (inode, size, mtime)
 *   every `interval`, and when they changed and make a valid key pair, hands them to
 *   `server.setSecureContext`. New connections get the new certificate; open ones keep the
 *   context they were made with and are not dropped. A half-written or mismatched set is
 *   refused with a warning, the old certificate stays, and the next change is tried again.
 * - Files that cannot be read, or do not make a key pair, at start: `readTlsFiles` throws
 *   InvalidInputError naming the variable, and bin/isa.ts exits with status 2 on it.
 * - Stopping: the server's `close()` ends idle HTTP/1.1 connections but waits for every
 *   HTTP/2 session, which a browser keeps open while idle; `SessionTracker` lets the drain
 *   (gateway/drain.ts) send each a GOAWAY, so that its open streams finish and it ends, and
 *   destroy what is still open when the grace is up (a client that stopped reading never lets
 *   its stream finish), so the gateway stops.
 */
import crypto from "crypto";
import fs from "fs";
import http from "http";
import http2 from "http2";
import tls from "tls";
import { InvalidInputError } from "../shared/errors";
import { MAX_HEADER_SIZE } from "./server-limits";

/** The files, as the settings name them. */
export interface TlsFiles {
	cert: string;
	key: string;
	/** CAs whose client certificates are required; null: no client certificate is asked for. */
	clientCa: string | null;
}

/** The files' contents. */
export interface TlsMaterial {
	cert: Buffer;
	key: Buffer;
	ca: Buffer | null;
}

export type RequestHandler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

/** The gateway's server: plain HTTP/1.1, or HTTPS with HTTP/2 and HTTP/1.1. */
export type GatewayServer = http.Server | http2.Http2SecureServer;

/** How often the reloader looks at the files by default (ms). */
export const RELOAD_INTERVAL = 1000;

const VARIABLES: Record<keyof TlsFiles, string> = {
	cert: "ISA_TLS_CERT",
	key: "ISA_TLS_KEY",
	clientCa: "ISA_TLS_CLIENT_CA"
};

function readFile(name: keyof TlsFiles, file: string): Buffer {
	try {
		return fs.readFileSync(file);
	} catch (err) {
		throw new InvalidInputError(
			`${VARIABLES[name]}=${file} cannot be read: ${(err as Error).message}`,
			{ name: VARIABLES[name], file }
		);
	}
}

/** What `tls.createSecureContext` and `setSecureContext` take. */
export function contextOptions(m: TlsMaterial): tls.SecureContextOptions {
	return m.ca ? { cert: m.cert, key: m.key, ca: m.ca } : { cert: m.cert, key: m.key };
}

/**
 * Checks that the material makes a TLS context (PEM that parses, a key that matches the
 * certificate, a CA that parses): InvalidInputError with OpenSSL's reason otherwise.
 */
export function checkMaterial(m: TlsMaterial, files: TlsFiles): void {
	// OpenSSL skips what is not PEM in a CA list: a file of none would trust nothing silently.
	if (m.ca)
		try {
			new crypto.X509Certificate(m.ca);
		} catch (err) {
			throw new InvalidInputError(
				`ISA_TLS_CLIENT_CA=${files.clientCa} holds no PEM certificate: ${(err as Error).message}`,
				{ name: "ISA_TLS_CLIENT_CA", file: files.clientCa }
			);
		}
	try {
		tls.createSecureContext(contextOptions(m));
	} catch (err) {
		throw new InvalidInputError(
			`ISA_TLS_CERT=${files.cert} and ISA_TLS_KEY=${files.key}` +
				(files.clientCa ? ` and ISA_TLS_CLIENT_CA=${files.clientCa}` : "") +
				` do not make a TLS certificate: ${(err as Error).message}`,
			{ name: "ISA_TLS_CERT", file: files.cert }
		);
	}
}

/** Reads and checks the files; InvalidInputError naming the variable when one is wrong. */
export function readTlsFiles(files: TlsFiles): TlsMaterial {
	const material = {
		cert: readFile("cert", files.cert),
		key: readFile("key", files.key),
		ca: files.clientCa ? readFile("clientCa", files.clientCa) : null
	};
	checkMaterial(material, files);
	return material;
}

/** The secure server's options: HTTP/2 with HTTP/1.1 by ALPN, client certificates with a CA. */
export function serverOptions(m: TlsMaterial): http2.SecureServerOptions {
	return {
		...contextOptions(m),
		allowHTTP1: true,
		minVersion: "TLSv1.2",
		requestCert: m.ca !== null,
		rejectUnauthorized: m.ca !== null,
		// The same header bound as HTTP/1.1's (server-limits.ts).
		settings: { maxHeaderListSize: MAX_HEADER_SIZE }
	};
}

/** The gateway's server for `handler`: HTTPS when `material` is given, else plain HTTP. */
export function createGatewayServer(
	handler: RequestHandler,
	material: TlsMaterial | null
): GatewayServer {
	if (!material) return http.createServer(handler);
	return http2.createSecureServer(
		serverOptions(material),
		handler as unknown as (
			req: http2.Http2ServerRequest,
			res: http2.Http2ServerResponse
		) => void
	);
}

export interface ReloaderLogger {
	info(...args: unknown[]): void;
	warn(...args: unknown[]): void;
}

/** What one look at the files found. */
export type ReloadOutcome = "unchanged" | "reloaded" | "refused";

/** The files' identity: any replacement (rename, symlink swap, rewrite) changes it. */
export function filesSignature(files: TlsFiles): string {
	return [files.cert, files.key, files.clientCa]
		.map(file => {
			if (file === null) return "-";
			try {
				const s = fs.statSync(file);
				return `${s.ino}:${s.size}:${s.mtimeMs}`;
			} catch {
				return "missing";
			}
		})
		.join("|");
}

/**
 * Follows the files and hands a changed, valid set to `apply` (the server's
 * `setSecureContext`). `check()` is one look; `start()` looks every `interval` ms.
 */
export class CertificateReloader {
	private signature: string;
	/** The signature of a set that was refused, so that it is warned about once. */
	private refused: string | null = null;
	private timer: NodeJS.Timeout | null = null;

	constructor(
		private readonly files: TlsFiles,
		private readonly apply: (options: tls.SecureContextOptions) => void,
		private readonly logger?: ReloaderLogger
	) {
		this.signature = filesSignature(files);
	}

	check(): ReloadOutcome {
		const signature = filesSignature(this.files);
		if (signature === this.signature || signature === this.refused) return "unchanged";
		let material: TlsMaterial;
		try {
			material = readTlsFiles(this.files);
		} catch (err) {
			// Mid-renewal (the certificate written, not yet its key) or broken: keep serving the
			// old one; a further change of the files is tried again.
			this.refused = signature;
			this.logger?.warn(
				`The renewed TLS files were not taken; the old certificate stays: ${(err as Error).message}`
			);
			return "refused";
		}
		this.apply(contextOptions(material));
		this.signature = signature;
		this.refused = null;
		this.logger?.info(`TLS certificate reloaded from ${this.files.cert}.`);
		return "reloaded";
	}

	start(interval = RELOAD_INTERVAL): void {
		this.stop();
		this.timer = setInterval(() => this.check(), interval);
		this.timer.unref();
	}

	stop(): void {
		if (this.timer) clearInterval(this.timer);
		this.timer = null;
	}
}

/**
 * The open HTTP/2 sessions of a server, for the drain (gateway/drain.ts): the server's close
 * waits for every session, and a browser keeps its session open while idle.
 */
export class SessionTracker {
	private readonly sessions = new Set<http2.ServerHttp2Session>();
	private closing = false;

	constructor(server: http2.Http2SecureServer) {
		server.on("session", session => {
			this.sessions.add(session);
			session.once("close", () => this.sessions.delete(session));
			// Its handshake was under way when the drain began.
			if (this.closing) session.close();
		});
	}

	/** Open HTTP/2 sessions. */
	get size(): number {
		return this.sessions.size;
	}

	/**
	 * GOAWAY on every session, and on any that opens from now on: no new streams; each session
	 * ends, with its connection, once its open streams have.
	 */
	goAway(): void {
		this.closing = true;
		for (const session of this.sessions) session.close();
	}

	/** Ends every session and its connection now, streams in flight and all. */
	destroyAll(): void {
		for (const session of this.sessions) session.destroy();
	}
}
