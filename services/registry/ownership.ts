/**
 * How the registry applies the ownership rule of services/shared/principal.ts to names: each
 * owner (a tenant, or the cluster) has its own names, so two tenants may both register "db"
 * and neither learns of the other's. The rule itself (who reads, who changes) is the principal
 * module's; this says under which key a name is stored, which owner a name means to whom, and
 * who owns a discovered Moleculer service. Pure.
 */
import { ConflictError } from "../shared/errors";
import { canRead, isAdmin, type Owned, type Principal } from "../shared/principal";

/** An owner made explicit: documents stored before owners existed are the cluster's. */
export type Owner = { owner: "cluster" } | { owner: "tenant"; tenant: string };

export const CLUSTER: Owner = { owner: "cluster" };

/**
 * Who acts when an action is called without a user: the control plane itself (the ISA_APPLY
 * file at start, the REPL's lists, the health loop). It acts for the cluster, as an admin does.
 */
export const CLUSTER_ACTOR: Principal = { sub: "cluster", tenant: "", roles: ["admin"], exp: 0 };

/** The principal of a call: its user, or the control plane when none (see CLUSTER_ACTOR). */
export function actorOf(user: Principal | undefined): Principal {
	return user ?? CLUSTER_ACTOR;
}

/** The owner of an object, legacy ones (no owner fields) being the cluster's. */
export function ownerOf(object: Owned): Owner {
	return object.owner === "tenant" && object.tenant !== undefined
		? { owner: "tenant", tenant: object.tenant }
		: CLUSTER;
}

/** Whether two objects have the same owner. */
export function sameOwner(a: Owned, b: Owned): boolean {
	const x = ownerOf(a);
	const y = ownerOf(b);
	return x.owner === y.owner && (x.owner === "cluster" || x.tenant === (y as typeof x).tenant);
}

/**
 * The store key of a name within its owner: the bare name for the cluster (so documents written
 * before owners existed keep their keys), `tenant/name` for a tenant's. Registry names never hold
 * a '/' (model.ts nameRule), so a tenant's key can never be taken for a cluster name.
 */
export function scopedKey(owner: Owned, name: string): string {
	const o = ownerOf(owner);
	return o.owner === "tenant" ? `${o.tenant}/${name}` : name;
}

/**
 * The owners a name means, in the order they are tried: a tenant's user finds its own tenant's
 * object, else the cluster's; an admin (or the control plane) the tenant asked for, else the
 * cluster's. `searchTenants` says whether an admin who asked for no tenant may also be given
 * the one tenant object of that name (see pickNamed).
 */
export function nameScopes(
	principal: Principal,
	asked?: string
): { scopes: Owner[]; searchTenants: boolean } {
	if (!isAdmin(principal))
		return {
			scopes: [{ owner: "tenant", tenant: principal.tenant }, CLUSTER],
			searchTenants: false
		};
	if (asked !== undefined)
		return { scopes: [{ owner: "tenant", tenant: asked }], searchTenants: false };
	return { scopes: [CLUSTER], searchTenants: true };
}

/**
 * An admin's lookup of a name that is neither asked for a tenant nor the cluster's: the one
 * tenant object of that name, null when there is none, and 409 naming the tenants when several
 * have one (the admin then picks with `?tenant=`).
 */
export function pickNamed<T extends Owned>(kind: string, name: string, candidates: T[]): T | null {
	const tenants = candidates.filter(c => ownerOf(c).owner === "tenant");
	if (tenants.length <= 1) return tenants[0] ?? null;
	const names = tenants.map(c => c.tenant!).sort();
	throw new ConflictError(
		`Several tenants have a ${kind.toLowerCase()} named '${name}' (${names.join(", ")}); pick one with ?tenant=.`,
		{ kind, name, tenants: names }
	);
}

/** The owner fields a view shows: `owner`, and `tenant` when a tenant's. */
export function ownerFields(object: Owned): Owner {
	return ownerOf(object);
}

/**
 * The owner of a discovered Moleculer service, from the tenants of the workloads that run its
 * instances (discovery.ts): the cluster's when no workload of a tenant runs it, else a tenant's.
 */
export function discoveredOwner(tenants: string[]): Owner {
	return tenants.length === 0 ? CLUSTER : { owner: "tenant", tenant: tenants[0] };
}

/**
 * Whether the principal may see (and call) a discovered Moleculer service: every instance must
 * be readable, since Moleculer may route a call to any of them.
 */
export function canReadDiscovered(principal: Principal, tenants: string[]): boolean {
	return tenants.every(tenant => canRead(principal, { owner: "tenant", tenant }));
}
