import * as path from "path";
import { NoGpuProbe, NvidiaSmiProbe, type GpuProbe } from "../../../../node-agent/probes/gpu";
import {
	SystemProbe,
	capacityFromFacts,
	cpuPercentBetween,
	cpuTimes
} from "../../../../node-agent/probes/machine";
import type { MachineFacts } from "../../../../services/shared/types";

// The module object itself, not an import's copy of it, so that spies see the probe's calls.
const si = jest.requireActual<typeof import("systeminformation")>("systeminformation");
const FIXTURES_BIN = path.resolve(__dirname, "../../../fixtures/bin");

function fakeNvidiaSmi(extra: NodeJS.ProcessEnv = {}): NvidiaSmiProbe {
	return new NvidiaSmiProbe({
		env: {
			...process.env,
			PATH: `${FIXTURES_BIN}${path.delimiter}${process.env.PATH}`,
			...extra
		}
	});
}

afterEach(() => jest.restoreAllMocks());

describe("SystemProbe on this machine", () => {
	it("reports sane facts", async () => {
		const facts = await new SystemProbe(new NoGpuProbe()).facts();
		expect(facts.hostname).not.toBe("");
		expect(facts.os.platform).toBe(process.platform);
		expect(facts.os.kernel).not.toBe("");
		expect(facts.cpu.cores).toBeGreaterThanOrEqual(1);
		expect(facts.cpu.physicalCores).toBeGreaterThanOrEqual(1);
		expect(facts.cpu.physicalCores).toBeLessThanOrEqual(facts.cpu.cores);
		expect(facts.cpu.speedGHz).toBeGreaterThanOrEqual(0);
		expect(facts.memory.total).toBeGreaterThan(0);
		for (const disk of facts.disks) expect(disk.used).toBeLessThanOrEqual(disk.size);
		expect(facts.network.map(n => n.iface)).not.toContain("lo");
		for (const nic of facts.network)
			expect(nic.speedMbps === null || nic.speedMbps > 0).toBe(true);
		expect(facts.gpus).toEqual([]);
	});

	it("reports usage within bounds", async () => {
		const probe = new SystemProbe(new NoGpuProbe());
		const facts = await probe.facts();
		for (let i = 0; i < 2; i++) {
			const usage = await probe.usage();
			expect(usage.cpuPercent).toBeGreaterThanOrEqual(0);
			expect(usage.cpuPercent).toBeLessThanOrEqual(100);
			expect(usage.cpu).toBeGreaterThanOrEqual(0);
			expect(usage.cpu).toBeLessThanOrEqual(facts.cpu.cores);
			expect(usage.cpu).toBeCloseTo((usage.cpuPercent * facts.cpu.cores) / 100, 6);
			expect(usage.memory).toBeGreaterThan(0);
			expect(usage.memory).toBeLessThanOrEqual(facts.memory.total);
			expect(usage.loadAvg).toHaveLength(3);
			expect(usage.gpus).toEqual([]);
		}
	});

	it("samples usage without the slow probes", async () => {
		const fsSize = jest.spyOn(si, "fsSize");
		const osInfo = jest.spyOn(si, "osInfo");
		const cpu = jest.spyOn(si, "cpu");
		const mem = jest.spyOn(si, "mem");
		await new SystemProbe(new NoGpuProbe()).usage();
		expect(mem).toHaveBeenCalledTimes(1);
		expect(fsSize).not.toHaveBeenCalled();
		expect(osInfo).not.toHaveBeenCalled();
		expect(cpu).not.toHaveBeenCalled();
	});

	it("includes the GPUs nvidia-smi reports", async () => {
		const probe = new SystemProbe(fakeNvidiaSmi());
		const facts = await probe.facts();
		expect(facts.gpus).toHaveLength(2);
		expect(facts.gpus[0]).toMatchObject({
			index: 0,
			model: "NVIDIA A100-SXM4-80GB",
			memory: 81920 * 1024 ** 2
		});
		const usage = await probe.usage();
		expect(usage.gpus.map(g => g.index)).toEqual([0, 1]);
		expect(capacityFromFacts(facts).gpus).toHaveLength(2);
	});

	it("passes a GPU warning on once, not on every sample", async () => {
		const warnings: string[] = [];
		let warning: string | undefined = "nvidia-smi exited with code 9: driver gone";
		const gpu: GpuProbe = { probe: async () => ({ capacity: [], usage: [], warning }) };
		const probe = new SystemProbe(gpu, w => warnings.push(w));
		await probe.facts();
		await probe.usage();
		await probe.usage();
		expect(warnings).toEqual(["nvidia-smi exited with code 9: driver gone"]);
		warning = undefined;
		await probe.usage();
		warning = "nvidia-smi exited with code 9: driver gone";
		await probe.usage();
		expect(warnings).toHaveLength(2);
	});

	it("reports a failing driver as no GPU", async () => {
		const warnings: string[] = [];
		const probe = new SystemProbe(fakeNvidiaSmi({ FAKE_NVIDIA_SMI_FAIL: "1" }), w =>
			warnings.push(w)
		);
		expect((await probe.usage()).gpus).toEqual([]);
		expect(warnings).toHaveLength(1);
		expect(warnings[0]).toMatch(/couldn't communicate with the NVIDIA driver/);
	});
});

describe("capacityFromFacts", () => {
	it("offers all logical cores, all memory and every GPU", () => {
		const gpus = [
			{ index: 0, uuid: "GPU-1", model: "NVIDIA H100 80GB HBM3", memory: 80 * 1024 ** 3 }
		];
		const facts: MachineFacts = {
			hostname: "gpu-01",
			os: {
				platform: "linux",
				distro: "Ubuntu",
				release: "22.04",
				kernel: "6.5.0",
				arch: "x64"
			},
			cpu: { model: "AMD EPYC 9654", cores: 192, physicalCores: 96, speedGHz: 2.4 },
			memory: { total: 1536 * 1024 ** 3 },
			disks: [],
			network: [],
			gpus
		};
		expect(capacityFromFacts(facts)).toEqual({ cpu: 192, memory: 1536 * 1024 ** 3, gpus });
	});
});

describe("cpuPercentBetween", () => {
	const cpu = (user: number, idle: number) => ({
		model: "x",
		speed: 1,
		times: { user, nice: 0, sys: 0, irq: 0, idle }
	});

	it("measures busy time between two samples", () => {
		const a = cpuTimes([cpu(100, 900), cpu(100, 900)]);
		const b = cpuTimes([cpu(150, 950), cpu(200, 900)]);
		expect(a).toEqual({ busy: 200, total: 2000, cores: 2 });
		// Busy time grew by 150 (50 + 100) of 200 elapsed (100 per core): 75%.
		expect(cpuPercentBetween(a, b)).toBe(75);
	});

	it("uses the time since boot without an earlier sample, and never leaves 0–100", () => {
		expect(cpuPercentBetween(null, cpuTimes([cpu(25, 75)]))).toBe(25);
		const same = cpuTimes([cpu(1, 1)]);
		expect(cpuPercentBetween(same, same)).toBe(0);
	});
});
