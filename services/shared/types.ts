/** Plain data shapes shared by the agent, the inventory, the gateway and the REPL. */

/** One GPU as the node reports its capacity. Memory in bytes. */
export interface GpuCapacity {
	index: number;
	uuid: string;
	model: string;
	memory: number;
}

/** One GPU's usage right now. Utilization in percent, memory in bytes, temperature in °C. */
export interface GpuUsage {
	index: number;
	utilization: number;
	memoryUsed: number;
	temperature: number | null;
}

/** What a node can give: CPU in cores, memory in bytes. */
export interface Capacity {
	cpu: number;
	memory: number;
	gpus: GpuCapacity[];
}

/** What a node uses now: CPU in cores busy, memory in bytes used. */
export interface Usage {
	cpu: number;
	/** CPU busy in percent of all cores, 0–100. */
	cpuPercent: number;
	memory: number;
	gpus: GpuUsage[];
	/** 1, 5 and 15 minute load averages. */
	loadAvg: number[];
}

/** Static facts of a machine, probed once at start and kept in broker metadata. */
export interface MachineFacts {
	hostname: string;
	os: { platform: string; distro: string; release: string; kernel: string; arch: string };
	cpu: { model: string; cores: number; physicalCores: number; speedGHz: number };
	memory: { total: number };
	disks: { mount: string; fs: string; type: string; size: number; used: number }[];
	network: { iface: string; ip4: string; ip6: string; mac: string; speedMbps: number | null }[];
	gpus: GpuCapacity[];
	/** Set when ISA_NODE_CAPACITY replaced the probed capacity (simulation only). */
	simulated?: boolean;
}

/** The payload of the `node.report` event, sent by each agent every report interval. */
export interface NodeReport {
	nodeID: string;
	hostname: string;
	labels: Record<string, string>;
	capacity: Capacity;
	usage: Usage;
	/** The agent's report interval in ms: the inventory declares the node down after 3 missed. */
	interval: number;
	/** When the agent took the sample (ms since the epoch, agent's clock). */
	sentAt: number;
}

export type NodeStatus = "ready" | "draining" | "down";

/** A node as the inventory knows it and `/api/v1/nodes` shows it. */
export interface NodeInfo {
	id: string;
	hostname: string;
	status: NodeStatus;
	labels: Record<string, string>;
	capacity: Capacity;
	usage: Usage | null;
	allocated: { cpu: number; memory: number; gpus: number };
	/** When the inventory last heard from the node (ms since the epoch, inventory's clock). */
	lastSeen: number;
	/** The agent's report interval in ms. */
	reportInterval: number;
	/** An admin cordoned the node: it stays `draining` while alive. */
	cordoned: boolean;
	facts?: MachineFacts;
}

/** Resources one replica asks for: CPU in cores, memory and GPU memory in bytes. */
export interface ResourceRequest {
	cpu: number;
	memory: number;
	/** Whole GPUs, exclusive to the replica. */
	gpu: number;
	/** GPU memory on one shared GPU (for small models); 0 when `gpu` is used or none needed. */
	gpuMemory: number;
}

export type WorkloadKind = "service" | "process";
export type ReplicaState = "pending" | "starting" | "running" | "failed" | "stopped";

/**
 * The key of a Moleculer service's metadata under which the agent names the tenant whose
 * workload runs it (node-agent/runner/service-runner.ts); the registry's discovery reads it to
 * keep one tenant's services from another (services/registry/ownership.ts).
 */
export const WORKLOAD_TENANT_META = "isaTenant";

/** What an agent is asked to run: one replica of a workload. */
export interface ReplicaSpec {
	workloadId: string;
	tenant: string;
	name: string;
	/** Replica number within the workload, 0…replicas-1. */
	replica: number;
	/** Grows on every placement of this replica: an agent obeys only the newest. */
	fence: number;
	kind: WorkloadKind;
	/** `name`: the Moleculer service name the workload claimed (none: workloads made before claims). */
	service?: { module: string; name?: string };
	process?: { command: string; args: string[]; env: Record<string, string> };
	resources: ResourceRequest;
	/** GPU indexes on the node given to this replica (CUDA_VISIBLE_DEVICES). */
	gpus: number[];
	restart: { policy: "always" | "on-failure" | "never"; maxRestarts: number };
	/**
	 * The workload's `disconnect.stopAfter` (ms): the agent stops the replica after this long
	 * without hearing the control plane. Absent: it runs on, whatever happens.
	 */
	disconnect?: { stopAfterMs: number };
}

/** An agent's word on one replica, sent as `workload.replica.state`. */
export interface ReplicaStatus {
	workloadId: string;
	replica: number;
	fence: number;
	nodeID: string;
	state: ReplicaState;
	/** Why it failed or stopped (exit code, signal, load error), or when it restarts. */
	reason?: string;
	/** The newest failure of this placement, kept while it runs again after a restart. */
	lastError?: string;
	restarts: number;
	pid?: number;
	at: number;
}
