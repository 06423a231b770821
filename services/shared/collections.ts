/** Store collections, named once: several services read what one of them writes. */
export const COLLECTIONS = {
	nodes: "nodes",
	workloads: "workloads",
	allocations: "allocations",
	names: "workload-names",
	idempotency: "idempotency",
	usage: "tenant-usage",
	tenants: "tenants"
} as const;
