/**
 * Tenant quotas: what a tenant may hold (cpu cores, memory bytes, GPUs, workloads) against what
 * it holds now. Charged for every replica a workload asks for, placed or not, so that what a
 * tenant is promised never depends on the cluster's current luck. Pure.
 */
import { QuotaExceededError } from "../shared/errors";
import { formatSize } from "../shared/format";

export interface Quota {
	cpu?: number;
	memory?: number;
	gpu?: number;
	workloads?: number;
}

export interface TenantUsage {
	cpu: number;
	memory: number;
	gpu: number;
	workloads: number;
	replicas: number;
}

export interface Charge {
	cpu: number;
	memory: number;
	gpu: number;
}

export function emptyUsage(): TenantUsage {
	return { cpu: 0, memory: 0, gpu: 0, workloads: 0, replicas: 0 };
}

/** Usage after adding (sign 1) or refunding (sign -1) a charge and `workloads` workloads. */
export function addUsage(u: TenantUsage, c: Charge, sign: 1 | -1, workloads: number): TenantUsage {
	const round = (n: number) => Math.max(0, Math.round(n * 1e6) / 1e6);
	return {
		cpu: round(u.cpu + sign * c.cpu),
		memory: Math.max(0, u.memory + sign * c.memory),
		gpu: Math.max(0, u.gpu + sign * c.gpu),
		workloads: Math.max(0, u.workloads + workloads),
		replicas: u.replicas
	};
}

/** Throws QuotaExceededError naming the quota and the usage when the charge does not fit. */
export function checkQuota(
	tenant: string,
	quota: Quota | undefined,
	usage: TenantUsage,
	charge: Charge,
	workloads: number
): void {
	if (!quota) return;
	const show = (key: keyof Charge, n: number) => (key === "memory" ? formatSize(n) : String(n));
	for (const key of ["cpu", "memory", "gpu"] as const) {
		const limit = quota[key];
		if (limit != null && usage[key] + charge[key] > limit + 1e-9)
			throw new QuotaExceededError(
				`Tenant '${tenant}' would exceed its ${key} quota: it uses ${show(key, usage[key])} of ` +
					`${show(key, limit)} and this asks for ${show(key, charge[key])} more.`,
				{ tenant, resource: key, quota: limit, usage: usage[key], requested: charge[key] }
			);
	}
	if (quota.workloads != null && usage.workloads + workloads > quota.workloads)
		throw new QuotaExceededError(
			`Tenant '${tenant}' would exceed its workloads quota: it has ${usage.workloads} of ${quota.workloads}.`,
			{
				tenant,
				resource: "workloads",
				quota: quota.workloads,
				usage: usage.workloads,
				requested: workloads
			}
		);
}
