import fs from "fs";
import os from "os";
import path from "path";
import { loadEnv } from "../../../services/shared/env";
import { natsTransporter, redisConnection } from "../../../services/shared/connections";

describe("natsTransporter", () => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), "isa-conn-"));
	const file = (name: string, text: string) => {
		fs.writeFileSync(path.join(dir, name), text);
		return path.join(dir, name);
	};
	const ca = file("ca.pem", "CA PEM");
	const cert = file("client.pem", "CERT PEM");
	const key = file("client.key", "KEY PEM");
	afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

	it("keeps a plain URL as it is, and none when there is no transporter", () => {
		expect(natsTransporter(loadEnv({}))).toBeNull();
		expect(natsTransporter(loadEnv({ TRANSPORTER: "nats://n:4222" }))).toBe("nats://n:4222");
		expect(natsTransporter(loadEnv({ TRANSPORTER: "TCP" }))).toBe("TCP");
	});

	it("turns tls:// into NATS with TLS required, the CA and the client pair", () => {
		const t = natsTransporter(
			loadEnv({
				TRANSPORTER: "tls://a:4222,tls://b:4223",
				ISA_NATS_CA: ca,
				ISA_NATS_CERT: cert,
				ISA_NATS_KEY: key
			})
		);
		expect(t).toEqual({
			type: "NATS",
			options: {
				servers: ["a:4222", "b:4223"],
				tls: { ca: "CA PEM", cert: "CERT PEM", key: "KEY PEM" }
			}
		});
		expect(natsTransporter(loadEnv({ TRANSPORTER: "tls://a:4222" }))).toEqual({
			type: "NATS",
			options: { servers: ["a:4222"], tls: {} }
		});
	});

	it("passes a user and password, a token, or keeps the URL's user", () => {
		expect(
			natsTransporter(
				loadEnv({
					TRANSPORTER: "nats://a:4222",
					ISA_NATS_USER: "isa",
					ISA_NATS_PASSWORD: "pw"
				})
			)
		).toEqual({ type: "NATS", options: { servers: ["a:4222"], user: "isa", pass: "pw" } });
		expect(
			natsTransporter(loadEnv({ TRANSPORTER: "tls://u:p%40ss@a:4222", ISA_NATS_TOKEN: "t" }))
		).toEqual({
			type: "NATS",
			options: { servers: ["a:4222"], tls: {}, user: "u", pass: "p@ss", token: "t" }
		});
	});

	it("signs in with an NKey seed file through an authenticator", () => {
		const seed = file(
			"user.nk",
			"SUAMLK2ZNL35WSMW37E7UD4VZ7ELPKW7DHC3BWBSD2GCZ7IUQQXZIORRBU\n"
		);
		const t = natsTransporter(loadEnv({ TRANSPORTER: "nats://a:4222", ISA_NATS_NKEY: seed }));
		expect(
			typeof (t as unknown as { options: { authenticator: unknown } }).options.authenticator
		).toBe("function");
	});

	it("names the setting whose file cannot be read", () => {
		expect(() =>
			natsTransporter(loadEnv({ TRANSPORTER: "tls://a:4222", ISA_NATS_CA: "/nope/ca.pem" }))
		).toThrow(/ISA_NATS_CA: cannot read \/nope\/ca.pem \(ENOENT\)/);
	});
});

describe("redisConnection", () => {
	it("adds credentials and TLS files to a rediss:// store", () => {
		const dir = fs.mkdtempSync(path.join(os.tmpdir(), "isa-conn-"));
		const ca = path.join(dir, "ca.pem");
		fs.writeFileSync(ca, "CA");
		try {
			expect(
				redisConnection(
					loadEnv({
						STORE: "rediss://r:6380",
						ISA_REDIS_CA: ca,
						ISA_REDIS_USERNAME: "isa",
						ISA_REDIS_PASSWORD: "pw"
					}).redis
				)
			).toEqual({ username: "isa", password: "pw", tls: { ca: Buffer.from("CA") } });
			expect(redisConnection(loadEnv({ STORE: "redis://r:6379" }).redis)).toEqual({});
		} finally {
			fs.rmSync(dir, { recursive: true, force: true });
		}
	});
});
