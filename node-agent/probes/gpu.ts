/**
 * GPU probes of the node agent. NVIDIA GPUs are read through `nvidia-smi` rather than
 * systeminformation.graphics(): on Linux that one only reports GPUs that lspci also lists, so
 * inside containers it finds none. Probes are pluggable by name, in the shape of Moleculer's
 * strategies registry (`register`/`resolve`).
 */
import { execFile, type ExecFileException } from "child_process";
import { Errors } from "moleculer";
import type { GpuCapacity, GpuUsage } from "../../services/shared/types";

export interface GpuProbeResult {
	capacity: GpuCapacity[];
	usage: GpuUsage[];
	/** One line saying why GPUs could not be read; absent when the read worked or none exist. */
	warning?: string;
}

export interface GpuProbe {
	/** Never rejects: a failure is reported as no GPUs plus a warning. */
	probe(): Promise<GpuProbeResult>;
}

export interface NvidiaSmiProbeOptions {
	/** The executable, looked up on `env.PATH`. Default "nvidia-smi". */
	command?: string;
	/** The environment of the child process, PATH included. Default process.env. */
	env?: NodeJS.ProcessEnv;
	/** Kill nvidia-smi after this many ms. Default 5000. */
	timeoutMs?: number;
	/** After nvidia-smi was found missing, look again only this often (ms). Default 60000. */
	missingRecheckMs?: number;
}

/** The fields asked of nvidia-smi, in the order parseNvidiaSmiCsv expects them. */
export const NVIDIA_SMI_QUERY = [
	"index",
	"uuid",
	"name",
	"memory.total",
	"memory.used",
	"utilization.gpu",
	"temperature.gpu"
] as const;

const MIB = 1024 ** 2;

/** nvidia-smi prints "[N/A]", "[Not Supported]", "[Unknown Error]"… where it has no value. */
function text(cell: string): string | null {
	return cell === "" || /^\[.*\]$/.test(cell) || /^n\/a$/i.test(cell) ? null : cell;
}

function number(cell: string): number | null {
	const value = text(cell) === null ? NaN : parseFloat(cell);
	return Number.isFinite(value) ? value : null;
}

/**
 * GPUs from the output of `nvidia-smi --query-gpu=<NVIDIA_SMI_QUERY>
 * --format=csv,noheader,nounits`. Throws on a line that is not a GPU row.
 */
export function parseNvidiaSmiCsv(output: string): { capacity: GpuCapacity[]; usage: GpuUsage[] } {
	const capacity: GpuCapacity[] = [];
	const usage: GpuUsage[] = [];
	const lines = output
		.split(/\r?\n/)
		.map(line => line.trim())
		.filter(line => line !== "");
	for (const line of lines) {
		const cells = line.split(",").map(cell => cell.trim());
		const index = number(cells[0]);
		if (cells.length < NVIDIA_SMI_QUERY.length || index === null)
			throw new Error(`nvidia-smi printed an unexpected line: "${line}"`);
		// Model names are free text: should one hold a comma, it is all that lies between the
		// uuid and the four numeric fields.
		const [memoryTotal, memoryUsed, utilization, temperature] = cells.slice(-4).map(number);
		capacity.push({
			index,
			uuid: text(cells[1]) ?? `GPU-${index}`,
			model: text(cells.slice(2, -4).join(", ")) ?? "Unknown GPU",
			memory: Math.round((memoryTotal ?? 0) * MIB)
		});
		usage.push({
			index,
			utilization: utilization ?? 0,
			memoryUsed: Math.round((memoryUsed ?? 0) * MIB),
			temperature
		});
	}
	return { capacity, usage };
}

function firstLine(...outputs: string[]): string {
	for (const output of outputs) {
		const line = output
			.split(/\r?\n/)
			.map(l => l.trim())
			.find(l => l !== "");
		if (line) return line;
	}
	return "";
}

export class NvidiaSmiProbe implements GpuProbe {
	private readonly command: string;
	private readonly env: NodeJS.ProcessEnv | undefined;
	private readonly timeoutMs: number;
	private running: Promise<GpuProbeResult> | null = null;
	private readonly missingRecheckMs: number;
	/** When nvidia-smi was last found missing: forking for it every report is wasted work. */
	private missingSince: number | null = null;

	constructor(options: NvidiaSmiProbeOptions = {}) {
		this.command = options.command ?? "nvidia-smi";
		this.env = options.env;
		this.timeoutMs = options.timeoutMs ?? 5000;
		this.missingRecheckMs = options.missingRecheckMs ?? 60_000;
	}

	probe(): Promise<GpuProbeResult> {
		// A driver installed while the agent runs is seen within missingRecheckMs.
		if (this.missingSince !== null && Date.now() - this.missingSince < this.missingRecheckMs)
			return Promise.resolve({ capacity: [], usage: [] });
		// The agent polls every few seconds; a hung driver must not pile up one nvidia-smi per poll.
		this.running ??= this.run().finally(() => {
			this.running = null;
		});
		return this.running;
	}

	private run(): Promise<GpuProbeResult> {
		const args = [`--query-gpu=${NVIDIA_SMI_QUERY.join(",")}`, "--format=csv,noheader,nounits"];
		return new Promise(resolve => {
			execFile(
				this.command,
				args,
				{ env: this.env, timeout: this.timeoutMs, windowsHide: true },
				(error, stdout, stderr) => {
					// No nvidia-smi is how a machine without NVIDIA GPUs looks: nothing to warn about.
					if (error?.code === "ENOENT") {
						this.missingSince = Date.now();
						return resolve({ capacity: [], usage: [] });
					}
					this.missingSince = null;
					if (error) {
						const warning = this.describe(error, stdout, stderr);
						return resolve({ capacity: [], usage: [], warning });
					}
					try {
						resolve(parseNvidiaSmiCsv(stdout));
					} catch (err) {
						resolve({ capacity: [], usage: [], warning: (err as Error).message });
					}
				}
			);
		});
	}

	private describe(error: ExecFileException, stdout: string, stderr: string): string {
		// Only the timeout kills it: the output is far below maxBuffer.
		if (error.killed)
			return `${this.command} did not answer within ${this.timeoutMs} ms and was killed.`;
		if (typeof error.code === "number") {
			const said = firstLine(stdout, stderr);
			return `${this.command} exited with code ${error.code}${said ? `: ${said}` : "."}`;
		}
		if (error.signal) return `${this.command} was killed by ${error.signal}.`;
		return `${this.command} could not run: ${firstLine(error.message)}`;
	}
}

/** For nodes known to have no GPU, or whose capacity is simulated. */
export class NoGpuProbe implements GpuProbe {
	async probe(): Promise<GpuProbeResult> {
		return { capacity: [], usage: [] };
	}
}

export type GpuProbeClass = new (options?: NvidiaSmiProbeOptions) => GpuProbe;

const probes: Record<string, GpuProbeClass> = {
	NvidiaSmi: NvidiaSmiProbe,
	None: NoGpuProbe
};

/** Adds or replaces a probe class under a name that `resolve` then finds. */
export function register(name: string, cls: GpuProbeClass): void {
	probes[name] = cls;
}

/** The probe class registered under `name`, compared without case. */
export function resolve(name: string): GpuProbeClass {
	const key = Object.keys(probes).find(k => k.toLowerCase() === name.toLowerCase());
	if (!key)
		throw new Errors.BrokerOptionsError(
			`Invalid GPU probe '${name}': use one of ${Object.keys(probes).join(", ")}.`,
			{ type: name }
		);
	return probes[key];
}
