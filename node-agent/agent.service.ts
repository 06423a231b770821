/**
 * agent: one per node. Probes the machine once at start (CPU, memory, disks, network, NVIDIA
 * GPUs), puts those static facts in the broker's metadata, and broadcasts a `node.report` with
 * capacity and usage every report interval, so that every `nodes` instance in the cluster sees
 * it. `ISA_NODE_CAPACITY` replaces the probed capacity for simulations. Process replicas run in
 * directories of their own under the data directory, as ISA_WORKLOAD_USER when the agent is
 * root (runner/sandbox.ts); service replicas are loaded into this process and are trusted code.
 *
 * Process replicas outlive the agent process: an agent that exits (SIGTERM) or dies leaves them
 * running, and the next agent of the node adopts the ones still running as recorded
 * (runner/adoption.ts). Each one's supervisor stops it when no agent comes back before the
 * control plane could replace it (runner/supervisor.ts); the leases that say so are renewed
 * with every report. Service replicas restart with the agent.
 */
import type { Context, Service, ServiceSchema } from "moleculer";
import PeriodicMixin, { PeriodicMethods } from "../mixins/periodic.mixin";
import { loadEnv } from "../services/shared/env";
import { ensurePrivateDir } from "../services/shared/private-files";
import { EVENTS } from "../services/shared/events";
import type {
	Capacity,
	MachineFacts,
	NodeReport,
	ReplicaSpec,
	ReplicaStatus,
	Usage
} from "../services/shared/types";
import {
	parseAllowedCommands,
	parseServiceDirs,
	processOptions,
	ProcessReplica,
	ProcessSandbox,
	replicaFactory,
	ReplicaFactoryOptions,
	Runner
} from "./runner";
import { claimRecords, recoverReplicas } from "./runner/adoption";
import { groupAlive, selfIdentity, signalGroup } from "./runner/process-runner";
import { readProcStat, removeReplicaFiles, replicaFiles } from "./runner/replica-record";
import { MISSED_REPORTS } from "../services/nodes/inventory";
import {
	blockedAncestor,
	clearSandboxes,
	resolveWorkloadUser,
	sandboxRoot,
	systemLookup
} from "./runner/sandbox";
import { parseCapacityOverride, simulatedUsage } from "./probes/capacity-override";
import { SyncOrder, SyncPlan } from "./sync-order";
import { replicaLogLine } from "./replica-log";
import { DisconnectWatch, pingInterval } from "./disconnect";
import { watchTransport } from "../services/shared/transport";
import { StoreIdentityMismatchError } from "../services/shared/errors";
import {
	type ClusterIdentity,
	judgeIdentity,
	mismatchMessage,
	parseIdentity
} from "../services/shared/store/identity";
import {
	identityMemory,
	type IdentityMemory,
	inMemory
} from "../services/shared/store/identity-memory";
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
	/** ISA_ALLOWED_COMMANDS, comma separated: executables or globs process workloads may run. */
	allowedCommands: string | undefined;
	/** ISA_SERVICE_DIRS, comma separated: where service workloads' modules are found. */
	serviceDirs: string | undefined;
	/** ISA_DATA_DIR: process replicas get their directories under it. */
	dataDir: string;
	/** ISA_WORKLOAD_USER: who process replicas run as when the agent is root. */
	workloadUser: string | null;
}

interface AgentThis extends Service<AgentSettings>, PeriodicMethods {
	probe: MachineProbe;
	runner: Runner;
	sandbox: ProcessSandbox;
	/** bin/isa.ts said the process exits (node.exiting): process replicas stay on stop. */
	handingOver: boolean;
	/** Takes over what an earlier agent of this node left running. */
	adoptReplicas(options: ReplicaFactoryOptions, onStatus: (s: ReplicaStatus) => void): void;
	/** The newest list applied, and the one being applied. */
	order: SyncOrder;
	syncing: Promise<unknown>;
	/** disconnect.stopAfter: when the control plane was last heard (node-agent/disconnect.ts). */
	watch: DisconnectWatch;
	unwatchTransport: () => void;
	leaseTick(): Promise<void>;
	scheduleLeases(): void;
	applyPlan(plan: SyncPlan | null): Promise<unknown>;
	/** One sync at a time, in the order they came. */
	serialSync<T>(fn: () => Promise<T>): Promise<T>;
	/** The cluster identity of the lists this agent obeys (see checkIdentity). */
	identity: IdentityMemory;
	checkIdentity(identity: ClusterIdentity | undefined): void;
	facts: MachineFacts;
	capacity: Capacity;
	sendReport(): Promise<void>;
	startReporting(): void;
	currentUsage(): Promise<Usage>;
}

const env = loadEnv();

/** The identity a scheduler sends with its lists (agent-sync.ts); absent from older ones. */
const identityParam = {
	type: "object",
	optional: true,
	props: {
		clusterId: { type: "string", min: 1 },
		epoch: { type: "number", integer: true, min: 1 },
		createdAt: "number"
	}
};

const AgentService: ServiceSchema<AgentSettings, AgentThis> = {
	name: "agent",
	mixins: [PeriodicMixin()],

	settings: {
		reportInterval: env.reportInterval,
		labels: env.labels,
		capacityOverride: env.capacityOverride,
		gpuProbe: "NvidiaSmi",
		allowedCommands: env.allowedCommands,
		serviceDirs: env.serviceDirs,
		dataDir: env.dataDir,
		workloadUser: env.workloadUser
	},

	actions: {
		/** The machine's static facts, as probed at start. */
		facts: {
			idempotent: true,
			handler(this: AgentThis): MachineFacts {
				return this.facts;
			}
		},

		/**
		 * Makes this node run exactly the replicas listed (the scheduler's whole list for it):
		 * starts what is missing, replaces older placements, stops everything else.
		 */
		sync: {
			idempotent: true,
			visibility: "public",
			params: {
				replicas: { type: "array", items: "object" },
				generation: { type: "number", integer: true, min: 0 },
				identity: identityParam
			},
			handler(
				this: AgentThis,
				ctx: Context<{
					replicas: ReplicaSpec[];
					generation: number;
					identity?: ClusterIdentity;
				}>
			) {
				this.checkIdentity(ctx.params.identity);
				this.watch.heard(Date.now());
				// Never an older list after a newer one: schedulers send lists without waiting,
				// so two may cross on the way (see sync-order.ts).
				return this.serialSync(() =>
					this.applyPlan(
						this.order.node(
							ctx.params.replicas,
							ctx.params.generation,
							this.runner.list()
						)
					)
				);
			}
		},

		/**
		 * Makes this node run exactly the listed replicas of some workloads, leaving the others
		 * alone: what a placement round changed.
		 */
		syncWorkloads: {
			idempotent: true,
			visibility: "public",
			params: {
				workloads: {
					type: "array",
					items: {
						type: "object",
						props: {
							workloadId: "string",
							replicas: { type: "array", items: "object" }
						}
					}
				},
				generation: { type: "number", integer: true, min: 0 },
				identity: identityParam
			},
			handler(
				this: AgentThis,
				ctx: Context<{
					workloads: Array<{ workloadId: string; replicas: ReplicaSpec[] }>;
					generation: number;
					identity?: ClusterIdentity;
				}>
			) {
				this.checkIdentity(ctx.params.identity);
				this.watch.heard(Date.now());
				return this.serialSync(() =>
					this.applyPlan(
						this.order.workload(
							ctx.params.workloads,
							ctx.params.generation,
							this.runner.list()
						)
					)
				);
			}
		},

		/**
		 * Whether this node's lists say what the scheduler's say, by digest (sync-order.ts):
		 * the reconcile's check, answered `{ match: false }` when a change got lost, and the
		 * scheduler then sends the whole list. In order with the lists before it.
		 */
		check: {
			idempotent: true,
			visibility: "public",
			params: {
				digest: "string",
				generation: { type: "number", integer: true, min: 0 },
				skip: { type: "array", items: "string" },
				identity: identityParam
			},
			handler(
				this: AgentThis,
				ctx: Context<{
					digest: string;
					generation: number;
					skip: string[];
					identity?: ClusterIdentity;
				}>
			) {
				this.checkIdentity(ctx.params.identity);
				this.watch.heard(Date.now());
				const { digest, generation, skip } = ctx.params;
				return this.serialSync(async () => ({
					match: this.order.matches(digest, generation, skip)
				}));
			}
		},

		/** Recent output of one replica running here. */
		logs: {
			idempotent: true,
			visibility: "public",
			params: {
				workloadId: "string",
				replica: { type: "number", integer: true, min: 0 },
				limit: { type: "number", integer: true, min: 1, max: 1000, optional: true }
			},
			handler(
				this: AgentThis,
				ctx: Context<{ workloadId: string; replica: number; limit?: number }>
			) {
				return this.runner.logs(
					ctx.params.workloadId,
					ctx.params.replica,
					ctx.params.limit
				);
			}
		},

		/** The replicas this node runs, with their states. */
		replicas: {
			idempotent: true,
			handler(this: AgentThis) {
				return this.runner.list();
			}
		},

		/** The replicas this node runs with the specs they run (for an adoption of the store). */
		running: {
			idempotent: true,
			visibility: "public",
			handler(this: AgentThis) {
				return {
					nodeID: this.broker.nodeID,
					identity: this.identity.load(),
					replicas: this.runner.running()
				};
			}
		}
	},

	events: {
		// Reports start once the whole broker is up, so that the first one is not lost.
		"$broker.started"(this: AgentThis) {
			this.startReporting();
			// What this agent adopted: the scheduler's view of each is confirmed (or corrected).
			for (const status of this.runner.list()) this.broker.emit(EVENTS.replicaState, status);
		},
		[EVENTS.nodeExiting]: {
			handler(this: AgentThis) {
				this.handingOver = true;
			}
		}
	},

	methods: {
		/**
		 * Refuses a list that comes from a store of another identity than the lists obeyed so
		 * far (an emptied or replaced store read by a scheduler that never knew the old one):
		 * nothing is stopped. A later epoch of the same cluster (an adoption) is taken.
		 */
		checkIdentity(this: AgentThis, identity: ClusterIdentity | undefined) {
			const given = parseIdentity(identity);
			if (!given) return;
			const verdict = judgeIdentity(given, this.identity.load());
			if (verdict.state === "mismatch") {
				const message = mismatchMessage(verdict);
				this.logger.error(`List refused: ${message}`);
				throw new StoreIdentityMismatchError(message, {
					problem: verdict.problem,
					expected: verdict.expected,
					found: verdict.found
				});
			}
			const known = this.identity.load();
			if (known?.clusterId !== given.clusterId || known.epoch !== given.epoch)
				this.identity.save(given);
		},

		serialSync<T>(this: AgentThis, fn: () => Promise<T>): Promise<T> {
			const run = this.syncing.then(fn);
			this.syncing = run.catch(() => undefined);
			return run;
		},

		async applyPlan(this: AgentThis, plan: SyncPlan | null) {
			if (!plan) return { replicas: this.runner.list(), stale: true };
			// One failed stop must not keep the rest of the list from being applied: the list
			// is not sent again (its generation is spent).
			for (const running of plan.stop)
				await this.runner
					.stop(running.workloadId, running.replica)
					.catch(err => this.logger.warn(err.message));
			let leased = false;
			for (const spec of plan.start) {
				leased ||= Boolean(spec.disconnect?.stopAfterMs);
				// A refused start (command not allowed, module missing) is already reported and
				// logged as a failed replica (onStatus), once; the others still start.
				await this.runner
					.start(spec)
					.catch(err => this.logger.debug(`Start refused: ${err.message}`));
			}
			if (leased) this.scheduleLeases();
			return { replicas: this.runner.list() };
		},

		adoptReplicas(
			this: AgentThis,
			options: ReplicaFactoryOptions,
			onStatus: (status: ReplicaStatus) => void
		) {
			const files = replicaFiles(this.sandbox.dataDir, this.broker.nodeID);
			claimRecords(files, selfIdentity(), this.broker.nodeID);
			const found = recoverReplicas(files, {
				stat: readProcStat,
				groupAlive,
				killGroup: pgid => signalGroup(pgid, "SIGKILL")
			});
			const dirs: string[] = [];
			for (const record of found.adopt) {
				const { workloadId, replica } = record.spec;
				try {
					const adopted = ProcessReplica.adopt(record, processOptions(options, onStatus));
					this.runner.adopt(adopted);
					dirs.push(adopted.dir);
				} catch (err) {
					// Not supervised by this agent, it must not run on: the scheduler's list
					// starts it again.
					signalGroup(record.pgid, "SIGKILL");
					removeReplicaFiles(files, workloadId, replica);
					this.logger.warn(
						`Could not adopt ${workloadId}/${replica}: ${(err as Error).message}`
					);
				}
			}
			// No other replica runs before the first sync: what else is there, an earlier agent
			// left behind.
			clearSandboxes(this.sandbox.root, dirs);
			if (dirs.length || found.killed.length)
				this.logger.info(
					`Adopted ${dirs.length} process replica(s) still running from before` +
						(found.killed.length
							? `; killed what was left of ${found.killed.join(", ")}`
							: "") +
						"."
				);
		},

		/**
		 * While replicas with disconnect.stopAfter run here: ping a scheduler's node (an answer
		 * is word from the control plane), renew their leases while it is heard, and stop those
		 * whose stopAfter passed without a word. Ticks thrice per shortest stopAfter.
		 */
		scheduleLeases(this: AgentThis) {
			const leased = this.runner.leased();
			if (leased.length === 0) return this.cancel("leases");
			const every = pingInterval(Math.min(...leased.map(r => r.stopAfterMs)));
			this.every("leases", every, () => this.leaseTick());
		},

		async leaseTick(this: AgentThis) {
			const leased = this.runner.leased();
			if (leased.length === 0) return this.cancel("leases");
			const { renew, stop } = this.watch.tick(leased, Date.now());
			for (const r of renew) r.renew();
			for (const r of stop) {
				this.logger.warn(
					`Stopping replica ${r.replica} of ${r.workloadId}: no word from the control plane for ${this.watch.silentFor(Date.now())} ms (disconnect.stopAfter ${r.stopAfterMs} ms).`
				);
				await this.runner
					.release(r.workloadId, r.replica)
					.catch(err => this.logger.warn(err.message));
			}
			// Word from the control plane for the next tick: any scheduler's node answering.
			const nodes = new Set(
				(
					this.broker.registry.getServiceList({
						onlyAvailable: true,
						skipInternal: true
					}) as Array<{ name: string; nodeID: string }>
				)
					.filter(svc => svc.name === "scheduler")
					.map(svc => svc.nodeID)
			);
			const timeout = pingInterval(Math.min(...leased.map(r => r.stopAfterMs)));
			for (const nodeID of nodes) {
				if (nodeID === this.broker.nodeID) {
					this.watch.heard(Date.now());
					continue;
				}
				void this.broker
					.ping(nodeID, timeout)
					.then(pong => pong && this.watch.heard(Date.now()))
					.catch(() => undefined);
			}
		},

		startReporting(this: AgentThis) {
			this.every("report", this.settings.reportInterval, () => this.sendReport());
			void this.sendReport().catch(err => this.logger.warn("First node report failed:", err));
		},

		async currentUsage(this: AgentThis): Promise<Usage> {
			if (this.facts.simulated) return simulatedUsage(this.capacity);
			return this.probe.usage();
		},

		async sendReport(this: AgentThis) {
			// The down window counts from this report: the orphan deadlines move with it.
			this.runner.renewLeases(err => this.logger.warn(`Renewing a lease: ${err.message}`));
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
		// An unknown ISA_WORKLOAD_USER stops the node here, with the reason.
		this.sandbox = {
			dataDir: this.settings.dataDir,
			root: sandboxRoot(this.settings.dataDir, this.broker.nodeID),
			user: resolveWorkloadUser(this.settings.workloadUser, systemLookup())
		};
		this.order = new SyncOrder();
		this.watch = new DisconnectWatch(Date.now());
		this.syncing = Promise.resolve();
		// Per cluster: agents of several test clusters may share one data directory. With the
		// embedded store (a single node) the store lives in this data directory too: deleting
		// it to start afresh must not leave the agent refusing the new one.
		this.identity = !/^[a-z][a-z\d+.-]*:\/\//i.test(env.store)
			? inMemory()
			: identityMemory(
					`agent\u0000${this.broker.namespace}\u0000${env.transporter ?? ""}`,
					msg => this.logger.warn(msg)
				);
		this.handingOver = false;
		const factory: ReplicaFactoryOptions = {
			broker: this.broker,
			allowedCommands: parseAllowedCommands(this.settings.allowedCommands),
			serviceDirs: parseServiceDirs(this.settings.serviceDirs),
			sandbox: this.sandbox,
			process: {
				lease: {
					agent: selfIdentity(),
					downWindow: MISSED_REPORTS * this.settings.reportInterval
				}
			}
		};
		// Handing over, the service replicas that stop with this process restart with the
		// next agent: the scheduler is not told they stopped.
		const onStatus = (status: ReplicaStatus) => {
			const line = replicaLogLine(status);
			if (line) this.logger[line.level](line.text);
			if (!this.handingOver) this.broker.emit(EVENTS.replicaState, status);
		};
		this.runner = new Runner({ createReplica: replicaFactory(factory), onStatus });
		// As early as possible: the supervisors of what an earlier agent left wait for a new
		// agent in their lease only until their deadline (runner/supervisor.ts).
		ensurePrivateDir(this.sandbox.dataDir, msg => this.logger.warn(msg));
		this.adoptReplicas(factory, onStatus);
		const GpuProbe = resolveGpuProbe(this.settings.gpuProbe);
		this.probe = new SystemProbe(new GpuProbe(), warning =>
			this.logger.warn(`GPU probe: ${warning}`)
		);
	},

	async started(this: AgentThis) {
		const user = this.sandbox.user;
		const blocked = user && blockedAncestor(this.sandbox.dataDir, user);
		if (blocked)
			this.logger.warn(
				`'${user.name}' may not pass through ${blocked}: process replicas will not reach ` +
					"their directories (their HOME) by path. Put ISA_DATA_DIR where every parent " +
					"directory is searchable (o+x), e.g. /var/lib/isa."
			);
		this.logger.info(
			user
				? `Process replicas run as '${user.name}' (uid ${user.uid}, gid ${user.gid}) in ${this.sandbox.root}.`
				: `Process replicas run as this agent's own user (not root) in ${this.sandbox.root}.`
		);
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
		this.unwatchTransport = watchTransport(this.broker, connected =>
			this.watch.transport(connected)
		);
		// Loaded into a broker that already runs (hot reload): no $broker.started will come.
		if (this.broker.started) this.startReporting();
	},

	async stopped(this: AgentThis) {
		this.unwatchTransport?.();
		if (!this.handingOver) return this.runner.stopAll();
		// A last report first: the down window, and with it the time the next agent has to
		// take over, counts from now.
		await this.sendReport().catch(err => this.logger.warn("Last report failed:", err));
		const kept = await this.runner.handOver();
		if (kept === 0) return;
		this.logger.info(
			`Leaving ${kept} process replica(s) running for the next agent of this node.`
		);
		// Before the disconnect: the inventory then waits for the down window instead of
		// declaring the node down at once.
		await this.broker
			.broadcast(EVENTS.nodeRestarting, { nodeID: this.broker.nodeID, replicas: kept })
			.catch(err => this.logger.warn("Announcing the restart failed:", err.message));
	}
};

export default AgentService;
