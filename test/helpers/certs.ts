/**
 * Test certificates made with `openssl` in a directory: a CA, server certificates for
 * 127.0.0.1 and localhost, and client certificates, all signed by that CA; `makeCertificates`
 * adds a second, foreign CA and a client it signed (what mTLS must refuse). Nothing is
 * committed: each suite makes its own, valid for a day.
 */
import { execFileSync } from "child_process";
import crypto from "crypto";
import fs from "fs";
import os from "os";
import path from "path";

export interface Pair {
	cert: string;
	key: string;
}

function openssl(args: string[], cwd: string): void {
	execFileSync("openssl", args, { cwd, stdio: ["ignore", "ignore", "pipe"] });
}

export class TestCa {
	readonly cert: string;
	readonly key: string;

	/** A self-signed CA named `name`, in `dir`. */
	constructor(
		readonly dir: string,
		readonly name = "isa-test-ca"
	) {
		this.cert = path.join(dir, `${name}.crt`);
		this.key = path.join(dir, `${name}.key`);
		openssl(
			["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
				.concat(["-keyout", this.key, "-out", this.cert, "-subj", `/CN=${name}`])
				.concat(["-addext", "basicConstraints=critical,CA:TRUE"])
				.concat(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]),
			dir
		);
	}

	/** A certificate for `cn` signed by this CA; `server` adds 127.0.0.1 and localhost. */
	issue(name: string, opts: { cn?: string; server?: boolean } = {}): Pair {
		const key = path.join(this.dir, `${name}.key`);
		const csr = path.join(this.dir, `${name}.csr`);
		const cert = path.join(this.dir, `${name}.crt`);
		const ext = path.join(this.dir, `${name}.ext`);
		fs.writeFileSync(
			ext,
			opts.server
				? "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"
				: "extendedKeyUsage=clientAuth\n"
		);
		openssl(
			["req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr].concat([
				"-subj",
				`/CN=${opts.cn ?? name}`
			]),
			this.dir
		);
		openssl(
			["x509", "-req", "-in", csr, "-CA", this.cert, "-CAkey", this.key]
				.concat(["-set_serial", `0x${crypto.randomBytes(8).toString("hex")}`])
				.concat(["-days", "1", "-extfile", ext, "-out", cert]),
			this.dir
		);
		return { cert, key };
	}
}

/** The SHA-256 fingerprint of a PEM certificate file, as a peer certificate reports it. */
export function fingerprint(certFile: string): string {
	return new crypto.X509Certificate(fs.readFileSync(certFile)).fingerprint256;
}

export interface TestCertificates {
	dir: string;
	/** The CA that signs the servers and the cluster's clients. */
	ca: string;
	server: Pair;
	client: Pair;
	/** A CA that signed neither server: a client that trusts only it must refuse the server. */
	foreignCa: string;
	/** A client pair that the foreign CA signed: the servers must refuse it. */
	foreignClient: Pair;
}

/** A cluster CA with a server and a client pair, and a foreign CA with a client pair. */
export function makeCertificates(): TestCertificates {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), "isa-certs-"));
	const ca = new TestCa(dir, "cluster-ca");
	const foreign = new TestCa(dir, "foreign-ca");
	return {
		dir,
		ca: ca.cert,
		server: ca.issue("server", { server: true }),
		client: ca.issue("client"),
		foreignCa: foreign.cert,
		foreignClient: foreign.issue("foreign-client")
	};
}
