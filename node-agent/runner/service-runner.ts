/**
 * Runs one `kind: "service"` replica: a Moleculer service module from one of the node's service
 * directories (ISA_SERVICE_DIRS), loaded into the agent's own broker, so that its actions join
 * the cluster like any other service's. The service must be the one the workload claimed
 * (`service.name`, see services/scheduler/lifecycle.ts), and it carries its tenant in its
 * metadata (WORKLOAD_TENANT_META), which keeps other tenants from seeing and calling it.
 */
import fs from "fs";
import path from "path";
import type { Service, ServiceBroker } from "moleculer";
import {
	ConflictError,
	InvalidInputError,
	ModuleNotAllowedError,
	ModuleNotFoundError
} from "../../services/shared/errors";
import {
	type ReplicaSpec,
	type ReplicaState,
	type ReplicaStatus,
	WORKLOAD_TENANT_META
} from "../../services/shared/types";
import type { LogLine } from "./process-runner";

/** Tried in this order; the .ts ones load only where ts-node is registered. */
export const SERVICE_EXTENSIONS = [".service.js", ".js", ".service.ts", ".ts"];

/** "./workloads, /opt/isa" → ["./workloads", "/opt/isa"]; nothing set gives ["./workloads"]. */
export function parseServiceDirs(raw?: string): string[] {
	const dirs = (raw ?? "")
		.split(",")
		.map(dir => dir.trim())
		.filter(Boolean);
	return dirs.length ? dirs : ["./workloads"];
}

function isInside(file: string, dir: string): boolean {
	const relative = path.relative(dir, file);
	return relative !== "" && relative.split(path.sep)[0] !== ".." && !path.isAbsolute(relative);
}

/**
 * The file of a service module: `<dir>/<module><ext>` in the first directory that has one. The
 * module is a relative name (`chat` or `llm/chat`) and its file must lie inside the directory
 * once symlinks are followed.
 */
export function resolveServiceModule(module: string, dirs: string[]): string {
	const roots = dirs.map(dir => path.resolve(dir));
	if (!module || path.isAbsolute(module) || module.split(/[/\\]/).includes(".."))
		throw new ModuleNotAllowedError(module, roots);
	for (const root of roots) {
		for (const ext of SERVICE_EXTENSIONS) {
			const file = path.join(root, module + ext);
			if (!fs.statSync(file, { throwIfNoEntry: false })?.isFile()) continue;
			if (!isInside(fs.realpathSync(file), fs.realpathSync(root)))
				throw new ModuleNotAllowedError(module, roots);
			return file;
		}
	}
	throw new ModuleNotFoundError(module, roots, SERVICE_EXTENSIONS);
}

export interface ServiceReplicaOptions {
	broker: ServiceBroker;
	/** Parsed ISA_SERVICE_DIRS, relative ones to the working directory. */
	serviceDirs: string[];
	onStatus?: (status: ReplicaStatus) => void;
}

/** What ServiceBroker.loadService() calls to start a service on a broker already running. */
interface RestartHook {
	_restartService(service: Service): Promise<void>;
}

/**
 * One service replica. `start()` resolves once the service runs, or failed to load or start (the
 * error is the status's reason). It rejects, after reporting `failed`, on a module name that is
 * not allowed or not found, and on a second service of the same name on this broker: Moleculer
 * would keep only the first in its registry and destroying either would unregister both, so a
 * node runs one replica of a service workload and the others are placed elsewhere.
 */
export class ServiceReplica {
	private state: ReplicaState = "pending";
	private reason?: string;
	/** Why it failed; a service replica is not restarted, so this is its one failure. */
	private lastError?: string;
	private changedAt = Date.now();
	private service?: Service;
	private starting?: Promise<ReplicaStatus>;

	constructor(
		readonly spec: ReplicaSpec,
		private readonly options: ServiceReplicaOptions
	) {}

	status(): ReplicaStatus {
		return {
			workloadId: this.spec.workloadId,
			replica: this.spec.replica,
			fence: this.spec.fence,
			nodeID: this.options.broker.nodeID,
			state: this.state,
			reason: this.reason,
			...(this.lastError ? { lastError: this.lastError } : {}),
			restarts: 0,
			at: this.changedAt
		};
	}

	/** A service writes to the broker's logger; the agent keeps no output of its own for it. */
	logs(): LogLine[] {
		return [];
	}

	start(): Promise<ReplicaStatus> {
		this.starting = this.load();
		return this.starting;
	}

	/** Destroys the service (its `stopped` handler runs); waits for a start in flight first. */
	async stop(): Promise<ReplicaStatus> {
		await this.starting?.catch(() => undefined);
		const service = this.service;
		this.service = undefined;
		if (service) await this.options.broker.destroyService(service);
		if (this.state !== "stopped") this.setState("stopped", "stopped");
		return this.status();
	}

	private async load(): Promise<ReplicaStatus> {
		const module = this.spec.service?.module;
		if (module === undefined) {
			const err = new InvalidInputError(
				`Replica ${this.spec.workloadId}/${this.spec.replica} is a service without a module.`,
				{ workloadId: this.spec.workloadId, replica: this.spec.replica }
			);
			this.setState("failed", err.message);
			throw err;
		}
		this.setState("starting");
		const broker = this.options.broker;
		let file: string;
		try {
			file = resolveServiceModule(module, this.options.serviceDirs);
		} catch (err) {
			this.setState("failed", (err as Error).message);
			throw err;
		}

		// On a running broker loadService() starts the service at once and only logs a failed
		// start. Holding that start back for the synchronous call lets the name be checked before
		// the service's `started` runs, and gives this replica the start's own promise.
		const hook = broker as unknown as RestartHook;
		const restartService = hook._restartService;
		let held = false;
		hook._restartService = () => {
			held = true;
			return Promise.resolve();
		};
		let service: Service;
		try {
			service = broker.loadService(file);
		} catch (err) {
			this.setState("failed", `could not load ${file}: ${(err as Error).message}`);
			return this.status();
		} finally {
			hook._restartService = restartService;
		}

		// A module that declares another name than the one claimed would run under a name its
		// tenant does not hold (perhaps another tenant's): it never joins the broker.
		const claimed = this.spec.service?.name;
		if (claimed !== undefined && service.fullName !== claimed) {
			broker.services.splice(broker.services.indexOf(service), 1);
			this.setState(
				"failed",
				`module '${module}' declares the Moleculer service '${service.fullName}', but the ` +
					`workload claimed '${claimed}': set service.name to '${service.fullName}' in the ` +
					"workload, or change the module's name."
			);
			return this.status();
		}

		if (
			broker.services.some(other => other !== service && other.fullName === service.fullName)
		) {
			// Neither started nor registered yet: off the broker's list, it is as if never loaded.
			broker.services.splice(broker.services.indexOf(service), 1);
			const err = new ConflictError(
				`Service '${service.fullName}' already runs on node '${broker.nodeID}': a node runs ` +
					"one service of a name, so place the replicas of this workload on other nodes.",
				{ service: service.fullName, module, nodeID: broker.nodeID }
			);
			this.setState("failed", err.message);
			throw err;
		}

		// Set before it starts, so that the first announcement of it names its tenant already
		// (the registry's spec shares this object). Whatever the module set there is replaced.
		service.metadata[WORKLOAD_TENANT_META] = this.spec.tenant;
		this.service = service;
		try {
			// Not held back: the broker has not started yet and will start it with its own.
			await (held
				? service._start()
				: new Promise(resolve => broker.localBus.once("$broker.started", resolve)));
		} catch (err) {
			this.service = undefined;
			await broker.destroyService(service);
			this.setState("failed", `could not start: ${(err as Error).message}`);
			return this.status();
		}
		this.setState("running");
		return this.status();
	}

	private setState(state: ReplicaState, reason?: string): void {
		this.state = state;
		this.reason = reason;
		if (state === "failed") this.lastError = reason;
		this.changedAt = Date.now();
		this.options.onStatus?.(this.status());
	}
}
