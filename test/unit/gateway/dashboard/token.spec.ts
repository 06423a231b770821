import {
	cleanToken,
	decodeClaims,
	isAdmin,
	isExpired
} from "../../../../services/gateway/dashboard/token";

/** An unsigned JWT with these claims (the page never checks signatures). */
function jwt(claims: object): string {
	const part = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");
	return `${part({ alg: "HS256" })}.${part(claims)}.sig`;
}

describe("dashboard token", () => {
	it("takes a token out of what people paste, and refuses what is no JWT", () => {
		expect(cleanToken("  a.b.c\n")).toBe("a.b.c");
		expect(cleanToken("Bearer a.b.c")).toBe("a.b.c");
		expect(cleanToken("export TOKEN=a.b.c")).toBe("a.b.c");
		expect(cleanToken("a.b")).toBeNull();
		expect(cleanToken("")).toBeNull();
	});

	it("reads the claims (base64url, unpadded), or null", () => {
		const claims = { sub: "ann~?", tenant: "acme", roles: ["admin"], exp: 2_000_000_000 };
		expect(decodeClaims(jwt(claims))).toEqual(claims);
		expect(decodeClaims("a.b.c")).toBeNull();
		expect(decodeClaims(`x.${Buffer.from("42").toString("base64url")}.y`)).toBeNull();
	});

	it("says whether the claims have expired and whether they name an admin", () => {
		expect(isExpired({ exp: 10 }, 10_001)).toBe(true);
		expect(isExpired({ exp: 10 }, 9_999)).toBe(false);
		expect(isExpired({}, Date.now())).toBe(false);
		expect(isExpired(null, Date.now())).toBe(false);
		expect(isAdmin({ roles: ["viewer", "admin"] })).toBe(true);
		expect(isAdmin({ roles: ["operator"] })).toBe(false);
		expect(isAdmin(null)).toBe(false);
	});
});
