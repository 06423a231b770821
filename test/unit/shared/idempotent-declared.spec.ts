/**
 * Every action of every service says whether a failed call may be repeated
 * (services/shared/retry.ts): one without the declaration is never retried, which a new action
 * should choose, not inherit.
 */
import type { ServiceSchema } from "moleculer";
import AgentService from "../../../node-agent/agent.service";
import AuditService from "../../../services/audit.service";
import ConfigService from "../../../services/config.service";
import GatewayService from "../../../services/gateway.service";
import MonitorService from "../../../services/monitor.service";
import NodesService from "../../../services/nodes.service";
import RegistryService from "../../../services/registry.service";
import SchedulerService from "../../../services/scheduler.service";
import TenantsService from "../../../services/tenants.service";

const SERVICES: ServiceSchema<any, any>[] = [
	AgentService,
	AuditService,
	ConfigService,
	GatewayService,
	MonitorService,
	NodesService,
	RegistryService,
	SchedulerService,
	TenantsService
];

describe("every action declares its idempotency", () => {
	const rows = SERVICES.flatMap(s =>
		Object.entries(s.actions ?? {}).map(([name, action]) => ({
			action: `${s.name}.${name}`,
			idempotent: (action as { idempotent?: unknown }).idempotent
		}))
	);

	it.each(rows)("$action", ({ idempotent }) => {
		expect([true, false, "with-key"]).toContain(idempotent);
	});

	it("lets a create be repeated only with its key", () => {
		const keyed = rows.filter(r => r.idempotent === "with-key").map(r => r.action);
		expect(keyed.sort()).toEqual(["monitor.createRule", "scheduler.create"]);
	});
});
