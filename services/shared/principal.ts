/**
 * Who makes a request, and what that lets them do. The gateway builds a Principal from a verified
 * token (services/gateway/jwt.ts) and hands it to every action in `ctx.meta.user`; every rule
 * about roles and tenants is decided here, so that no service checks `roles` by hand.
 */
export const ROLES = ["admin", "operator", "viewer"] as const;
export type Role = (typeof ROLES)[number];

/** Who made a request, from the verified token. */
export interface Principal {
	sub: string;
	tenant: string;
	roles: Role[];
	/** Expiry, seconds since the epoch. */
	exp: number;
}

/** What an action needs: read (any role), write (operator or admin), admin. */
export type Access = "read" | "write" | "admin";

const ACCESS_ROLES: Record<Access, Role[]> = {
	read: ["admin", "operator", "viewer"],
	write: ["admin", "operator"],
	admin: ["admin"]
};

/** Whether the principal's roles allow this kind of access. */
export function canAccess(principal: Principal, access: Access): boolean {
	return principal.roles.some(role => ACCESS_ROLES[access].includes(role));
}

/** The roles that grant an access, for the message of a refusal. */
export function rolesFor(access: Access): Role[] {
	return ACCESS_ROLES[access];
}

/** Admins act for every tenant. */
export function isAdmin(principal: Principal): boolean {
	return principal.roles.includes("admin");
}

/**
 * Whether the principal may see what belongs to this tenant: an admin sees every tenant, anyone
 * else only their own. Callers answer 404 when not, so that another tenant's object looks absent.
 */
export function canSeeTenant(principal: Principal, tenant: string): boolean {
	return isAdmin(principal) || principal.tenant === tenant;
}

/**
 * The tenant a list is filtered to: an admin's choice (undefined: every tenant), or the
 * principal's own tenant whatever was asked.
 */
export function tenantFilter(principal: Principal, asked?: string): string | undefined {
	return isAdmin(principal) ? asked : principal.tenant;
}

/**
 * Who owns an object. A tenant's objects (workloads, resources, services, alert rules) are seen
 * and changed only by that tenant's users and by admins; the cluster's (the default alert rules,
 * the platform's shared resources an admin registers) are read by everyone and changed only by
 * admins. Documents stored before owners existed carry neither field and count as the cluster's.
 */
export interface Owned {
	owner?: "tenant" | "cluster";
	/** The owning tenant, when `owner` is "tenant". */
	tenant?: string;
}

/** The owner of what this principal creates: admins create the cluster's, others their tenant's. */
export function ownerFor(principal: Principal): Required<Pick<Owned, "owner">> & Owned {
	return isAdmin(principal)
		? { owner: "cluster" }
		: { owner: "tenant", tenant: principal.tenant };
}

/** Whether the object belongs to the cluster (also when it predates owners). */
export function isClusterOwned(object: Owned): boolean {
	return object.owner !== "tenant";
}

/** Whether the principal may see the object at all; callers answer 404 when not. */
export function canRead(principal: Principal, object: Owned): boolean {
	return isAdmin(principal) || isClusterOwned(object) || object.tenant === principal.tenant;
}

/**
 * What the principal may do to an object it wants to change: "change"; "forbidden" (403: a
 * cluster object, which only admins change, readable so no secret is kept); "hidden" (404:
 * another tenant's object, which must look absent).
 */
export function changeRight(
	principal: Principal,
	object: Owned
): "change" | "forbidden" | "hidden" {
	if (isAdmin(principal)) return "change";
	if (isClusterOwned(object)) return "forbidden";
	return object.tenant === principal.tenant ? "change" : "hidden";
}
