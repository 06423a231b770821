/**
 * Certificates for TLS tests, made with `openssl` in a temporary directory: a CA, a server pair
 * for 127.0.0.1, and client pairs (for mTLS) signed by that CA or by a second, foreign CA.
 */
import { execFileSync } from "child_process";
import fs from "fs";
import os from "os";
import path from "path";

export interface CertPair {
	cert: string;
	key: string;
}

export interface TestCertificates {
	dir: string;
	/** The CA that signs the servers and the cluster's clients. */
	ca: string;
	server: CertPair;
	client: CertPair;
	/** A CA that signed neither server: a client that trusts only it must refuse the server. */
	foreignCa: string;
	/** A client pair that the foreign CA signed: the servers must refuse it. */
	foreignClient: CertPair;
}

const EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

function openssl(dir: string, args: string[]): void {
	execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
}

function makeCa(dir: string, name: string): string {
	openssl(dir, [
		"req",
		"-x509",
		...EC_KEY,
		"-keyout",
		`${name}.key`,
		"-out",
		`${name}.pem`,
		"-days",
		"2",
		"-subj",
		`/CN=${name}`
	]);
	return path.join(dir, `${name}.pem`);
}

function makePair(dir: string, name: string, ca: string, usage: string): CertPair {
	const ext = path.join(dir, `${name}.ext`);
	fs.writeFileSync(ext, `subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=${usage}\n`);
	openssl(dir, [
		"req",
		...EC_KEY,
		"-keyout",
		`${name}.key`,
		"-out",
		`${name}.csr`,
		"-subj",
		`/CN=${name}`
	]);
	openssl(dir, [
		"x509",
		"-req",
		"-in",
		`${name}.csr`,
		"-CA",
		`${ca}.pem`,
		"-CAkey",
		`${ca}.key`,
		"-CAcreateserial",
		"-out",
		`${name}.pem`,
		"-days",
		"2",
		"-extfile",
		ext
	]);
	return { cert: path.join(dir, `${name}.pem`), key: path.join(dir, `${name}.key`) };
}

/** Everything a TLS test needs, in a fresh directory (remove it with fs.rmSync). */
export function makeCertificates(): TestCertificates {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), "isa-certs-"));
	const ca = makeCa(dir, "cluster-ca");
	const foreignCa = makeCa(dir, "foreign-ca");
	return {
		dir,
		ca,
		server: makePair(dir, "server", "cluster-ca", "serverAuth"),
		client: makePair(dir, "client", "cluster-ca", "clientAuth"),
		foreignCa,
		foreignClient: makePair(dir, "foreign-client", "foreign-ca", "clientAuth")
	};
}
