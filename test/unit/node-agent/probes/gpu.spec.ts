import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Errors } from "moleculer";
import {
	NVIDIA_SMI_QUERY,
	NoGpuProbe,
	NvidiaSmiProbe,
	parseNvidiaSmiCsv,
	register,
	resolve,
	type GpuProbe
} from "../../../../node-agent/probes/gpu";

const MIB = 1024 ** 2;
const FIXTURES_BIN = path.resolve(__dirname, "../../../fixtures/bin");
const FAKE = path.join(FIXTURES_BIN, "nvidia-smi");

/** The environment under which `nvidia-smi` is the fake one. */
function fakeEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
	return {
		...process.env,
		PATH: `${FIXTURES_BIN}${path.delimiter}${process.env.PATH}`,
		...extra
	};
}

const ONE_H100 =
	"0, GPU-8f1c2a4e-5b3d-7e91-c0a2-3d4e5f6a7b8c, NVIDIA H100 80GB HBM3, 81559, 1, 0, 31\n";

const TWO_H100_PCIE = [
	"0, GPU-1a2b3c4d-0000-1111-2222-333344445555, NVIDIA H100 PCIe, 81559, 20471, 87, 64",
	"1, GPU-6e7f8091-aaaa-bbbb-cccc-ddddeeeeffff, NVIDIA H100 PCIe, 81559, 0, 0, 38",
	""
].join("\n");

const EIGHT_H100 = [
	"0, GPU-3b5a8e02-8f4e-d1c6-3b0c-2f5a1e9b7c10, NVIDIA H100 80GB HBM3, 81559, 74213, 100, 71",
	"1, GPU-9d1f6c3a-27b8-4e0a-5d6c-8a3b9f1e2d41, NVIDIA H100 80GB HBM3, 81559, 74213, 99, 69",
	"2, GPU-c47e2b19-6a5d-83f2-1e7b-4d9c0a6f5e32, NVIDIA H100 80GB HBM3, 81559, 74211, 100, 73",
	"3, GPU-05a9d7e4-b3c1-62f8-9a0d-7e1b3c5f8a93, NVIDIA H100 80GB HBM3, 81559, 74213, 98, 70",
	"4, GPU-e6b3f1a8-4d2c-9e07-b5a1-0c8d2f4e6b74, NVIDIA H100 80GB HBM3, 81559, 4, 0, 33",
	"5, GPU-71c8a5d2-e9f3-0b4a-6c2e-1f7a3d9b5c05, NVIDIA H100 80GB HBM3, 81559, 4, 0, 32",
	"6, GPU-2f9e4b7c-1a6d-5c83-d0f9-6b2e8a4c1d96, NVIDIA H100 80GB HBM3, 81559, 4, 0, 34",
	"7, GPU-a83d0c5f-7e1b-2d94-f3c8-9d5a1b7e3f27, NVIDIA H100 80GB HBM3, 81559, 4, 0, 31"
].join("\n");

describe("parseNvidiaSmiCsv", () => {
	it("finds no GPU in empty output", () => {
		expect(parseNvidiaSmiCsv("")).toEqual({ capacity: [], usage: [] });
		expect(parseNvidiaSmiCsv("\n  \n")).toEqual({ capacity: [], usage: [] });
	});

	it("reads one H100, converting MiB to bytes", () => {
		expect(parseNvidiaSmiCsv(ONE_H100)).toEqual({
			capacity: [
				{
					index: 0,
					uuid: "GPU-8f1c2a4e-5b3d-7e91-c0a2-3d4e5f6a7b8c",
					model: "NVIDIA H100 80GB HBM3",
					memory: 81559 * MIB
				}
			],
			usage: [{ index: 0, utilization: 0, memoryUsed: 1 * MIB, temperature: 31 }]
		});
	});

	it("reads two GPUs", () => {
		const { capacity, usage } = parseNvidiaSmiCsv(TWO_H100_PCIE);
		expect(capacity.map(g => g.model)).toEqual(["NVIDIA H100 PCIe", "NVIDIA H100 PCIe"]);
		expect(capacity.map(g => g.uuid)).toEqual([
			"GPU-1a2b3c4d-0000-1111-2222-333344445555",
			"GPU-6e7f8091-aaaa-bbbb-cccc-ddddeeeeffff"
		]);
		expect(usage).toEqual([
			{ index: 0, utilization: 87, memoryUsed: 20471 * MIB, temperature: 64 },
			{ index: 1, utilization: 0, memoryUsed: 0, temperature: 38 }
		]);
	});

	it("reads eight H100s of a DGX", () => {
		const { capacity, usage } = parseNvidiaSmiCsv(EIGHT_H100);
		expect(capacity.map(g => g.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
		expect(new Set(capacity.map(g => g.uuid)).size).toBe(8);
		for (const gpu of capacity) {
			expect(gpu.model).toBe("NVIDIA H100 80GB HBM3");
			expect(gpu.memory).toBe(81559 * MIB);
		}
		expect(usage.map(u => u.utilization)).toEqual([100, 99, 100, 98, 0, 0, 0, 0]);
		expect(usage[2]).toEqual({
			index: 2,
			utilization: 100,
			memoryUsed: 74211 * MIB,
			temperature: 73
		});
	});

	it("takes [N/A] and [Not Supported] as missing values", () => {
		const output = [
			"0, GPU-aaaaaaaa-0000-0000-0000-000000000000, NVIDIA A100-SXM4-40GB, 40960, [N/A], [N/A], [N/A]",
			"1, GPU-bbbbbbbb-0000-0000-0000-000000000000, NVIDIA GeForce GT 710, [Not Supported], 120, [Not Supported], N/A"
		].join("\n");
		const { capacity, usage } = parseNvidiaSmiCsv(output);
		expect(capacity[0].memory).toBe(40960 * MIB);
		expect(capacity[1].memory).toBe(0);
		expect(usage).toEqual([
			{ index: 0, utilization: 0, memoryUsed: 0, temperature: null },
			{ index: 1, utilization: 0, memoryUsed: 120 * MIB, temperature: null }
		]);
	});

	it("tolerates extra spaces, CRLF line ends and units", () => {
		const output =
			"  3 ,  GPU-cccccccc-0000-0000-0000-000000000000 ,   Tesla V100-SXM2-16GB  ,  16384 MiB , 512 MiB, 7 % , 40  \r\n";
		expect(parseNvidiaSmiCsv(output)).toEqual({
			capacity: [
				{
					index: 3,
					uuid: "GPU-cccccccc-0000-0000-0000-000000000000",
					model: "Tesla V100-SXM2-16GB",
					memory: 16384 * MIB
				}
			],
			usage: [{ index: 3, utilization: 7, memoryUsed: 512 * MIB, temperature: 40 }]
		});
	});

	it("keeps a model name that holds spaces or a comma", () => {
		const output = "0, GPU-dddddddd, NVIDIA RTX 6000 Ada Generation, Rev. 2, 49140, 0, 0, 30";
		const { capacity, usage } = parseNvidiaSmiCsv(output);
		expect(capacity[0].model).toBe("NVIDIA RTX 6000 Ada Generation, Rev. 2");
		expect(capacity[0].memory).toBe(49140 * MIB);
		expect(usage[0].temperature).toBe(30);
	});

	it("refuses a line that is not a GPU row", () => {
		expect(() =>
			parseNvidiaSmiCsv(
				"NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."
			)
		).toThrow(/unexpected line/);
		expect(() =>
			parseNvidiaSmiCsv(
				"index, uuid, name, memory.total [MiB], memory.used [MiB], utilization.gpu [%], temperature.gpu"
			)
		).toThrow(/unexpected line/);
	});
});

describe("the fake nvidia-smi", () => {
	it("answers the probe's query in the requested order", async () => {
		const { execFileSync } = await import("child_process");
		const out = execFileSync(
			FAKE,
			[`--query-gpu=${NVIDIA_SMI_QUERY.join(",")}`, "--format=csv"],
			{
				encoding: "utf8"
			}
		);
		const [header, ...rows] = out.trim().split("\n");
		expect(header).toBe(
			"index, uuid, name, memory.total [MiB], memory.used [MiB], utilization.gpu [%], temperature.gpu"
		);
		expect(rows).toHaveLength(2);
		expect(rows[0]).toMatch(
			/^0, GPU-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}, NVIDIA A100-SXM4-80GB, 81920 MiB, \d+ MiB, \d+ %, \d+$/
		);
		const reordered = execFileSync(
			FAKE,
			["--query-gpu=temperature.gpu,index", "--format=csv,noheader,nounits"],
			{
				encoding: "utf8"
			}
		);
		expect(reordered).toMatch(/^\d+, 0\n\d+, 1\n$/);
	});
});

describe("NvidiaSmiProbe", () => {
	it("reads the GPUs nvidia-smi reports", async () => {
		const result = await new NvidiaSmiProbe({ env: fakeEnv() }).probe();
		expect(result.warning).toBeUndefined();
		expect(result.capacity).toHaveLength(2);
		expect(result.capacity[0]).toMatchObject({
			index: 0,
			model: "NVIDIA A100-SXM4-80GB",
			memory: 81920 * MIB
		});
		expect(result.capacity[0].uuid).not.toBe(result.capacity[1].uuid);
		expect(result.usage).toHaveLength(2);
		expect(result.usage[0].memoryUsed).not.toBe(result.usage[1].memoryUsed);
		for (const u of result.usage) {
			expect(u.utilization).toBeGreaterThanOrEqual(0);
			expect(u.utilization).toBeLessThanOrEqual(100);
			expect(u.temperature).toBeGreaterThan(0);
		}
	});

	it("runs the command it is given", async () => {
		const result = await new NvidiaSmiProbe({
			command: FAKE,
			env: { ...process.env, FAKE_NVIDIA_SMI_GPUS: "8" }
		}).probe();
		expect(result.capacity.map(g => g.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
	});

	it("finds no GPU and says nothing where nvidia-smi is not installed", async () => {
		expect(await new NvidiaSmiProbe({ env: { PATH: "" } }).probe()).toEqual({
			capacity: [],
			usage: []
		});
		expect(await new NvidiaSmiProbe({ command: "/nonexistent/nvidia-smi" }).probe()).toEqual({
			capacity: [],
			usage: []
		});
	});

	it("looks for a missing nvidia-smi again only after missingRecheckMs", async () => {
		const env = { PATH: "" };
		const probe = new NvidiaSmiProbe({ env, missingRecheckMs: 200 });
		expect((await probe.probe()).capacity).toEqual([]);
		// nvidia-smi is on the PATH from now on; the probe finds it only once missingRecheckMs has
		// passed since it last looked.
		env.PATH = `${path.dirname(FAKE)}:${process.env.PATH}`;
		expect((await probe.probe()).capacity).toEqual([]);
		await new Promise(r => setTimeout(r, 250));
		expect((await probe.probe()).capacity).toHaveLength(2);
	});

	it("warns in one line when the driver does not answer", async () => {
		const result = await new NvidiaSmiProbe({
			env: fakeEnv({ FAKE_NVIDIA_SMI_FAIL: "1" })
		}).probe();
		expect(result.capacity).toEqual([]);
		expect(result.usage).toEqual([]);
		expect(result.warning).toMatch(
			/exited with code 9: NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver/
		);
		expect(result.warning).not.toMatch(/\n/);
	});

	it("warns when the driver finds no device", async () => {
		const result = await new NvidiaSmiProbe({
			env: fakeEnv({ FAKE_NVIDIA_SMI_GPUS: "0" })
		}).probe();
		expect(result).toEqual({
			capacity: [],
			usage: [],
			warning: "nvidia-smi exited with code 6: No devices were found"
		});
	});

	it("warns when nvidia-smi cannot be executed", async () => {
		const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gpu-probe-"));
		const notExecutable = path.join(dir, "nvidia-smi");
		fs.writeFileSync(notExecutable, "#!/bin/sh\n", { mode: 0o644 });
		try {
			const result = await new NvidiaSmiProbe({ command: notExecutable }).probe();
			expect(result.capacity).toEqual([]);
			expect(result.warning).toMatch(/could not run: .*EACCES/);
		} finally {
			fs.rmSync(dir, { recursive: true, force: true });
		}
	});

	it("warns when nvidia-smi prints something it cannot parse", async () => {
		const result = await new NvidiaSmiProbe({ command: "echo" }).probe();
		expect(result.capacity).toEqual([]);
		expect(result.warning).toMatch(/unexpected line: "--query-gpu=index,uuid/);
	});

	it("kills nvidia-smi when it hangs", async () => {
		const started = Date.now();
		const result = await new NvidiaSmiProbe({
			env: fakeEnv({ FAKE_NVIDIA_SMI_DELAY: "10" }),
			timeoutMs: 300
		}).probe();
		expect(Date.now() - started).toBeLessThan(5000);
		expect(result).toEqual({
			capacity: [],
			usage: [],
			warning: "nvidia-smi did not answer within 300 ms and was killed."
		});
	});

	it("shares one run between overlapping calls", async () => {
		const probe = new NvidiaSmiProbe({ env: fakeEnv({ FAKE_NVIDIA_SMI_DELAY: "0.2" }) });
		const first = probe.probe();
		expect(probe.probe()).toBe(first);
		expect((await first).capacity).toHaveLength(2);
		const next = probe.probe();
		expect(next).not.toBe(first);
		await next;
	});
});

describe("NoGpuProbe", () => {
	it("finds no GPU", async () => {
		expect(await new NoGpuProbe().probe()).toEqual({ capacity: [], usage: [] });
	});
});

describe("the GPU probe registry", () => {
	it("resolves the built-in probes by name, without case", () => {
		expect(resolve("NvidiaSmi")).toBe(NvidiaSmiProbe);
		expect(resolve("nvidiasmi")).toBe(NvidiaSmiProbe);
		expect(resolve("none")).toBe(NoGpuProbe);
	});

	it("resolves a registered probe", async () => {
		class FixedProbe implements GpuProbe {
			async probe() {
				return {
					capacity: [{ index: 0, uuid: "GPU-fixed", model: "Fixed", memory: 1 }],
					usage: [{ index: 0, utilization: 5, memoryUsed: 0, temperature: null }]
				};
			}
		}
		register("Fixed", FixedProbe);
		const Probe = resolve("fixed");
		expect((await new Probe().probe()).capacity[0].uuid).toBe("GPU-fixed");
	});

	it("refuses an unknown name, listing the known ones", () => {
		expect(() => resolve("amd")).toThrow(Errors.BrokerOptionsError);
		expect(() => resolve("amd")).toThrow(/Invalid GPU probe 'amd': use one of NvidiaSmi, None/);
	});
});
