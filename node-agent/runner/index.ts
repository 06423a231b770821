/**
 * The replicas this node runs, keyed `${workloadId}/${replica}`. Each placement of a replica
 * carries a larger fence than the one before, so a message older than one already obeyed (a stop
 * or start from a scheduler that has since moved on) is ignored instead of killing the newer
 * placement. Messages for one replica are handled one at a time, in the order they came.
 */
import type { ServiceBroker } from "moleculer";
import { NotFoundError } from "../../services/shared/errors";
import type { ReplicaSpec, ReplicaStatus } from "../../services/shared/types";
import { LogLine, ProcessReplica, ProcessReplicaOptions, ProcessSandbox } from "./process-runner";
import { ServiceReplica } from "./service-runner";

export { isCommandAllowed, parseAllowedCommands } from "./process-runner";
export type { LogLine, ProcessSandbox } from "./process-runner";
export { parseServiceDirs } from "./service-runner";

/** What the runner needs of a ProcessReplica or a ServiceReplica. */
export interface Replica {
	readonly spec: ReplicaSpec;
	status(): ReplicaStatus;
	start(): Promise<ReplicaStatus>;
	stop(): Promise<ReplicaStatus>;
	logs(limit?: number): LogLine[];
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

/** A ProcessReplica or a ServiceReplica by `spec.kind`. */
export function replicaFactory(options: ReplicaFactoryOptions): ReplicaFactory {
	return (spec, onStatus) =>
		spec.kind === "process"
			? new ProcessReplica(spec, {
					...options.process,
					nodeID: options.broker.nodeID,
					allowedCommands: options.allowedCommands,
					sandbox: options.sandbox,
					onStatus
				})
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
	 * Runs the placement. The same fence as the running replica's returns its status; a newer
	 * one stops the old replica first. null: ignored, this node has seen a newer placement or a
	 * stop of this one. Rejects as the replica's start does (command or module refused).
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
			try {
				return await replica.start();
			} catch (err) {
				this.replicas.delete(key);
				throw err;
			}
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
