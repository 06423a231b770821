import fs from "fs";
import os from "os";
import path from "path";
import { exportJWK, generateKeyPair, exportSPKI, SignJWT, UnsecuredJWT } from "jose";
import {
	ERR_INVALID_TOKEN,
	ERR_NO_TOKEN,
	ERR_TOKEN_EXPIRED,
	mintToken,
	principalFromClaims,
	secretKid,
	TokenVerifier
} from "../../../services/gateway/jwt";

const SECRET = "unit-test-secret-0123456789abcdef";
const now = () => Math.floor(Date.now() / 1000);

async function hs256(claims: Record<string, unknown>, secret = SECRET): Promise<string> {
	return new SignJWT(claims)
		.setProtectedHeader({ alg: "HS256" })
		.sign(new TextEncoder().encode(secret));
}

async function rejection(promise: Promise<unknown>) {
	try {
		await promise;
	} catch (err) {
		return err as { code: number; type: string; name: string; data: { reason: string } };
	}
	throw new Error("expected a rejection");
}

describe("TokenVerifier", () => {
	const verifier = new TokenVerifier({ secret: SECRET });

	it("accepts a minted token and returns its principal", async () => {
		const token = await mintToken({
			secret: SECRET,
			sub: "ann",
			tenant: "t1",
			roles: ["viewer"],
			ttl: 60
		});
		const p = await verifier.verifyHeader(`Bearer ${token}`);
		expect(p).toMatchObject({ sub: "ann", tenant: "t1", roles: ["viewer"] });
		expect(p.exp).toBeGreaterThan(now());
		// Cached: the same answer again.
		expect(await verifier.verify(token)).toBe(p);
	});

	it("refuses a missing header and a header that is not Bearer", async () => {
		expect(await rejection(verifier.verifyHeader(undefined))).toMatchObject({
			code: 401,
			type: ERR_NO_TOKEN
		});
		expect(await rejection(verifier.verifyHeader("Basic abc"))).toMatchObject({
			code: 401,
			type: ERR_NO_TOKEN
		});
	});

	it("refuses garbage, a bad signature and a token without exp", async () => {
		expect(await rejection(verifier.verify("not-a-jwt"))).toMatchObject({
			code: 401,
			type: ERR_INVALID_TOKEN
		});
		const other = await hs256(
			{ sub: "a", tenant: "t", roles: ["admin"], exp: now() + 60 },
			"other-secret"
		);
		expect(await rejection(verifier.verify(other))).toMatchObject({
			code: 401,
			type: ERR_INVALID_TOKEN
		});
		const noExp = await hs256({ sub: "a", tenant: "t", roles: ["admin"] });
		expect(await rejection(verifier.verify(noExp))).toMatchObject({
			code: 401,
			type: ERR_INVALID_TOKEN
		});
	});

	it("refuses an expired token, also once it was cached", async () => {
		// Past the default clock tolerance of 30 s.
		const expired = await hs256({ sub: "a", tenant: "t", roles: ["admin"], exp: now() - 60 });
		expect(await rejection(verifier.verify(expired))).toMatchObject({
			code: 401,
			type: ERR_TOKEN_EXPIRED
		});

		let clock = Date.now();
		const v = new TokenVerifier({ secret: SECRET, now: () => clock });
		const token = await hs256({ sub: "a", tenant: "t", roles: ["admin"], exp: now() + 5 });
		await v.verify(token);
		clock += 40_000;
		expect(await rejection(v.verify(token))).toMatchObject({
			code: 401,
			type: ERR_TOKEN_EXPIRED
		});
	});

	it("accepts times off by less than the clock tolerance, also from the cache", async () => {
		const late = await hs256({ sub: "a", tenant: "t", roles: ["admin"], exp: now() - 5 });
		await expect(verifier.verify(late)).resolves.toMatchObject({ sub: "a" });
		await expect(verifier.verify(late)).resolves.toMatchObject({ sub: "a" });
		const strict = new TokenVerifier({ secret: SECRET, clockTolerance: 0 });
		expect(await rejection(strict.verify(late))).toMatchObject({ type: ERR_TOKEN_EXPIRED });
		const soon = { sub: "a", tenant: "t", roles: ["admin"], exp: now() + 600 };
		await expect(
			verifier.verify(await hs256({ ...soon, iat: now() + 10 }))
		).resolves.toBeTruthy();
		await expect(
			verifier.verify(await hs256({ ...soon, nbf: now() + 10 }))
		).resolves.toBeTruthy();
	});

	it("refuses a token issued or valid only beyond the tolerance in the future", async () => {
		const claims = { sub: "a", tenant: "t", roles: ["admin"], exp: now() + 600 };
		const future = await rejection(
			verifier.verify(await hs256({ ...claims, iat: now() + 60 }))
		);
		expect(future).toMatchObject({ code: 401, type: ERR_INVALID_TOKEN });
		expect(future.data.reason).toMatch(/'iat'.*future/);
		const notYet = await rejection(
			verifier.verify(await hs256({ ...claims, nbf: now() + 60 }))
		);
		expect(notYet).toMatchObject({ code: 401, type: ERR_INVALID_TOKEN });
	});

	it("checks iss and aud when configured, and mints tokens that pass", async () => {
		const v = new TokenVerifier({ secret: SECRET, issuer: "isa", audience: "isa-api" });
		const claims = { sub: "a", tenant: "t", roles: ["admin"], exp: now() + 60 };
		for (const extra of [{}, { iss: "other", aud: "isa-api" }, { iss: "isa", aud: "other" }])
			expect(await rejection(v.verify(await hs256({ ...claims, ...extra })))).toMatchObject({
				code: 401,
				type: ERR_INVALID_TOKEN
			});
		await expect(
			v.verify(await hs256({ ...claims, iss: "isa", aud: ["x", "isa-api"] }))
		).resolves.toMatchObject({ sub: "a" });
		const minted = await mintToken({
			secret: SECRET,
			sub: "ann",
			tenant: "acme",
			roles: ["viewer"],
			ttl: 60,
			issuer: "isa",
			audience: "isa-api"
		});
		await expect(v.verify(minted)).resolves.toMatchObject({ sub: "ann", tenant: "acme" });
	});

	it("refuses alg none", async () => {
		const token = new UnsecuredJWT({ sub: "a", tenant: "t", roles: ["admin"] })
			.setExpirationTime("1h")
			.encode();
		expect(await rejection(verifier.verify(token))).toMatchObject({
			code: 401,
			type: ERR_INVALID_TOKEN
		});
	});

	it("refuses RS256 without a public key, and accepts it with one", async () => {
		const { publicKey, privateKey } = await generateKeyPair("RS256");
		const token = await new SignJWT({ sub: "svc", tenant: "t", roles: ["operator"] })
			.setProtectedHeader({ alg: "RS256" })
			.setExpirationTime("1h")
			.sign(privateKey);
		expect(await rejection(verifier.verify(token))).toMatchObject({
			code: 401,
			type: ERR_INVALID_TOKEN
		});

		const rs = new TokenVerifier({ publicKeyPem: await exportSPKI(publicKey) });
		expect(await rs.verify(token)).toMatchObject({ sub: "svc", roles: ["operator"] });
		// An HS256 token is refused where only a public key is configured.
		const hs = await hs256({ sub: "a", tenant: "t", roles: ["admin"], exp: now() + 60 });
		expect(await rejection(rs.verify(hs))).toMatchObject({
			code: 401,
			type: ERR_INVALID_TOKEN
		});
	});

	it("keeps at most cacheSize tokens", async () => {
		const v = new TokenVerifier({ secret: SECRET, cacheSize: 2 });
		for (const sub of ["a", "b", "c"])
			await v.verify(
				await mintToken({ secret: SECRET, sub, tenant: "t", roles: ["viewer"], ttl: 60 })
			);
		expect((v as unknown as { cache: Map<string, unknown> }).cache.size).toBe(2);
	});
});

describe("key rotation", () => {
	const claims = () => ({ sub: "ann", tenant: "t", roles: ["viewer"], exp: now() + 60 });
	const mint = (secret: string) =>
		mintToken({ secret, sub: "ann", tenant: "t", roles: ["viewer"], ttl: 60 });

	it("accepts the previous HS256 secrets during the grace, and only those", async () => {
		const v = new TokenVerifier({ secret: "new-secret", previousSecrets: ["old-secret"] });
		await expect(v.verify(await mint("new-secret"))).resolves.toMatchObject({ sub: "ann" });
		await expect(v.verify(await mint("old-secret"))).resolves.toMatchObject({ sub: "ann" });
		// Without a kid each secret is tried in turn.
		await expect(v.verify(await hs256(claims(), "old-secret"))).resolves.toMatchObject({
			sub: "ann"
		});
		expect(await rejection(v.verify(await mint("retired-secret")))).toMatchObject({
			code: 401,
			type: ERR_INVALID_TOKEN,
			data: { reason: expect.stringContaining("not one of this gateway's secrets") }
		});
		expect(await rejection(v.verify(await hs256(claims(), "retired-secret")))).toMatchObject({
			code: 401,
			type: ERR_INVALID_TOKEN
		});
	});

	it("names the signing secret by a kid that does not show it", async () => {
		const token = await mint("new-secret");
		const header = JSON.parse(Buffer.from(token.split(".")[0], "base64url").toString());
		expect(header.kid).toBe(secretKid("new-secret"));
		expect(header.kid).not.toContain("new-secret");
	});

	describe("JWKS", () => {
		let dir: string;
		let file: string;
		beforeEach(() => {
			dir = fs.mkdtempSync(path.join(os.tmpdir(), "isa-jwks-"));
			file = path.join(dir, "jwks.json");
		});
		afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

		async function keyPair(alg: "RS256" | "ES256", kid: string) {
			const { privateKey, publicKey } = await generateKeyPair(alg);
			return { kid, alg, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg } };
		}
		const sign = (key: Awaited<ReturnType<typeof keyPair>>, kid = key.kid) =>
			new SignJWT(claims()).setProtectedHeader({ alg: key.alg, kid }).sign(key.privateKey);
		const writeJwks = (...keys: { jwk: object }[]) =>
			fs.writeFileSync(file, JSON.stringify({ keys: keys.map(k => k.jwk) }));

		it("accepts RS256 and ES256 tokens by kid, and refuses an unknown kid", async () => {
			const rsa = await keyPair("RS256", "rsa-2026");
			const ec = await keyPair("ES256", "ec-2026");
			writeJwks(rsa, ec);
			const v = new TokenVerifier({ jwksFile: file });
			await expect(v.verify(await sign(rsa))).resolves.toMatchObject({ sub: "ann" });
			await expect(v.verify(await sign(ec))).resolves.toMatchObject({ sub: "ann" });
			expect(await rejection(v.verify(await sign(rsa, "gone")))).toMatchObject({
				code: 401,
				type: ERR_INVALID_TOKEN,
				data: { reason: expect.stringContaining("No key of the JWKS matches") }
			});
			// A key of the set signing under another key's kid is a forgery.
			expect(await rejection(v.verify(await sign(ec, "rsa-2026")))).toMatchObject({
				code: 401
			});
		});

		it("reads the file again when it changes: a new key works, a removed one stops", async () => {
			const first = await keyPair("ES256", "k1");
			const second = await keyPair("ES256", "k2");
			writeJwks(first);
			const v = new TokenVerifier({ jwksFile: file });
			await expect(v.verify(await sign(first))).resolves.toMatchObject({ sub: "ann" });
			writeJwks(first, second);
			fs.utimesSync(file, new Date(), new Date(Date.now() + 5000));
			await expect(v.verify(await sign(second))).resolves.toMatchObject({ sub: "ann" });
			writeJwks(second);
			fs.utimesSync(file, new Date(), new Date(Date.now() + 10000));
			expect(await rejection(v.verify(await sign(first, "k1")))).toMatchObject({
				code: 401
			});
		});

		it("refuses a file that is not a JWKS at start", () => {
			fs.writeFileSync(file, JSON.stringify({ key: [] }));
			expect(() => new TokenVerifier({ jwksFile: file })).toThrow(/no "keys" list/);
		});
	});
});

describe("principalFromClaims", () => {
	const base = { sub: "a", tenant: "t", roles: ["viewer"], exp: 1 };
	it.each([
		["no sub", { ...base, sub: "" }],
		["no tenant", { ...base, tenant: undefined }],
		["unknown role", { ...base, roles: ["root"] }],
		["empty roles", { ...base, roles: [] }],
		["roles not a list", { ...base, roles: "admin" }]
	])("refuses %s", (_name, claims) => {
		expect(() => principalFromClaims(claims)).toThrow(expect.objectContaining({ code: 401 }));
	});
});
