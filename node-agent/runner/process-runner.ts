/**
 * Runs one `kind: "process"` replica: a command the node's ISA_ALLOWED_COMMANDS allows, in its
 * own process group so that stopping it also stops whatever it forked, with only the GPUs it was
 * given visible, its recent output kept in memory, and restarts with exponential backoff. It
 * runs in a directory of its own under the data directory, which is also its HOME, and as the
 * node's workload user when the agent is root (see sandbox.ts).
 */
import { ChildProcess, spawn } from "child_process";
import fs from "fs";
import path from "path";
import {
	CommandNotAllowedError,
	InvalidInputError,
	ServiceUnavailableError
} from "../../services/shared/errors";
import type { ReplicaSpec, ReplicaState, ReplicaStatus } from "../../services/shared/types";
import { prepareSandbox, removeSandbox, sandboxDir, WorkloadUser } from "./sandbox";

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
	/** First restart delay in ms; each further restart doubles it. */
	backoffBase?: number;
	backoffCap?: number;
	/** ms between SIGTERM and SIGKILL on stop. */
	stopGrace?: number;
	maxLogLines?: number;
	/** Longer lines are cut to this many characters. */
	maxLineLength?: number;
	timers?: Timers;
	/** The agent's environment, of which only PATH and LANG reach the process. */
	env?: NodeJS.ProcessEnv;
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

/** Delay before restart number `restarts + 1`: base, 2·base, 4·base… at most cap. */
export function backoffDelay(restarts: number, base: number, cap: number): number {
	return Math.min(base * 2 ** restarts, cap);
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
function signalGroup(pid: number, signal: NodeJS.Signals | 0): boolean {
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
function groupAlive(pgid: number): boolean {
	if (!signalGroup(pgid, 0)) return false;
	let pids: string[];
	try {
		pids = fs.readdirSync("/proc").filter(entry => /^\d+$/.test(entry));
	} catch {
		return true;
	}
	return pids.some(pid => isLiveMember(pid, pgid));
}

interface Run {
	child: ChildProcess;
	/** The group leader exited (or never started). */
	exited: Promise<void>;
	/** Its output pipes closed: every process that held them is gone. */
	closed: Promise<void>;
}

/**
 * One process replica. `start()` resolves once the process runs (or failed to start) and
 * rejects with CommandNotAllowedError, after reporting `failed`, when the node does not allow
 * the command. Restarts follow `spec.restart`: "always" after any exit, "on-failure" after a
 * non-zero exit or a signal, "never" not at all. `maxRestarts` counts restarts over the
 * replica's life; 0 means no limit. Between an exit and its restart the replica reports
 * `starting` with the reason; when it needs a restart beyond `maxRestarts` it reports `failed`.
 */
/**
 * The replica's shell: runs the command in the background (its stdin is /dev/null, as POSIX
 * gives background jobs), a watcher that waits for EOF on the agent's pipe (fd 3) and then kills
 * the group, and exits with the command's status. `exec 3<&0` keeps the pipe for the watcher.
 * Its first argument is a lease in seconds (0: none): with one, the watcher also kills the
 * group when the agent writes nothing on the pipe for that long (a frozen agent, or one that
 * lost the control plane: disconnect.stopAfter, node-agent/disconnect.ts).
 */
export const REAPER = [
	"unset PWD OLDPWD",
	"lease=$1",
	"shift",
	"exec 3<&0",
	'"$@" &',
	"child=$!",
	'if [ "$lease" = 0 ] || ! command -v timeout >/dev/null 2>&1; then',
	"  (cat <&3 >/dev/null; kill -KILL -$$ 2>/dev/null) &",
	"else",
	'  (while [ -n "$(timeout --foreground "$lease" head -c 1 <&3 2>/dev/null)" ]; do :; done',
	"   kill -KILL -$$ 2>/dev/null) &",
	"fi",
	"watcher=$!",
	"exec 3<&-",
	"trap 'kill -TERM \"$child\" 2>/dev/null' TERM",
	// A trapped TERM interrupts `wait`: wait again while the command still lives.
	'while :; do wait "$child"; code=$?; kill -0 "$child" 2>/dev/null || break; done',
	'kill "$watcher" 2>/dev/null',
	// Died of a signal: die of the same one, so that the agent sees the signal, not 128+n.
	'if [ "$code" -gt 128 ]; then trap - TERM; kill -s "$(kill -l "$code")" $$; fi',
	'exit "$code"'
].join("\n");

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

export class ProcessReplica {
	private state: ReplicaState = "pending";
	private reason?: string;
	private changedAt: number;
	private restarts = 0;
	private run?: Run;
	private restartTimer?: unknown;
	private stopping = false;
	private lastExit?: string;
	private readonly output: RingBuffer<LogLine>;
	private readonly timers: Timers;
	/** Its working directory and HOME. */
	readonly dir: string;

	constructor(
		readonly spec: ReplicaSpec,
		private readonly options: ProcessReplicaOptions
	) {
		this.timers = options.timers ?? realTimers;
		this.dir = sandboxDir(options.sandbox.root, spec.workloadId, spec.replica);
		this.changedAt = this.timers.now();
		this.output = new RingBuffer(options.maxLogLines ?? 1000);
	}

	status(): ReplicaStatus {
		return {
			workloadId: this.spec.workloadId,
			replica: this.spec.replica,
			fence: this.spec.fence,
			nodeID: this.options.nodeID,
			state: this.state,
			reason: this.reason,
			restarts: this.restarts,
			pid: this.run?.child.pid,
			at: this.changedAt
		};
	}

	/** The newest `limit` lines of output, oldest first. */
	logs(limit = 100): LogLine[] {
		return this.output.newest(limit);
	}

	async start(): Promise<ReplicaStatus> {
		const command = this.spec.process?.command;
		if (command === undefined)
			throw new InvalidInputError(
				`Replica ${this.spec.workloadId}/${this.spec.replica} is a process without a command.`,
				{ workloadId: this.spec.workloadId, replica: this.spec.replica }
			);
		if (!isCommandAllowed(command, this.options.allowedCommands)) {
			const err = new CommandNotAllowedError(command, this.options.nodeID);
			this.setState("failed", err.message);
			throw err;
		}
		try {
			// Fresh for each placement; its restarts keep what it wrote (caches, checkpoints).
			prepareSandbox(this.options.sandbox.dataDir, this.dir, this.options.sandbox.user);
		} catch (err) {
			const reason = `could not prepare its directory ${this.dir}: ${(err as Error).message}`;
			this.setState("failed", reason);
			throw new ServiceUnavailableError(reason, {
				workloadId: this.spec.workloadId,
				replica: this.spec.replica,
				dir: this.dir
			});
		}
		this.setState("starting");
		await this.spawnRun();
		return this.status();
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
		const pid = run?.child.pid;
		if (run && pid !== undefined) {
			signalGroup(pid, "SIGTERM");
			let graceTimer: unknown;
			const graceOver = new Promise<void>(resolve => {
				graceTimer = this.timers.setTimeout(resolve, this.options.stopGrace ?? 5000);
			});
			// Pipes closed and no member left: done before the grace period. A member that closed
			// its pipes, or one that escaped the group holding them, gets the whole grace period.
			const gone = await Promise.race([
				run.closed.then(() => !groupAlive(pid)),
				graceOver.then(() => false)
			]);
			if (!gone) {
				await graceOver;
				signalGroup(pid, "SIGKILL");
			}
			this.timers.clearTimeout(graceTimer);
			await run.exited;
		}
		try {
			removeSandbox(this.dir);
		} catch {
			// Something the replica made that the agent cannot delete: the next agent start
			// clears this node's directories (clearSandboxes), and a new placement starts empty.
		}
		if (this.state !== "stopped")
			this.setState("stopped", this.lastExit ? `stopped (${this.lastExit})` : "stopped");
		return this.status();
	}

	/**
	 * Renews the lease of a replica with disconnect.stopAfter: one byte on its supervisor's
	 * pipe. A pipe that is gone (the replica ended) is no error.
	 */
	renew(): void {
		const stdin = this.run?.child.stdin;
		if (!stdin || stdin.destroyed || !stdin.writable) return;
		stdin.write(".", () => undefined);
	}

	/** Resolves once the process runs or could not start. */
	private spawnRun(): Promise<void> {
		const { command, args } = this.spec.process as NonNullable<ReplicaSpec["process"]>;
		// Through a small shell that ends the replica's whole process group when the agent's end
		// of its stdin closes: an agent killed with SIGKILL leaves nothing running that the
		// scheduler has meanwhile placed elsewhere.
		const env = processEnv(this.spec, this.dir, this.options.env);
		const lease = String((this.spec.disconnect?.stopAfterMs ?? 0) / 1000);
		const user = this.options.sandbox.user;
		// libuv changes into cwd, drops the agent's groups, then sets gid and uid, before exec.
		const as = { cwd: this.dir, env, ...(user ? { uid: user.uid, gid: user.gid } : {}) };
		// A command that is not there is spawned bare, so that it fails as a spawn (ENOENT)
		// rather than as a shell's exit 127.
		const child = findExecutable(command, env.PATH)
			? spawn("/bin/sh", ["-c", REAPER, "isa-replica", lease, command, ...args], {
					detached: true,
					stdio: ["pipe", "pipe", "pipe"],
					...as
				})
			: spawn(command, args, { detached: true, stdio: ["ignore", "pipe", "pipe"], ...as });
		let settle!: () => void;
		const started = new Promise<void>(resolve => (settle = resolve));
		let ended = false;
		const end = (reason: string, failure: boolean) => {
			if (ended) return;
			ended = true;
			this.lastExit = reason;
			if (this.run?.child === child) this.run = undefined;
			this.onExit(child.pid, reason, failure);
			settle();
		};
		const closed = new Promise<void>(resolve => child.once("close", () => resolve()));
		const exit = new Promise<void>(resolve => child.once("exit", () => resolve()));
		// A failed spawn emits "error" and "close" but no "exit".
		this.run = { child, closed, exited: Promise.race([exit, closed]) };
		// The pipe breaks when the replica ends; renew() then writes into nothing.
		child.stdin?.on("error", () => undefined);
		this.capture(child, "stdout");
		this.capture(child, "stderr");
		child.once("spawn", () => {
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

	private capture(child: ChildProcess, stream: LogLine["stream"]): void {
		const lines = new LineSplitter(this.options.maxLineLength ?? 4096, text =>
			this.output.push({ at: this.timers.now(), stream, text })
		);
		const pipe = child[stream];
		if (!pipe) return;
		pipe.setEncoding("utf8");
		pipe.on("data", (chunk: string) => lines.write(chunk));
		pipe.on("end", () => lines.end());
	}

	private onExit(pid: number | undefined, reason: string, failure: boolean): void {
		if (this.stopping) return;
		// Workers the process forked must not outlive it and hold on to its GPUs.
		if (pid !== undefined) signalGroup(pid, "SIGKILL");
		const { policy, maxRestarts } = this.spec.restart;
		const restart = policy === "always" || (policy === "on-failure" && failure);
		if (!restart) return this.setState(failure ? "failed" : "stopped", reason);
		if (maxRestarts > 0 && this.restarts >= maxRestarts)
			return this.setState("failed", `${reason}; gave up after ${this.restarts} restarts`);
		const delay = backoffDelay(
			this.restarts,
			this.options.backoffBase ?? 1000,
			this.options.backoffCap ?? 30000
		);
		this.setState("starting", `${reason}; restarting in ${delay} ms`);
		this.restartTimer = this.timers.setTimeout(() => {
			this.restartTimer = undefined;
			this.restarts++;
			void this.spawnRun();
		}, delay);
	}

	private setState(state: ReplicaState, reason?: string): void {
		this.state = state;
		this.reason = reason;
		this.changedAt = this.timers.now();
		this.options.onStatus?.(this.status());
	}
}
