/**
 * agent: one per node. Probes the machine once at start (CPU, memory, disks, network, NVIDIA
 * GPUs), puts those static facts in the broker's metadata, and broadcasts a `node.report` with
 * capacity and usage every report interval, so that every `nodes` instance in the cluster sees
 * it. `ISA_NODE_CAPACITY` replaces the probed capacity for simulations.
 */
import type { Service, ServiceSchema } from "moleculer";
import PeriodicMixin, { PeriodicMethods } from "../mixins/periodic.mixin";
import { loadEnv } from "../services/shared/env";
import { EVENTS } from "../services/shared/events";
import type { Capacity, MachineFacts, NodeReport, Usage } from "../services/shared/types";
import { parseCapacityOverride, simulatedUsage } from "./probes/capacity-override";
import { resolve as resolveGpuProbe } from "./probes/gpu";
import { capacityFromFacts, MachineProbe, SystemProbe } from "./probes/machine";

interface AgentSettings {
	/** ms between two reports. */
	reportInterval: number;
	labels: Record<string, string>;
	/** ISA_NODE_CAPACITY: JSON that replaces the probed capacity (simulation only). */
	capacityOverride: string | null;
	/** Name of the registered GPU probe. */
	gpuProbe: string;
}

interface AgentThis extends Service<AgentSettings>, PeriodicMethods {
	probe: MachineProbe;
	facts: MachineFacts;
	capacity: Capacity;
	sendReport(): Promise<void>;
	startReporting(): void;
	currentUsage(): Promise<Usage>;
}

const env = loadEnv();

const AgentService: ServiceSchema<AgentSettings, AgentThis> = {
	name: "agent",
	mixins: [PeriodicMixin()],

	settings: {
		reportInterval: env.reportInterval,
		labels: env.labels,
		capacityOverride: env.capacityOverride,
		gpuProbe: "NvidiaSmi"
	},

	actions: {
		/** The machine's static facts, as probed at start. */
		facts: {
			handler(this: AgentThis): MachineFacts {
				return this.facts;
			}
		}
	},

	events: {
		// Reports start once the whole broker is up, so that the first one is not lost.
		"$broker.started"(this: AgentThis) {
			this.startReporting();
		}
	},

	methods: {
		startReporting(this: AgentThis) {
			this.every("report", this.settings.reportInterval, () => this.sendReport());
			void this.sendReport().catch(err => this.logger.warn("First node report failed:", err));
		},

		async currentUsage(this: AgentThis): Promise<Usage> {
			if (this.facts.simulated) return simulatedUsage(this.capacity);
			return this.probe.usage();
		},

		async sendReport(this: AgentThis) {
			const report: NodeReport = {
				nodeID: this.broker.nodeID,
				hostname: this.facts.hostname,
				labels: this.settings.labels,
				capacity: this.capacity,
				usage: await this.currentUsage(),
				interval: this.settings.reportInterval,
				sentAt: Date.now()
			};
			await this.broker.broadcast(EVENTS.nodeReport, report);
		}
	},

	created(this: AgentThis) {
		// Parse the override before anything starts, so a typo stops the node with the reason.
		const override = this.settings.capacityOverride;
		if (override) this.capacity = parseCapacityOverride(override);
		const GpuProbe = resolveGpuProbe(this.settings.gpuProbe);
		this.probe = new SystemProbe(new GpuProbe(), warning =>
			this.logger.warn(`GPU probe: ${warning}`)
		);
	},

	async started(this: AgentThis) {
		this.facts = await this.probe.facts();
		if (this.capacity) this.facts.simulated = true;
		else this.capacity = capacityFromFacts(this.facts);
		this.broker.metadata.isa = {
			hostname: this.facts.hostname,
			capacity: this.capacity,
			labels: this.settings.labels
		};
		const gpus = this.capacity.gpus.map(g => g.model).join(", ") || "no GPU";
		this.logger.info(
			`Node '${this.broker.nodeID}': ${this.capacity.cpu} cores, ` +
				`${Math.round(this.capacity.memory / 1024 ** 3)} GiB, ${gpus}` +
				(this.facts.simulated ? " (simulated by ISA_NODE_CAPACITY)" : "")
		);
		// Loaded into a broker that already runs (hot reload): no $broker.started will come.
		if (this.broker.started) this.startReporting();
	}
};

export default AgentService;
