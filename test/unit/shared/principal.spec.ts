import {
	canAccess,
	canSeeTenant,
	isAdmin,
	Principal,
	rolesFor,
	tenantFilter
} from "../../../services/shared/principal";

const who = (roles: string[], tenant = "t") => ({ sub: "a", tenant, roles, exp: 0 }) as Principal;

describe("canAccess", () => {
	it("lets every role read, operators and admins write, admins administer", () => {
		expect(canAccess(who(["viewer"]), "read")).toBe(true);
		expect(canAccess(who(["viewer"]), "write")).toBe(false);
		expect(canAccess(who(["operator"]), "write")).toBe(true);
		expect(canAccess(who(["operator"]), "admin")).toBe(false);
		expect(canAccess(who(["viewer", "admin"]), "admin")).toBe(true);
	});

	it("names the roles that grant an access", () => {
		expect(rolesFor("write")).toEqual(["admin", "operator"]);
	});
});

describe("tenants", () => {
	it("lets an admin see every tenant and anyone else only their own", () => {
		expect(isAdmin(who(["admin"]))).toBe(true);
		expect(isAdmin(who(["operator", "viewer"]))).toBe(false);
		expect(canSeeTenant(who(["admin"], "ops"), "acme")).toBe(true);
		expect(canSeeTenant(who(["operator"], "acme"), "acme")).toBe(true);
		expect(canSeeTenant(who(["operator"], "acme"), "beta")).toBe(false);
	});

	it("filters a list to the principal's tenant unless an admin chooses", () => {
		expect(tenantFilter(who(["admin"]), "acme")).toBe("acme");
		expect(tenantFilter(who(["admin"]))).toBeUndefined();
		expect(tenantFilter(who(["viewer"], "beta"), "acme")).toBe("beta");
	});
});
