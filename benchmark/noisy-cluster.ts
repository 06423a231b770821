/**
 * The cluster of the noisy-neighbour suite, in a process of its own: a control broker (gateway,
 * inventory, scheduler, tenants, audit, on an embedded store in BENCH_DIR) and three stub agents
 * (test/helpers/stub-agent.ts: they run nothing and say each replica runs) over Moleculer's
 * in-memory transporter. The gateway listens on PORT; the process says "ready" once the three
 * nodes are in the inventory.
 */
import path from "path";
import { ServiceBroker } from "moleculer";
import GatewayService from "../services/gateway.service";
import NodesService from "../services/nodes.service";
import SchedulerService from "../services/scheduler.service";
import TenantsService from "../services/tenants.service";
import { auditService, withSettings } from "../test/helpers/services";
import { stubAgent } from "../test/helpers/stub-agent";

const store = path.join(process.env.BENCH_DIR!, "isa.db");
const broker = (nodeID: string) =>
	new ServiceBroker({ nodeID, namespace: "noisy", transporter: "Fake", logger: false });

async function main(): Promise<void> {
	const control = broker("control");
	control.createService(withSettings(NodesService, { store }));
	control.createService(withSettings(SchedulerService, { store }));
	control.createService(withSettings(TenantsService, { store }));
	control.createService(auditService(store));
	control.createService(
		withSettings(GatewayService, {
			port: Number(process.env.PORT),
			jwtSecret: process.env.ISA_JWT_SECRET,
			store,
			// The suite measures load shedding, as before rate limits: the noisy tenant's flood
			// reaches the gateway's queues instead of stopping at its rate limit.
			rateLimits: {
				enabled: true,
				tenant: { reads: 1_000_000, writes: 1_000_000 },
				subjectShare: 1,
				authFailures: 1_000_000
			}
		})
	);
	const agents = ["n1", "n2", "n3"].map(id => {
		const b = broker(id);
		b.createService(stubAgent({ id, cpu: 100_000, memoryGiB: 100_000, gpus: 0 }));
		return b;
	});
	await control.start();
	await Promise.all(agents.map(b => b.start()));
	for (;;) {
		const { total } = (await control.call("nodes.list", {})) as { total: number };
		if (total === 3) break;
		await new Promise(resolve => setTimeout(resolve, 100));
	}
	process.send?.("ready");
	process.on("SIGTERM", () => {
		void Promise.all([...agents, control].map(b => b.stop())).then(() => process.exit(0));
	});
}

void main();
