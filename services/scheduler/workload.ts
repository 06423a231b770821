/**
 * Workloads as plain data: the normalized spec from an API request, the per-replica records
 * the scheduler keeps, the status derived from them, and the bounded event history. Pure.
 */
import { parseDuration } from "../shared/duration";
import { InvalidInputError } from "../shared/errors";
import type { ReplicaSpec, ReplicaState, ResourceRequest, WorkloadKind } from "../shared/types";
import { parseCpu, parseSize } from "../shared/units";
import { RESOURCE_LIMITS } from "../shared/limits";
import type { Strategy } from "./placement";

export type WorkloadStatus = "pending" | "running" | "degraded" | "failed" | "stopped";
export type RestartPolicy = "always" | "on-failure" | "never";

export interface Replica {
	index: number;
	node: string | null;
	gpus: number[];
	/** Grows on every placement: agents and the scheduler ignore news about older ones. */
	fence: number;
	state: ReplicaState;
	/** Why it is pending or failed, or when it restarts. */
	reason?: string;
	/** Its newest failure in this placement, kept while it runs again after a restart. */
	lastError?: string;
	restarts: number;
	since: number;
}

export interface WorkloadEvent {
	at: number;
	type:
		| "created"
		| "placed"
		| "pending"
		| "started"
		| "failed"
		| "stopped"
		| "rescheduled"
		| "scaled";
	message: string;
	replica?: number;
	node?: string;
}

export interface Workload {
	id: string;
	tenant: string;
	name: string;
	kind: WorkloadKind;
	/** `name`: the Moleculer service name claimed for its tenant (absent on older workloads). */
	service?: { module: string; name?: string };
	process?: { command: string; args: string[]; env: Record<string, string> };
	resources: ResourceRequest;
	placement: { strategy: Strategy; nodeSelector: Record<string, string>; antiAffinity: boolean };
	restart: { policy: RestartPolicy; maxRestarts: number };
	/** What happens when its node loses the control plane (absent: today's behaviour). */
	disconnect?: Disconnect;
	/** Higher goes first; FIFO (by seq) within one priority. */
	priority: number;
	seq: number;
	createdAt: number;
	createdBy: string;
	replicas: Replica[];
	/** The highest fence handed out, kept when replicas are scaled away (see lastFence). */
	fence?: number;
	events: WorkloadEvent[];
}

/** The body of POST /api/v1/workloads after the schema check. */
export interface WorkloadInput {
	name: string;
	kind: WorkloadKind;
	service?: { module: string; name?: string };
	process?: { command: string; args?: string[]; env?: Record<string, string> };
	resources: {
		cpu: number | string;
		memory: number | string;
		gpu?: number;
		gpuMemory?: number | string;
	};
	replicas?: number;
	priority?: number;
	placement?: {
		strategy?: Strategy;
		nodeSelector?: Record<string, string>;
		antiAffinity?: boolean;
	};
	restart?: { policy?: RestartPolicy; maxRestarts?: number };
	disconnect?: { stopAfter?: number | string; replaceAfter?: number | string };
}

/**
 * Nomad's `disconnect` block, in ms. `stopAfterMs`: the agent stops the replicas by itself
 * after that long without hearing the control plane (below the down window, a partitioned copy
 * is gone before its replacement starts). `replaceAfterMs`: after the node is down, the
 * scheduler waits that long before placing replacements (a blip does not restart them).
 */
export interface Disconnect {
	stopAfterMs?: number;
	replaceAfterMs?: number;
}

/** The longest stopAfter or replaceAfter accepted. */
export const MAX_DISCONNECT_MS = 7 * 86_400_000;

/** The `disconnect` block in ms; undefined when it sets nothing. 422 for a bad duration. */
export function normalizeDisconnect(input: WorkloadInput["disconnect"]): Disconnect | undefined {
	if (!input) return undefined;
	const out: Disconnect = {};
	if (input.stopAfter !== undefined)
		out.stopAfterMs = parseDuration(input.stopAfter, {
			field: "disconnect.stopAfter",
			min: 500,
			max: MAX_DISCONNECT_MS
		});
	if (input.replaceAfter !== undefined)
		out.replaceAfterMs = parseDuration(input.replaceAfter, {
			field: "disconnect.replaceAfter",
			max: MAX_DISCONNECT_MS
		});
	return Object.keys(out).length ? out : undefined;
}

export const MAX_EVENTS = 100;

export function normalizeResources(r: WorkloadInput["resources"]): ResourceRequest {
	const resources: ResourceRequest = {
		cpu: parseCpu(r.cpu, "resources.cpu", RESOURCE_LIMITS.cpu),
		memory: parseSize(r.memory, "resources.memory", RESOURCE_LIMITS.memory),
		gpu: r.gpu ?? 0,
		gpuMemory:
			r.gpuMemory != null
				? parseSize(r.gpuMemory, "resources.gpuMemory", RESOURCE_LIMITS.gpuMemory)
				: 0
	};
	if (resources.gpu > 0 && resources.gpuMemory > 0)
		throw new InvalidInputError(
			"Ask for whole GPUs (gpu) or for memory on a shared GPU (gpuMemory), not both.",
			{ field: "resources" }
		);
	return resources;
}

/**
 * The Moleculer service name a service module is taken to declare when the workload names none:
 * the module's last path segment without a `.service` suffix ("llm/chat.service" → "chat").
 */
export function serviceName(module: string): string {
	return module
		.split(/[/\\]/)
		.pop()!
		.replace(/\.service$/, "");
}

/** A new workload from a checked request; every replica pending. */
export function newWorkload(
	input: WorkloadInput,
	ids: { id: string; tenant: string; createdBy: string; seq: number; now: number }
): Workload {
	if (input.kind === "service" && !input.service)
		throw new InvalidInputError("A workload of kind 'service' needs service.module.", {
			field: "service"
		});
	if (input.kind === "process" && !input.process)
		throw new InvalidInputError("A workload of kind 'process' needs process.command.", {
			field: "process"
		});
	const replicas = input.replicas ?? 1;
	const disconnect = normalizeDisconnect(input.disconnect);
	return {
		id: ids.id,
		tenant: ids.tenant,
		name: input.name,
		kind: input.kind,
		...(input.kind === "service"
			? {
					service: {
						module: input.service!.module,
						name: input.service!.name ?? serviceName(input.service!.module)
					}
				}
			: {
					process: {
						command: input.process!.command,
						args: input.process!.args ?? [],
						env: input.process!.env ?? {}
					}
				}),
		resources: normalizeResources(input.resources),
		placement: {
			strategy: input.placement?.strategy ?? "binpack",
			nodeSelector: input.placement?.nodeSelector ?? {},
			antiAffinity: input.placement?.antiAffinity ?? false
		},
		restart: {
			policy: input.restart?.policy ?? "on-failure",
			maxRestarts: input.restart?.maxRestarts ?? 5
		},
		...(disconnect ? { disconnect } : {}),
		priority: input.priority ?? 0,
		seq: ids.seq,
		createdAt: ids.now,
		createdBy: ids.createdBy,
		replicas: Array.from({ length: replicas }, (_, index) => pendingReplica(index, 0, ids.now)),
		events: [{ at: ids.now, type: "created", message: `Created with ${replicas} replica(s).` }]
	};
}

export function pendingReplica(
	index: number,
	fence: number,
	now: number,
	reason?: string
): Replica {
	return {
		index,
		node: null,
		gpus: [],
		fence,
		state: "pending",
		restarts: 0,
		since: now,
		...(reason ? { reason } : {})
	};
}

/**
 * running when every replica runs; failed when all failed; degraded when some failed and the
 * others run, wait or start (a retry starts the failed ones again); else pending while any
 * waits or starts.
 */
export function workloadStatus(w: Workload): WorkloadStatus {
	const states = w.replicas.map(r => r.state);
	if (states.length === 0) return "stopped";
	if (states.every(s => s === "running")) return "running";
	if (states.every(s => s === "failed")) return "failed";
	if (states.every(s => s === "stopped")) return "stopped";
	if (states.some(s => s === "failed")) return "degraded";
	if (states.some(s => s === "pending")) return "pending";
	return states.some(s => s === "starting") ? "pending" : "running";
}

/** The replicas a retry starts again: the failed ones. */
export function failedReplicas(w: Workload): number[] {
	return w.replicas.filter(r => r.state === "failed").map(r => r.index);
}

export function addEvent(w: Workload, event: WorkloadEvent): void {
	w.events.push(event);
	if (w.events.length > MAX_EVENTS) w.events.splice(0, w.events.length - MAX_EVENTS);
}

/** Total resources of all replicas: what a tenant's quota is charged. */
export function totalRequest(resources: ResourceRequest, replicas: number) {
	return {
		cpu: resources.cpu * replicas,
		memory: resources.memory * replicas,
		gpu: (resources.gpu + (resources.gpuMemory > 0 ? 1 : 0)) * replicas
	};
}

/**
 * The key of one placement of a replica: its reservation in the store and the holder of its
 * whole GPUs. The fence is in it, so a key is never placed twice (see reservations.ts).
 */
export function replicaKey(workloadId: string, index: number, fence: number): string {
	return `${workloadId}/${index}@${fence}`;
}

export function parseReplicaKey(
	key: string
): { workloadId: string; index: number; fence: number } | null {
	const m = /^(.+)\/(\d+)@(\d+)$/.exec(key);
	return m ? { workloadId: m[1], index: Number(m[2]), fence: Number(m[3]) } : null;
}

/** The workload a placement key belongs to (the key itself when it is not a replica key). */
export function workloadOf(key: string): string {
	// On every reservation and release: no regular expression.
	const slash = key.lastIndexOf("/");
	return slash > 0 && key.indexOf("@", slash) > slash + 1 ? key.slice(0, slash) : key;
}

/** The highest fence the workload has handed out: the next placement takes one more. */
export function lastFence(w: Workload): number {
	return w.replicas.reduce((max, r) => Math.max(max, r.fence), w.fence ?? 0);
}

/** What the agent of `replica.node` is told to run. */
export function replicaSpec(w: Workload, r: Replica): ReplicaSpec {
	return {
		workloadId: w.id,
		tenant: w.tenant,
		name: w.name,
		replica: r.index,
		fence: r.fence,
		kind: w.kind,
		...(w.service ? { service: w.service } : {}),
		...(w.process ? { process: w.process } : {}),
		resources: w.resources,
		gpus: r.gpus,
		restart: w.restart,
		...(w.disconnect?.stopAfterMs
			? { disconnect: { stopAfterMs: w.disconnect.stopAfterMs } }
			: {})
	};
}

/** A workload's replicas on one node, as the inventory shows them with the node. */
export function replicasOn(w: Workload, node: string) {
	return w.replicas
		.filter(r => r.node === node)
		.map(r => ({
			id: w.id,
			name: w.name,
			tenant: w.tenant,
			replica: r.index,
			state: r.state,
			gpus: r.gpus,
			resources: w.resources
		}));
}

/** The API's view: the stored record plus its derived status. */
export function workloadView(w: Workload, withEvents = false) {
	const { events, ...rest } = w;
	return { ...rest, status: workloadStatus(w), ...(withEvents ? { events } : {}) };
}
