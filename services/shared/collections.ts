/** Store collections, named once: several services read what one of them writes. */
export const COLLECTIONS = {
	nodes: "nodes",
	/** NODEID → the process that holds it (services/nodes/lease.ts; each node's own). */
	nodeLeases: "node-leases",
	workloads: "workloads",
	allocations: "allocations",
	names: "workload-names",
	/** Moleculer service name → the tenant whose service workloads run it (the scheduler's). */
	serviceClaims: "service-claims",
	idempotency: "idempotency",
	usage: "tenant-usage",
	tenants: "tenants",
	resources: "resources",
	resourceNames: "resource-names",
	services: "services",
	/** Health of each checked target, by target key. */
	health: "health",
	config: "config",
	alertRules: "alert-rules",
	/** The monitor's snapshot (history, alert states) and its once-only default rules marker. */
	monitor: "monitor",
	/** The alerts the monitor announced and its webhook outbox (services/monitor/notices.ts). */
	alertNotices: "alert-notices",
	/** Leases and terms of the services that lead once per cluster (services/shared/leadership.ts). */
	leaders: "leaders",
	/** Write-ahead entries of audited requests still running (the audit service's). */
	auditPending: "audit-pending",
	/** The audit chain's anchor after a trim. */
	auditState: "audit-state"
} as const;

/** Store logs, named once. */
export const LOGS = {
	/** The hash-chained audit records (services/audit/). */
	audit: "audit"
} as const;
