/**
 * The replicas this node runs, keyed `${workloadId}/${replica}`. Each placement of a replica
 * carries a larger fence than the one before, so a message older than one already obeyed (a stop
 * or start from a scheduler that has since moved on) is ignored instead of killing the newer
 * placement. Messages for one replica are handled one at a time, in the order they came.
 *
 * A placement that ended failed (refused, or its restarts spent) stays here, failed, until a
 * stop or a newer placement: the lists that name its fence again (every sync) get its status
 * and do not start it again. Only its own restart backoff, or a new placement (a retry), does.
 */
import type { ServiceBroker } from "moleculer";
import { NotFoundError } from "../../services/shared/errors";
import type { ReplicaSpec, ReplicaStatus } from "../../services/shared/types";
import { LogLine, ProcessReplica, ProcessReplicaOptions, ProcessSandbox } from "./process-runner";
import { ServiceReplica } from "./service-runner";

export { isCommandAllowed, parseAllowedCommands } from "./process-runner";
export { ProcessReplica } from "./process-runner";
export type { LogLine, ProcessSandbox } from "./process-runner";
export { parseServiceDirs } from "./service-runner";

/** What the runner needs of a ProcessReplica or a ServiceReplica. */
export interface Replica {
	readonly spec: ReplicaSpec;
	status(): ReplicaStatus;
	/** Rejects only after reporting `failed` (a refusal): the Runner keeps it so. */
	start(): Promise<ReplicaStatus>;
	stop(): Promise<ReplicaStatus>;
	logs(limit?: number): LogLine[];
	/** Process replicas: pushes the supervisor's deadlines forward (supervisor.ts). */
	renewLease?(): void;
	/** Process replicas: leaves it running for the next agent of this node. */
	detach?(): void;
	/** Renews its disconnect lease (process replicas; see node-agent/disconnect.ts). */
	renew?(): void;
}

export type ReplicaFactory = (
	spec: ReplicaSpec,
	onStatus: (status: ReplicaStatus) => void
) => Replica;

export interface ReplicaFactoryOptions {
	broker: ServiceBroker;
	/** Parsed ISA_ALLOWED_COMMANDS. */
	allowedCommands: string[];
	/** Parsed ISA_SERVICE_DIRS. */
	serviceDirs: string[];
	/** Process replicas' directories and user. */
	sandbox: ProcessSandbox;
	/** Backoff, grace period and output limits of process replicas. */
	process?: Omit<ProcessReplicaOptions, "nodeID" | "allowedCommands" | "onStatus" | "sandbox">;
}

/** The options a process replica of this node gets, started here or adopted. */
export function processOptions(
	options: ReplicaFactoryOptions,
	onStatus: (status: ReplicaStatus) => void
): ProcessReplicaOptions {
	return {
		...options.process,
		nodeID: options.broker.nodeID,
		allowedCommands: options.allowedCommands,
		sandbox: options.sandbox,
		onStatus
	};
}

/** A ProcessReplica or a ServiceReplica by `spec.kind`. */
export function replicaFactory(options: ReplicaFactoryOptions): ReplicaFactory {
	return (spec, onStatus) =>
		spec.kind === "process"
			? new ProcessReplica(spec, processOptions(options, onStatus))
			: new ServiceReplica(spec, {
					broker: options.broker,
					serviceDirs: options.serviceDirs,
					onStatus
				});
}

export interface RunnerOptions {
	createReplica: ReplicaFactory;
	/** Every state change of every replica, to be sent as `workload.replica.state`. */
	onStatus: (status: ReplicaStatus) => void;
}

function keyOf(workloadId: string, replica: number): string {
	return `${workloadId}/${replica}`;
}

export class Runner {
	private readonly replicas = new Map<string, Replica>();
	/** The newest fence seen per replica, kept after a stop so that a late start is ignored. */
	private readonly fences = new Map<string, { fence: number; stopped: boolean }>();
	private readonly queues = new Map<string, Promise<unknown>>();

	constructor(private readonly options: RunnerOptions) {}

	/**
	 * Runs the placement. The same fence as the replica's here returns its status, failed or
	 * not; a newer one stops the old replica first. null: ignored, this node has seen a newer
	 * placement or a stop of this one. Rejects as the replica's start does (command or module
	 * refused), once: the refused replica is kept, failed, for the lists that follow.
	 */
	start(spec: ReplicaSpec): Promise<ReplicaStatus | null> {
		const key = keyOf(spec.workloadId, spec.replica);
		return this.serial(key, async () => {
			const seen = this.fences.get(key);
			if (seen && (spec.fence < seen.fence || (spec.fence === seen.fence && seen.stopped)))
				return null;
			const current = this.replicas.get(key);
			if (current?.spec.fence === spec.fence) return current.status();
			if (current) {
				this.replicas.delete(key);
				await current.stop();
			}
			this.fences.set(key, { fence: spec.fence, stopped: false });
			const replica = this.options.createReplica(spec, this.options.onStatus);
			this.replicas.set(key, replica);
			return replica.start();
		});
	}

	/**
	 * Stops the replica. With a fence, a stop older than the running placement is ignored; without
	 * one, whatever runs is stopped. null: nothing was stopped.
	 */
	stop(workloadId: string, replica: number, fence?: number): Promise<ReplicaStatus | null> {
		const key = keyOf(workloadId, replica);
		return this.serial(key, async () => {
			const seen = this.fences.get(key);
			if (fence !== undefined && seen && fence < seen.fence) return null;
			const current = this.replicas.get(key);
			const stopped = fence ?? current?.spec.fence;
			if (stopped !== undefined) this.fences.set(key, { fence: stopped, stopped: true });
			if (!current) return null;
			this.replicas.delete(key);
			return current.stop();
		});
	}

	/**
	 * Stops a replica that lost the control plane (disconnect.stopAfter) without taking its
	 * placement back: when the control plane is heard again and still names this fence here,
	 * the next sync starts it again. null: nothing ran.
	 */
	release(workloadId: string, replica: number): Promise<ReplicaStatus | null> {
		const key = keyOf(workloadId, replica);
		return this.serial(key, async () => {
			const current = this.replicas.get(key);
			if (!current) return null;
			this.replicas.delete(key);
			return current.stop();
		});
	}

	/** The running replicas whose workload has a disconnect.stopAfter, with it. */
	leased(): Array<{ workloadId: string; replica: number; stopAfterMs: number; renew(): void }> {
		const out = [];
		for (const r of this.replicas.values()) {
			const stopAfterMs = r.spec.disconnect?.stopAfterMs;
			if (stopAfterMs)
				out.push({
					workloadId: r.spec.workloadId,
					replica: r.spec.replica,
					stopAfterMs,
					renew: () => r.renew?.()
				});
		}
		return out;
	}

	list(): ReplicaStatus[] {
		return [...this.replicas.values()].map(replica => replica.status());
	}

	/** Each replica with the spec it was started from (what an adoption re-registers). */
	running(): Array<{ spec: ReplicaSpec; status: ReplicaStatus }> {
		return [...this.replicas.values()].map(replica => ({
			spec: replica.spec,
			status: replica.status()
		}));
	}

	/** The newest `limit` output lines of a replica, oldest first. */
	logs(workloadId: string, replica: number, limit = 100): LogLine[] {
		const key = keyOf(workloadId, replica);
		const running = this.replicas.get(key);
		if (!running) throw new NotFoundError("Replica", key);
		return running.logs(limit);
	}

	/** Takes over a replica an earlier agent of this node left running (adoption.ts). */
	adopt(replica: Replica): void {
		const key = keyOf(replica.spec.workloadId, replica.spec.replica);
		this.fences.set(key, { fence: replica.spec.fence, stopped: false });
		this.replicas.set(key, replica);
	}

	/** Renews every process replica's lease; a failed write is retried at the next report. */
	renewLeases(onError: (err: Error) => void): void {
		for (const replica of this.replicas.values())
			try {
				replica.renewLease?.();
			} catch (err) {
				onError(err as Error);
			}
	}

	/**
	 * The agent process is about to exit: process replicas keep running for the next agent,
	 * service replicas (in this process) stop. Resolves to the number of replicas left running.
	 */
	async handOver(): Promise<number> {
		let kept = 0;
		for (const replica of [...this.replicas.values()])
			if (replica.detach) {
				replica.detach();
				kept++;
			} else await this.stop(replica.spec.workloadId, replica.spec.replica);
		return kept;
	}

	async stopAll(): Promise<void> {
		await Promise.all(
			[...this.replicas.values()].map(replica =>
				this.stop(replica.spec.workloadId, replica.spec.replica)
			)
		);
	}

	private serial<T>(key: string, task: () => Promise<T>): Promise<T> {
		const result = (this.queues.get(key) ?? Promise.resolve()).then(task);
		const tail = result.catch(() => undefined);
		this.queues.set(key, tail);
		void tail.then(() => {
			if (this.queues.get(key) === tail) this.queues.delete(key);
		});
		return result;
	}
}
