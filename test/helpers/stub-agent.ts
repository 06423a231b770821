/**
 * A stand-in node agent for tests in one process: it runs nothing, reports usage that moves like
 * a real machine's (its GPUs given to replicas busy, the others idle) every `interval` ms, and
 * says each replica it is given is running (once, as a real agent reports a change).
 */
import type { ServiceSchema } from "moleculer";
import { replicaDigest } from "../../services/shared/replica-digest";
import type { NodeReport, ReplicaSpec, ReplicaStatus } from "../../services/shared/types";

const GiB = 1024 ** 3;

export interface AgentSpec {
	id: string;
	cpu: number;
	memoryGiB: number;
	gpus: number;
	model?: string;
	gpuMemoryGiB?: number;
	labels?: Record<string, string>;
	/** Base load, 0–1: how busy the node looks. Default 0.2. */
	load?: number;
	/** ms between two reports. Default 500. */
	interval?: number;
}

/** A stable number in [0, 1) from a string: each node gets its own wave. */
export function phaseOf(id: string): number {
	let h = 2166136261;
	for (const c of id) h = Math.imul(h ^ c.charCodeAt(0), 16777619);
	return ((h >>> 0) % 1000) / 1000;
}

export const clamp = (v: number, lo: number, hi: number) => Math.max(lo, Math.min(hi, v));

/**
 * An agent that runs nothing: it reports usage that moves like a real machine's (its GPUs
 * given to replicas busy, the others idle) and says each replica it is given is running.
 */
export function stubAgent(spec: AgentSpec): ServiceSchema {
	const load = spec.load ?? 0.2;
	const interval = spec.interval ?? 500;
	const capacity = {
		cpu: spec.cpu,
		memory: spec.memoryGiB * GiB,
		gpus: Array.from({ length: spec.gpus }, (_, index) => ({
			index,
			uuid: `GPU-${spec.id}-${index}`,
			model: spec.model ?? "NVIDIA A100-SXM4-80GB",
			memory: (spec.gpuMemoryGiB ?? 80) * GiB
		}))
	};
	const phase = phaseOf(spec.id) * 2 * Math.PI;
	return {
		name: "agent",
		actions: {
			facts: () => ({ hostname: spec.id }),
			sync: {
				handler(this: any, ctx: any) {
					const before = this.running;
					this.running = [];
					return this.take(ctx.params.replicas, ctx, before);
				}
			},
			/** The reconcile's digest check (node-agent/sync-order.ts), on what it was told. */
			check: {
				handler(this: any, ctx: any) {
					const skip = new Set<string>(ctx.params.skip);
					return { match: replicaDigest(this.running, skip) === ctx.params.digest };
				}
			},
			syncWorkloads: {
				handler(this: any, ctx: any) {
					const lists: Array<{ workloadId: string; replicas: ReplicaSpec[] }> =
						ctx.params.workloads;
					const ids = new Set(lists.map(l => l.workloadId));
					// What ran of these workloads: a busy node runs thousands of others.
					const before: ReplicaSpec[] = [];
					this.running = this.running.filter((r: ReplicaSpec) => {
						if (!ids.has(r.workloadId)) return true;
						before.push(r);
						return false;
					});
					return this.take(
						lists.flatMap(l => l.replicas),
						ctx,
						before
					);
				}
			}
		},
		methods: {
			/**
			 * Runs these replicas too, and says each is running that did not run before (with
			 * its fence), as a real agent reports a replica's state when it changes: not every
			 * replica of every list, which after a flood is thousands every reconcile.
			 */
			take(this: any, replicas: ReplicaSpec[], ctx: any, before: ReplicaSpec[]) {
				this.running = this.running.concat(replicas);
				const key = (r: ReplicaSpec) => `${r.workloadId}/${r.replica}@${r.fence}`;
				const ran = new Set(before.map(key));
				for (const r of replicas) {
					if (ran.has(key(r))) continue;
					const status: ReplicaStatus = {
						workloadId: r.workloadId,
						replica: r.replica,
						fence: r.fence,
						nodeID: spec.id,
						state: "running",
						restarts: 0,
						at: Date.now()
					};
					ctx.emit("workload.replica.state", status);
				}
				return { running: this.running.length };
			},
			report(this: any) {
				const t = Date.now() / 1000;
				const running: ReplicaSpec[] = this.running;
				const busy = new Set(running.flatMap(r => r.gpus));
				const reservedCpu = running.reduce((s, r) => s + r.resources.cpu, 0);
				const reservedMem = running.reduce((s, r) => s + r.resources.memory, 0);
				const wave = (period: number, k = 0) => Math.sin(t / period + phase + k);
				const cpuPercent = clamp(
					load * 100 + (reservedCpu / spec.cpu) * 45 + 12 * wave(23) + 4 * wave(3.1, 1),
					1,
					99
				);
				const memory =
					capacity.memory * clamp(load * 0.7 + 0.08 + 0.05 * wave(61), 0.05, 0.9) +
					reservedMem * 0.8;
				const report: NodeReport = {
					nodeID: spec.id,
					hostname: spec.id,
					labels: spec.labels ?? {},
					capacity,
					usage: {
						cpu: (cpuPercent / 100) * spec.cpu,
						cpuPercent,
						memory: Math.min(memory, capacity.memory * 0.97),
						gpus: capacity.gpus.map(g => {
							const utilization = busy.has(g.index)
								? clamp(
										78 + 16 * wave(17, g.index) + 5 * wave(2.3, g.index),
										5,
										100
									)
								: clamp(2 + 2 * wave(9, g.index), 0, 100);
							return {
								index: g.index,
								utilization,
								memoryUsed: busy.has(g.index)
									? g.memory * clamp(0.62 + 0.1 * wave(41, g.index), 0, 1)
									: 0.4 * GiB,
								temperature: 34 + utilization * 0.5
							};
						}),
						loadAvg: [0, 0, 0]
					},
					interval,
					sentAt: Date.now()
				};
				return this.broker.broadcast("node.report", report);
			}
		},
		started(this: any) {
			this.running = [];
			this.report();
			this.timer = setInterval(() => this.report(), interval);
		},
		stopped(this: any) {
			clearInterval(this.timer);
		}
	};
}
