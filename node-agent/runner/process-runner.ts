/**
 * Runs one `kind: "process"` replica: a command the node's ISA_ALLOWED_COMMANDS allows, in its
 * own process group so that stopping it also stops whatever it forked, with only the GPUs it was
 * given visible, its recent output kept in memory, and restarts with exponential backoff. It
 * runs in a directory of its own under the data directory, which is also its HOME, and as the
 * node's workload user when the agent is root (see sandbox.ts). It runs under a supervisor shell
 * and writes its output to files, so that it outlives an agent restart: the next agent adopts it
 * (replica-record.ts), or the supervisor stops it when no agent comes back in time
 * (supervisor.ts).
 */
import { ChildProcess, spawn, StdioOptions } from "child_process";
import fs from "fs";
import path from "path";
import { StringDecoder } from "string_decoder";
import {
	CommandNotAllowedError,
	InvalidInputError,
	ServiceUnavailableError
} from "../../services/shared/errors";
import type { ReplicaSpec, ReplicaState, ReplicaStatus } from "../../services/shared/types";
import {
	leasePath,
	outputPaths,
	readProcStat,
	RECORD_VERSION,
	removeReplicaFiles,
	ReplicaFiles,
	replicaFiles,
	ReplicaRecord,
	writeRecord
} from "./replica-record";
import {
	preparePassable,
	prepareSandbox,
	removeSandbox,
	sandboxDir,
	WorkloadUser
} from "./sandbox";
import {
	AgentIdentity,
	DEFAULT_DOWN_WINDOW_MS,
	leaseAt,
	OrphanTimes,
	orphanTimes,
	readLease,
	stopAtFrom,
	SUPERVISOR,
	uptimeCs,
	writeLease
} from "./supervisor";
import { afterExit, backoffDelay, DEFAULT_BACKOFF, restartReason } from "./restart-policy";

/** One line of a replica's output. */
export interface LogLine {
	/** ms since the epoch. */
	at: number;
	stream: "stdout" | "stderr";
	text: string;
}

/** The clock and timers a replica uses, so that tests can watch or speed up the backoff. */
export interface Timers {
	now(): number;
	setTimeout(fn: () => void, ms: number): unknown;
	clearTimeout(handle: unknown): void;
}

export const realTimers: Timers = {
	now: () => Date.now(),
	setTimeout(fn, ms) {
		const timer = setTimeout(fn, ms);
		timer.unref();
		return timer;
	},
	clearTimeout: handle => clearTimeout(handle as NodeJS.Timeout)
};

/** Where a node's replicas get their directories, and as whom they run. */
export interface ProcessSandbox {
	/** The data directory (ISA_DATA_DIR). */
	dataDir: string;
	/** sandboxRoot(dataDir, nodeID): this node's replica directories. */
	root: string;
	/** The workload user; null runs replicas as the agent's own user. */
	user: WorkloadUser | null;
}

export interface ProcessReplicaOptions {
	nodeID: string;
	sandbox: ProcessSandbox;
	/** Parsed ISA_ALLOWED_COMMANDS. */
	allowedCommands: string[];
	onStatus?: (status: ReplicaStatus) => void;
	/** First restart delay in ms (default 1 s); each further restart doubles it. */
	backoffBase?: number;
	/** The longest restart delay in ms (default 5 min). */
	backoffCap?: number;
	/** The jitter's source (restart-policy.ts), so that tests can pin the delays. */
	random?: () => number;
	/** ms between SIGTERM and SIGKILL on stop. */
	stopGrace?: number;
	maxLogLines?: number;
	/** Longer lines are cut to this many characters. */
	maxLineLength?: number;
	timers?: Timers;
	/** The agent's environment, of which only PATH and LANG reach the process. */
	env?: NodeJS.ProcessEnv;
	/** An output file is emptied once it holds more than this (default 8 MiB). */
	maxLogBytes?: number;
	/**
	 * The agent process the supervisor watches, and the node's down window (ms). Default: this
	 * process, and 6 s.
	 */
	lease?: { agent: AgentIdentity; downWindow: number };
}

/** "python3, /opt/bin/*" → ["python3", "/opt/bin/*"]. */
export function parseAllowedCommands(raw?: string): string[] {
	return (raw ?? "")
		.split(",")
		.map(entry => entry.trim())
		.filter(Boolean);
}

function globToRegExp(glob: string): RegExp {
	let source = "";
	for (let i = 0; i < glob.length; i++) {
		const c = glob[i];
		if (c === "*" && glob[i + 1] === "*") {
			source += ".*";
			i++;
		} else if (c === "*") source += "[^/]*";
		else if (c === "?") source += "[^/]";
		else source += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
	}
	return new RegExp(`^${source}$`);
}

/**
 * Whether an allow list entry matches the command exactly or as a glob: `*` and `?` stay within
 * one path segment, `**` crosses them. A bare name (`python3`) allows that name looked up in
 * PATH, not `/usr/bin/python3`. An empty list allows nothing.
 */
export function isCommandAllowed(command: string, allowList: string[]): boolean {
	// A `..` segment would walk out of an allowed directory: /opt/bin/../../bin/sh.
	if (!command || command.split("/").includes("..")) return false;
	return allowList.some(entry => globToRegExp(entry).test(command));
}

const INHERITED_ENV = ["PATH", "LANG"];

/**
 * The process's whole environment: the agent's own variables may hold secrets, so only PATH
 * and LANG pass, then the spec's env, then HOME (the replica's own directory, never the agent's
 * home with its credentials), the ISA_* facts and CUDA_VISIBLE_DEVICES, last so that a spec
 * cannot claim GPUs it was not given. No GPU gives "", which hides every GPU.
 */
export function processEnv(
	spec: ReplicaSpec,
	home: string,
	agentEnv: NodeJS.ProcessEnv = process.env
): Record<string, string> {
	const env: Record<string, string> = {};
	for (const name of INHERITED_ENV) {
		const value = agentEnv[name];
		if (value !== undefined) env[name] = value;
	}
	return {
		...env,
		...spec.process?.env,
		HOME: home,
		CUDA_VISIBLE_DEVICES: spec.gpus.join(","),
		ISA_WORKLOAD_ID: spec.workloadId,
		ISA_REPLICA: String(spec.replica),
		ISA_TENANT: spec.tenant,
		ISA_CPU: String(spec.resources.cpu),
		ISA_MEMORY: String(spec.resources.memory),
		ISA_GPU_MEMORY: String(spec.resources.gpuMemory)
	};
}

class RingBuffer<T> {
	private readonly items: T[] = [];
	private next = 0;

	constructor(private readonly capacity: number) {}

	push(item: T): void {
		if (this.items.length < this.capacity) this.items.push(item);
		else this.items[this.next] = item;
		this.next = (this.next + 1) % this.capacity;
	}

	newest(limit: number): T[] {
		const ordered = [...this.items.slice(this.next), ...this.items.slice(0, this.next)];
		return limit >= ordered.length ? ordered : ordered.slice(ordered.length - limit);
	}
}

/** Cuts a stream into lines, keeping at most `max` characters of each. */
class LineSplitter {
	private partial = "";
	/** The current line already passed the cap: the rest of it is dropped. */
	private overflow = false;

	constructor(
		private readonly max: number,
		private readonly emit: (line: string) => void
	) {}

	write(chunk: string): void {
		const parts = chunk.split("\n");
		const last = parts.pop() as string;
		for (const part of parts) {
			this.append(part);
			this.endLine();
		}
		this.append(last);
	}

	end(): void {
		if (this.partial) this.endLine();
	}

	private append(text: string): void {
		if (this.overflow) return;
		this.partial += text;
		if (this.partial.length > this.max) {
			this.emit(`${this.partial.slice(0, this.max)}…`);
			this.partial = "";
			this.overflow = true;
		}
	}

	private endLine(): void {
		if (!this.overflow) this.emit(this.partial.replace(/\r$/, ""));
		this.partial = "";
		this.overflow = false;
	}
}

/** Signals a whole process group; false when it no longer exists. */
export function signalGroup(pid: number, signal: NodeJS.Signals | 0): boolean {
	// -0 would be this agent's own group.
	if (!(pid > 0)) return false;
	try {
		process.kill(-pid, signal);
		return true;
	} catch {
		return false;
	}
}

function isLiveMember(pid: string, pgid: number): boolean {
	try {
		const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
		// After the command name, which may itself hold ") ": state, ppid, process group.
		const [state, , group] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
		return Number(group) === pgid && state !== "Z";
	} catch {
		return false;
	}
}

/**
 * Whether a process group still has a running member. Where PID 1 does not reap orphans (many
 * containers) their zombies stay in the group, which a signal alone cannot tell from the living.
 */
export function groupAlive(pgid: number): boolean {
	if (!signalGroup(pgid, 0)) return false;
	let pids: string[];
	try {
		pids = fs.readdirSync("/proc").filter(entry => /^\d+$/.test(entry));
	} catch {
		return true;
	}
	return pids.some(pid => isLiveMember(pid, pgid));
}

/** A process this replica runs: the supervisor shell, leader of the replica's process group. */
interface Run {
	pid: number;
	/** /proc start time of the leader, which tells it from a process that reuses its pid. */
	startTime: number | null;
	/** The child, when this agent spawned it; an adopted run has none. */
	child?: ChildProcess;
	/** The leader exited (or never started). */
	exited: Promise<void>;
	/** Stops watching an adopted run for its exit. */
	unwatch?: () => void;
}

/** Whether `command` names an executable file, directly or on `PATH`. */
export function findExecutable(command: string, pathVar = ""): boolean {
	const candidates = command.includes("/")
		? [command]
		: pathVar
				.split(":")
				.filter(Boolean)
				.map(dir => path.join(dir, command));
	return candidates.some(file => {
		try {
			fs.accessSync(file, fs.constants.X_OK);
			return fs.statSync(file).isFile();
		} catch {
			return false;
		}
	});
}

/** This process as a lease names it. */
export function selfIdentity(): AgentIdentity {
	const stat = readProcStat(process.pid);
	if (!stat) throw new Error("/proc/self/stat is unreadable");
	return { pid: process.pid, startTime: stat.startTime };
}

/** How often the agent reads what its replicas wrote, and looks whether an adopted one ended. */
const TAIL_MS = 200;
const WATCH_MS = 250;
/** An adopted replica's logs start with at most this much of what it wrote before. */
const BACKLOG_BYTES = 64 * 1024;

/**
 * Follows a replica's two output files into its line buffer. Once a file holds more than
 * `maxBytes`, it is emptied after being read: the writer appends (O_APPEND), so it goes on
 * writing at the new end; the lines kept in memory are what `logs` serves.
 */
class OutputTail {
	private readonly streams: Array<{
		stream: LogLine["stream"];
		file: string;
		offset: number;
		decoder: StringDecoder;
		lines: LineSplitter;
		skipPartial: boolean;
	}>;
	private timer?: NodeJS.Timeout;

	constructor(
		files: { stdout: string; stderr: string },
		maxLineLength: number,
		private readonly maxBytes: number,
		push: (line: Omit<LogLine, "at">) => void
	) {
		this.streams = (["stdout", "stderr"] as const).map(stream => ({
			stream,
			file: files[stream],
			offset: 0,
			decoder: new StringDecoder("utf8"),
			lines: new LineSplitter(maxLineLength, text => push({ stream, text })),
			skipPartial: false
		}));
	}

	/** From the start of the files, or (adopting) from near their end. */
	start(fromEnd: boolean): void {
		if (fromEnd)
			for (const s of this.streams) {
				const size = fileSize(s.file);
				s.offset = Math.max(0, size - BACKLOG_BYTES);
				s.skipPartial = s.offset > 0;
			}
		this.timer = setInterval(() => this.read(), TAIL_MS);
		this.timer.unref();
	}

	/** Stops following; `flush` reads what is left and ends the last line. */
	stop(flush: boolean): void {
		if (this.timer) clearInterval(this.timer);
		this.timer = undefined;
		if (flush) this.flush();
	}

	/** Reads what the process wrote and ends its last line: it exited. */
	flush(): void {
		this.read();
		for (const s of this.streams) s.lines.end();
	}

	read(): void {
		for (const s of this.streams) {
			let fd: number;
			try {
				fd = fs.openSync(s.file, "r");
			} catch {
				continue;
			}
			try {
				const size = fs.fstatSync(fd).size;
				if (size < s.offset) s.offset = 0;
				const buffer = Buffer.alloc(64 * 1024);
				while (s.offset < size) {
					const n = fs.readSync(fd, buffer, 0, buffer.length, s.offset);
					if (n <= 0) break;
					s.offset += n;
					let text = s.decoder.write(buffer.subarray(0, n));
					if (s.skipPartial) {
						const nl = text.indexOf("\n");
						if (nl < 0) continue;
						text = text.slice(nl + 1);
						s.skipPartial = false;
					}
					s.lines.write(text);
				}
				if (s.offset > this.maxBytes) {
					fs.ftruncateSync(fd, 0);
					s.offset = 0;
				}
			} catch {
				// Removed while read (the replica stopped): nothing more to follow.
			} finally {
				fs.closeSync(fd);
			}
		}
	}
}

function fileSize(file: string): number {
	try {
		return fs.statSync(file).size;
	} catch {
		return 0;
	}
}

/** Resolves after `ms`, on a timer that does not keep the process alive. */
function pause(ms: number): Promise<void> {
	return new Promise(resolve => setTimeout(resolve, ms).unref());
}

/** Resolves true once the group has no live member, false when `within` ms passed first. */
async function groupGone(pgid: number, within: number): Promise<boolean> {
	const deadline = Date.now() + within;
	for (;;) {
		if (!groupAlive(pgid)) return true;
		if (Date.now() >= deadline) return false;
		await pause(25);
	}
}

export class ProcessReplica {
	private state: ReplicaState = "pending";
	private reason?: string;
	/** The newest failure of this placement, kept while it runs again after a restart. */
	private lastError?: string;
	private changedAt: number;
	private restarts = 0;
	private run?: Run;
	/** When the supervisor stops it without word from the control plane (uptime cs; 0: never). */
	private stopAt = 0;
	private restartTimer?: unknown;
	private stopping = false;
	/** Handed over to the next agent: nothing this object sees changes the replica any more. */
	private detached = false;
	private lastExit?: string;
	private readonly output: RingBuffer<LogLine>;
	private readonly timers: Timers;
	private readonly files: ReplicaFiles;
	private tail?: OutputTail;
	/** Its working directory and HOME. */
	readonly dir: string;

	constructor(
		readonly spec: ReplicaSpec,
		private readonly options: ProcessReplicaOptions
	) {
		this.timers = options.timers ?? realTimers;
		this.dir = sandboxDir(options.sandbox.root, spec.workloadId, spec.replica);
		this.files = replicaFiles(options.sandbox.dataDir, options.nodeID);
		this.changedAt = this.timers.now();
		this.output = new RingBuffer(options.maxLogLines ?? 1000);
	}

	/**
	 * A replica that an earlier agent of this node started and that still runs (see
	 * replica-record.ts for the checks): it keeps running, this agent follows its output files,
	 * watches for its exit and takes over its lease. Its exit status cannot be known (another
	 * process was its parent), so an exit counts as a failure for its restart policy.
	 */
	static adopt(record: ReplicaRecord, options: ProcessReplicaOptions): ProcessReplica {
		const replica = new ProcessReplica(record.spec, options);
		replica.restarts = record.restarts;
		replica.takeOverLease();
		replica.watchAdopted(record);
		replica.state = "running";
		replica.reason = undefined;
		return replica;
	}

	status(): ReplicaStatus {
		return {
			workloadId: this.spec.workloadId,
			replica: this.spec.replica,
			fence: this.spec.fence,
			nodeID: this.options.nodeID,
			state: this.state,
			reason: this.reason,
			...(this.lastError ? { lastError: this.lastError } : {}),
			restarts: this.restarts,
			pid: this.run?.pid,
			at: this.changedAt
		};
	}

	/** The newest `limit` lines of output, oldest first. */
	logs(limit = 100): LogLine[] {
		this.tail?.read();
		return this.output.newest(limit);
	}

	/**
	 * Pushes the orphan deadlines forward from now: the agent calls this as it sends a node
	 * report, since the down window counts from the last report.
	 */
	renewLease(nowCs = uptimeCs()): void {
		if (!this.run || this.detached) return;
		const lease = leaseAt(this.agent(), nowCs, this.orphanTimes(), this.stopAt);
		writeLease(this.leaseFile(), lease, this.options.sandbox.user?.gid ?? null);
	}

	/**
	 * Leaves the replica running for the next agent of this node (the agent process exits):
	 * its record and lease stay, and its supervisor stops it if no agent takes it over in time.
	 */
	detach(): void {
		this.detached = true;
		if (this.restartTimer !== undefined) this.timers.clearTimeout(this.restartTimer);
		this.run?.unwatch?.();
		this.tail?.stop(false);
	}

	/**
	 * Starts the process. A refusal (no command, a command ISA_ALLOWED_COMMANDS does not allow)
	 * or a directory that cannot be made is `failed` at once and rejects: it is no restart, and
	 * only a new placement (POST /workloads/:id/retry) tries again.
	 */
	async start(): Promise<ReplicaStatus> {
		const command = this.spec.process?.command;
		if (command === undefined) {
			const err = new InvalidInputError(
				`Replica ${this.spec.workloadId}/${this.spec.replica} is a process without a command.`,
				{ workloadId: this.spec.workloadId, replica: this.spec.replica }
			);
			this.fail(err.message);
			throw err;
		}
		if (!isCommandAllowed(command, this.options.allowedCommands)) {
			const err = new CommandNotAllowedError(command, this.options.nodeID);
			this.fail(err.message);
			throw err;
		}
		try {
			// Fresh for each placement; its restarts keep what it wrote (caches, checkpoints).
			prepareSandbox(this.options.sandbox.dataDir, this.dir, this.options.sandbox.user);
			fs.mkdirSync(this.files.records, { recursive: true, mode: 0o700 });
			preparePassable(
				this.options.sandbox.dataDir,
				this.files.leases,
				this.options.sandbox.user
			);
			const out = outputPaths(this.files, this.spec.workloadId, this.spec.replica);
			for (const file of [out.stdout, out.stderr])
				fs.writeFileSync(file, "", { mode: 0o600 });
		} catch (err) {
			const reason = `could not prepare its directory ${this.dir}: ${(err as Error).message}`;
			this.fail(reason);
			throw new ServiceUnavailableError(reason, {
				workloadId: this.spec.workloadId,
				replica: this.spec.replica,
				dir: this.dir
			});
		}
		this.followOutput(false);
		this.setState("starting");
		await this.launch();
		return this.status();
	}

	/** One run of the process; a spawn that throws (no descriptor left, say) is a failed run. */
	private async launch(): Promise<void> {
		try {
			await this.spawnRun();
		} catch (err) {
			this.onExit(undefined, `could not start: ${(err as Error).message}`, true);
		}
	}

	/**
	 * SIGTERM to the whole process group, SIGKILL after the grace period to whatever is left of
	 * it; resolves once the process exited and its directory is gone. The replica never restarts
	 * after this: a later placement of it, here or elsewhere, starts from an empty directory.
	 */
	async stop(): Promise<ReplicaStatus> {
		this.stopping = true;
		if (this.restartTimer !== undefined) {
			this.timers.clearTimeout(this.restartTimer);
			this.restartTimer = undefined;
		}
		const run = this.run;
		if (run && run.pid > 0) {
			run.unwatch?.();
			signalGroup(run.pid, "SIGTERM");
			let graceTimer: unknown;
			const graceOver = new Promise<void>(resolve => {
				graceTimer = this.timers.setTimeout(resolve, this.options.stopGrace ?? 5000);
			});
			// Polled, not awaited as an event: an adopted group is not this process's child.
			let over = false;
			void graceOver.then(() => (over = true));
			const gone = await (async () => {
				while (!over) if (await groupGone(run.pid, 100)) return true;
				return false;
			})();
			if (!gone) signalGroup(run.pid, "SIGKILL");
			this.timers.clearTimeout(graceTimer);
			if (run.child) await run.exited;
			else {
				await groupGone(run.pid, 2000);
				this.lastExit ??= gone ? "ended" : "killed by SIGKILL";
				this.run = undefined;
			}
		}
		this.tail?.stop(true);
		try {
			removeReplicaFiles(this.files, this.spec.workloadId, this.spec.replica);
			removeSandbox(this.dir);
		} catch {
			// Something the replica made that the agent cannot delete: the next agent start
			// clears this node's directories (clearSandboxes), and a new placement starts empty.
		}
		if (this.state !== "stopped")
			this.setState("stopped", this.lastExit ? `stopped (${this.lastExit})` : "stopped");
		return this.status();
	}

	private agent(): AgentIdentity {
		return this.options.lease?.agent ?? selfIdentity();
	}

	private orphanTimes(): OrphanTimes {
		return orphanTimes(
			this.options.lease?.downWindow ?? DEFAULT_DOWN_WINDOW_MS,
			this.spec.disconnect?.stopAfterMs
		);
	}

	private leaseFile(): string {
		return leasePath(this.files, this.spec.workloadId, this.spec.replica);
	}

	/** Puts this agent in the lease, keeping its deadlines: it has not reported yet. */
	private takeOverLease(): void {
		const old = readLease(this.leaseFile());
		this.stopAt = old?.stopAt ?? 0;
		const lease = old
			? { ...old, agent: this.agent() }
			: leaseAt(this.agent(), uptimeCs(), this.orphanTimes());
		writeLease(this.leaseFile(), lease, this.options.sandbox.user?.gid ?? null);
	}

	private followOutput(fromEnd: boolean): void {
		this.tail?.stop(false);
		this.tail = new OutputTail(
			outputPaths(this.files, this.spec.workloadId, this.spec.replica),
			this.options.maxLineLength ?? 4096,
			this.options.maxLogBytes ?? 8 * 1024 * 1024,
			line => this.output.push({ at: this.timers.now(), ...line })
		);
		this.tail.start(fromEnd);
	}

	/** Follows an adopted run until its leader is gone. */
	private watchAdopted(record: ReplicaRecord): void {
		this.followOutput(true);
		let timer: NodeJS.Timeout | undefined;
		let settle!: () => void;
		const exited = new Promise<void>(resolve => (settle = resolve));
		const run: Run = {
			pid: record.pid,
			startTime: record.startTime,
			exited,
			unwatch: () => {
				if (timer) clearInterval(timer);
				timer = undefined;
			}
		};
		this.run = run;
		timer = setInterval(() => {
			const stat = readProcStat(record.pid);
			if (stat && stat.state !== "Z" && stat.startTime === record.startTime) return;
			run.unwatch?.();
			settle();
			this.lastExit = "ended (exit status unknown: an earlier agent started it)";
			if (this.run === run) this.run = undefined;
			this.tail?.flush();
			this.onExit(record.pid, this.lastExit, true);
		}, WATCH_MS);
		timer.unref();
	}

	/**
	 * Renews the disconnect lease of a replica with disconnect.stopAfter, while the agent hears
	 * the control plane (node-agent/disconnect.ts): its supervisor stops it once the lease's
	 * stopAt passes, whether or not this agent still lives (a frozen one cannot stop it).
	 */
	renew(): void {
		const stopAfterMs = this.spec.disconnect?.stopAfterMs;
		if (!stopAfterMs || !this.run || this.detached) return;
		this.stopAt = stopAtFrom(uptimeCs(), stopAfterMs);
		const old = readLease(this.leaseFile());
		if (old)
			writeLease(
				this.leaseFile(),
				{ ...old, stopAt: this.stopAt },
				this.options.sandbox.user?.gid ?? null
			);
	}

	/** Resolves once the process runs or could not start. */
	private spawnRun(): Promise<void> {
		const { command, args } = this.spec.process as NonNullable<ReplicaSpec["process"]>;
		// Through the supervisor shell (supervisor.ts): the replica outlives this agent, for the
		// next agent of the node to adopt, and stops by itself if none does in time.
		const env = processEnv(this.spec, this.dir, this.options.env);
		const user = this.options.sandbox.user;
		// libuv changes into cwd, drops the agent's groups, then sets gid and uid, before exec.
		const as = { cwd: this.dir, env, ...(user ? { uid: user.uid, gid: user.gid } : {}) };
		const out = outputPaths(this.files, this.spec.workloadId, this.spec.replica);
		// The replica writes its output through these; it cannot open the files by path.
		const fds = [fs.openSync(out.stdout, "a"), fs.openSync(out.stderr, "a")];
		const stdio: StdioOptions = ["ignore", fds[0], fds[1]];
		const lease = this.leaseFile();
		let child: ChildProcess;
		try {
			const nowCs = uptimeCs();
			// The agent has just heard the control plane: it sent this replica's spec.
			const stopAfterMs = this.spec.disconnect?.stopAfterMs;
			this.stopAt = stopAfterMs ? stopAtFrom(nowCs, stopAfterMs) : 0;
			writeLease(
				lease,
				leaseAt(this.agent(), nowCs, this.orphanTimes(), this.stopAt),
				user?.gid ?? null
			);
			// A command that is not there is spawned bare, so that it fails as a spawn (ENOENT)
			// rather than as a shell's exit 127.
			child = findExecutable(command, env.PATH)
				? spawn("/bin/sh", ["-c", SUPERVISOR, "isa-replica", lease, command, ...args], {
						detached: true,
						stdio,
						...as
					})
				: spawn(command, args, { detached: true, stdio, ...as });
		} finally {
			// The child holds its own copies from here on.
			for (const fd of fds) fs.closeSync(fd);
		}
		let settle!: () => void;
		const started = new Promise<void>(resolve => (settle = resolve));
		let ended = false;
		const end = (reason: string, failure: boolean) => {
			if (ended) return;
			ended = true;
			this.lastExit = reason;
			if (this.run?.child === child) this.run = undefined;
			if (!this.detached) {
				this.tail?.flush();
				this.onExit(child.pid, reason, failure);
			}
			settle();
		};
		const closed = new Promise<void>(resolve => child.once("close", () => resolve()));
		const exit = new Promise<void>(resolve => child.once("exit", () => resolve()));
		// A failed spawn emits "error" and "close" but no "exit".
		const run: Run = {
			pid: child.pid ?? 0,
			startTime: null,
			child,
			exited: Promise.race([exit, closed])
		};
		this.run = run;
		child.once("spawn", () => {
			run.pid = child.pid as number;
			run.startTime = readProcStat(run.pid)?.startTime ?? null;
			this.record(run);
			if (!this.stopping) this.setState("running");
			settle();
		});
		// Only a spawn failure: this class never uses child.kill() or IPC.
		child.once("error", err => end(`could not start: ${err.message}`, true));
		child.once("exit", (code, signal) =>
			end(code !== null ? `exited with code ${code}` : `killed by ${signal}`, code !== 0)
		);
		return started;
	}

	/** Writes down the run for the next agent of this node (replica-record.ts). */
	private record(run: Run): void {
		if (run.startTime === null) return;
		try {
			writeRecord(this.files, {
				version: RECORD_VERSION,
				spec: this.spec,
				pid: run.pid,
				pgid: run.pid,
				startTime: run.startTime,
				restarts: this.restarts,
				startedAt: Date.now()
			});
		} catch {
			// Without its record the replica is not adopted: its supervisor stops it if this agent
			// goes, and the scheduler's list starts it again.
		}
	}

	private onExit(pid: number | undefined, reason: string, failure: boolean): void {
		if (this.stopping || this.detached) return;
		// Workers the process forked must not outlive it and hold on to its GPUs.
		if (pid !== undefined) signalGroup(pid, "SIGKILL");
		if (failure) this.lastError = reason;
		const next = afterExit(this.spec.restart, this.restarts, reason, failure);
		if (!next.restart) return this.setState(next.state, next.reason);
		const delay = backoffDelay(
			this.restarts,
			{
				...DEFAULT_BACKOFF,
				base: this.options.backoffBase ?? DEFAULT_BACKOFF.base,
				cap: this.options.backoffCap ?? DEFAULT_BACKOFF.cap
			},
			this.options.random
		);
		this.setState("starting", restartReason(reason, delay, next.attempt, next.of));
		this.restartTimer = this.timers.setTimeout(() => {
			this.restartTimer = undefined;
			this.restarts++;
			void this.launch();
		}, delay);
	}

	/** Ends this placement failed: its restart policy does not apply (see start). */
	private fail(reason: string): void {
		this.lastError = reason;
		this.setState("failed", reason);
	}

	private setState(state: ReplicaState, reason?: string): void {
		this.state = state;
		this.reason = reason;
		this.changedAt = this.timers.now();
		this.options.onStatus?.(this.status());
	}
}
