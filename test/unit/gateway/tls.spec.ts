import { X509Certificate } from "crypto";
import fs from "fs";
import os from "os";
import path from "path";
import type { SecureContextOptions } from "tls";
import { InvalidInputError } from "../../../services/shared/errors";
import {
	CertificateReloader,
	readTlsFiles,
	serverOptions,
	type TlsFiles
} from "../../../services/gateway/tls";
import { fingerprint, TestCa } from "../../helpers/certs";

describe("gateway TLS files", () => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), "isa-tls-unit-"));
	const ca = new TestCa(dir);
	const first = ca.issue("first", { server: true });
	const second = ca.issue("second", { server: true });
	const live: TlsFiles = {
		cert: path.join(dir, "live.crt"),
		key: path.join(dir, "live.key"),
		clientCa: null
	};
	/** Puts a pair in place as a renewal does: written aside, then renamed over. */
	function install(pair: { cert: string; key: string }) {
		for (const [from, to] of [
			[pair.cert, live.cert],
			[pair.key, live.key]
		]) {
			fs.copyFileSync(from, `${to}.tmp`);
			fs.renameSync(`${to}.tmp`, to);
		}
	}
	const certOf = (o: SecureContextOptions) =>
		new X509Certificate(o.cert as Buffer).fingerprint256;

	afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

	it("reads a certificate and its key; client CAs make client certificates required", () => {
		const m = readTlsFiles({ ...first, clientCa: null });
		expect(serverOptions(m)).toMatchObject({
			allowHTTP1: true,
			requestCert: false,
			rejectUnauthorized: false
		});
		const withCa = readTlsFiles({ ...first, clientCa: ca.cert });
		expect(serverOptions(withCa)).toMatchObject({
			requestCert: true,
			rejectUnauthorized: true
		});
	});

	it("names the variable and the file when one cannot be read or they do not match", () => {
		const missing = () => readTlsFiles({ cert: "/nope.crt", key: first.key, clientCa: null });
		expect(missing).toThrow(InvalidInputError);
		expect(missing).toThrow(/^ISA_TLS_CERT=\/nope\.crt cannot be read: ENOENT/);
		const mismatched = () =>
			readTlsFiles({ cert: first.cert, key: second.key, clientCa: null });
		expect(mismatched).toThrow(/do not make a TLS certificate: .*key values mismatch/);
		const notPem = path.join(dir, "not.pem");
		fs.writeFileSync(notPem, "hello");
		expect(() => readTlsFiles({ cert: first.cert, key: first.key, clientCa: notPem })).toThrow(
			/ISA_TLS_CLIENT_CA=.*not\.pem holds no PEM certificate/
		);
	});

	it("applies a renewed pair once, keeps the old one through a half-done renewal", () => {
		install(first);
		const applied: SecureContextOptions[] = [];
		const warnings: string[] = [];
		const reloader = new CertificateReloader(live, o => applied.push(o), {
			info: () => undefined,
			warn: (msg: unknown) => warnings.push(String(msg))
		});
		expect(reloader.check()).toBe("unchanged");

		// Only the certificate is new so far: it does not match the key, so nothing changes.
		fs.copyFileSync(second.cert, `${live.cert}.tmp`);
		fs.renameSync(`${live.cert}.tmp`, live.cert);
		expect(reloader.check()).toBe("refused");
		expect(reloader.check()).toBe("unchanged");
		expect(warnings).toHaveLength(1);
		expect(warnings[0]).toMatch(/old certificate stays/);
		expect(applied).toHaveLength(0);

		// Then its key: the pair is taken.
		fs.copyFileSync(second.key, `${live.key}.tmp`);
		fs.renameSync(`${live.key}.tmp`, live.key);
		expect(reloader.check()).toBe("reloaded");
		expect(applied).toHaveLength(1);
		expect(certOf(applied[0])).toBe(fingerprint(second.cert));
		expect(reloader.check()).toBe("unchanged");

		// Back to the first pair, all at once.
		install(first);
		expect(reloader.check()).toBe("reloaded");
		expect(certOf(applied[1])).toBe(fingerprint(first.cert));
	});

	it("keeps the old certificate while a file is missing, and takes it when it is back", () => {
		install(first);
		const applied: SecureContextOptions[] = [];
		const reloader = new CertificateReloader(live, o => applied.push(o));
		fs.rmSync(live.key);
		expect(reloader.check()).toBe("refused");
		install(second);
		expect(reloader.check()).toBe("reloaded");
		expect(certOf(applied[0])).toBe(fingerprint(second.cert));
	});

	it("looks at the files on its timer until stopped", async () => {
		install(first);
		const applied: SecureContextOptions[] = [];
		const reloader = new CertificateReloader(live, o => applied.push(o));
		reloader.start(20);
		install(second);
		for (let i = 0; i < 100 && applied.length === 0; i++)
			await new Promise(r => setTimeout(r, 20));
		reloader.stop();
		expect(applied).toHaveLength(1);
		install(first);
		await new Promise(r => setTimeout(r, 80));
		expect(applied).toHaveLength(1);
	});
});
