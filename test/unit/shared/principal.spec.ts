import {
	canAccess,
	canRead,
	canSeeTenant,
	changeRight,
	isAdmin,
	isClusterOwned,
	ownerFor,
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

describe("ownership", () => {
	const acme = { owner: "tenant" as const, tenant: "acme" };
	const cluster = { owner: "cluster" as const };

	it("gives what an admin creates to the cluster and anyone else's to their tenant", () => {
		expect(ownerFor(who(["admin"], "ops"))).toEqual({ owner: "cluster" });
		expect(ownerFor(who(["operator"], "acme"))).toEqual(acme);
	});

	it("counts a document from before owners as the cluster's", () => {
		expect(isClusterOwned({})).toBe(true);
		expect(isClusterOwned(cluster)).toBe(true);
		expect(isClusterOwned(acme)).toBe(false);
	});

	it("shows a tenant's object to its users and admins, the cluster's to everyone", () => {
		expect(canRead(who(["viewer"], "acme"), acme)).toBe(true);
		expect(canRead(who(["operator"], "beta"), acme)).toBe(false);
		expect(canRead(who(["admin"], "beta"), acme)).toBe(true);
		expect(canRead(who(["viewer"], "beta"), cluster)).toBe(true);
	});

	it("lets only admins change the cluster's objects and hides other tenants' ones", () => {
		expect(changeRight(who(["operator"], "acme"), acme)).toBe("change");
		expect(changeRight(who(["operator"], "beta"), acme)).toBe("hidden");
		expect(changeRight(who(["operator"], "acme"), cluster)).toBe("forbidden");
		expect(changeRight(who(["admin"], "ops"), cluster)).toBe("change");
		expect(changeRight(who(["admin"], "ops"), acme)).toBe("change");
	});
});
