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
