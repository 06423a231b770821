/**
 * What the node agent knows of its machine: static facts, probed once at start, and usage,
 * sampled every report interval. Built on systeminformation plus a GPU probe.
 */
import * as os from "os";
import * as si from "systeminformation";
import type { Capacity, MachineFacts, Usage } from "../../services/shared/types";
import type { GpuProbe, GpuProbeResult } from "./gpu";

export interface MachineProbe {
	facts(): Promise<MachineFacts>;
	usage(): Promise<Usage>;
}

export class SystemProbe implements MachineProbe {
	private lastWarning: string | undefined;
	private lastCpu: CpuTimes | null = null;

	/**
	 * @param onGpuWarning called when the GPU probe starts failing or fails differently, not on
	 * every sample, so that the agent can log it without repeating itself every few seconds.
	 */
	constructor(
		private readonly gpu: GpuProbe,
		private readonly onGpuWarning?: (warning: string) => void
	) {}

	async facts(): Promise<MachineFacts> {
		const [cpu, mem, disks, ifaces, osInfo, gpus] = await Promise.all([
			si.cpu(),
			si.mem(),
			si.fsSize(),
			si.networkInterfaces(),
			si.osInfo(),
			this.probeGpus()
		]);
		return {
			hostname: os.hostname(),
			os: {
				platform: osInfo.platform,
				distro: osInfo.distro,
				release: osInfo.release,
				kernel: osInfo.kernel,
				arch: osInfo.arch
			},
			cpu: {
				model: `${cpu.manufacturer} ${cpu.brand}`.trim(),
				cores: cpu.cores,
				physicalCores: cpu.physicalCores,
				speedGHz: cpu.speedMax || cpu.speed
			},
			memory: { total: mem.total },
			disks: disks.map(d => ({
				mount: d.mount,
				fs: d.fs,
				type: d.type,
				size: d.size,
				used: d.used
			})),
			network: ifaces
				.filter(i => !i.internal && !i.virtual)
				.map(i => ({
					iface: i.iface,
					ip4: i.ip4,
					ip6: i.ip6,
					mac: i.mac,
					// Virtual NICs report -1 where the speed is unknown.
					speedMbps: i.speed !== null && i.speed > 0 ? i.speed : null
				})),
			gpus: gpus.capacity
		};
	}

	/**
	 * Only cheap, asynchronous reads: this runs every report interval beside the node's services.
	 * CPU comes from os.cpus() deltas rather than systeminformation's currentLoad(), which runs
	 * a blocking `cat /proc/stat` (execSync) on Linux and stalled every request for milliseconds.
	 */
	async usage(): Promise<Usage> {
		const [mem, gpus] = await Promise.all([si.mem(), this.probeGpus()]);
		const sample = cpuTimes(os.cpus());
		const cpuPercent = cpuPercentBetween(this.lastCpu, sample);
		this.lastCpu = sample;
		return {
			cpu: (cpuPercent * sample.cores) / 100,
			cpuPercent,
			// `active` leaves out the page cache, which the kernel gives back on demand.
			memory: mem.active,
			gpus: gpus.usage,
			loadAvg: os.loadavg()
		};
	}

	private async probeGpus(): Promise<GpuProbeResult> {
		const result = await this.gpu.probe();
		if (result.warning && result.warning !== this.lastWarning)
			this.onGpuWarning?.(result.warning);
		this.lastWarning = result.warning;
		return result;
	}
}

/** Busy and total CPU time of all cores since boot (ms), from os.cpus(). */
export interface CpuTimes {
	busy: number;
	total: number;
	cores: number;
}

export function cpuTimes(cpus: os.CpuInfo[]): CpuTimes {
	let busy = 0;
	let total = 0;
	for (const { times } of cpus) {
		const all = times.user + times.nice + times.sys + times.irq + times.idle;
		total += all;
		busy += all - times.idle;
	}
	return { busy, total, cores: cpus.length };
}

/** Percent busy between two samples; since boot when there is no earlier sample. */
export function cpuPercentBetween(prev: CpuTimes | null, next: CpuTimes): number {
	const busy = next.busy - (prev?.busy ?? 0);
	const total = next.total - (prev?.total ?? 0);
	if (total <= 0) return 0;
	return Math.min(100, Math.max(0, (busy / total) * 100));
}

/** What the node offers the scheduler: all its logical cores, memory and GPUs. */
export function capacityFromFacts(facts: MachineFacts): Capacity {
	return { cpu: facts.cpu.cores, memory: facts.memory.total, gpus: facts.gpus };
}
