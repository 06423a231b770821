import { renderNodes, renderTable } from "../../../services/shared/repl-commands";
import type { NodeInfo } from "../../../services/shared/types";

describe("REPL tables", () => {
	it("pads columns to the widest cell", () => {
		expect(renderTable(["A", "BB"], [["xxx", "y"]])).toBe("A    BB\n---  --\nxxx  y");
	});

	it("renders nodes with capacity and usage", () => {
		const node: NodeInfo = {
			id: "gpu-1",
			hostname: "gpu-1",
			status: "ready",
			labels: {},
			capacity: {
				cpu: 16,
				memory: 64 * 1024 ** 3,
				gpus: [
					{ index: 0, uuid: "GPU-0", model: "NVIDIA A100", memory: 80 * 1024 ** 3 },
					{ index: 1, uuid: "GPU-1", model: "NVIDIA A100", memory: 80 * 1024 ** 3 }
				]
			},
			usage: {
				cpu: 4,
				cpuPercent: 25,
				memory: 16 * 1024 ** 3,
				loadAvg: [1, 1, 1],
				gpus: [
					{ index: 0, utilization: 90, memoryUsed: 1, temperature: 60 },
					{ index: 1, utilization: 5, memoryUsed: 1, temperature: 40 }
				]
			},
			allocated: { cpu: 0, memory: 0, gpus: 0 },
			lastSeen: 0,
			reportInterval: 2000,
			cordoned: false
		};
		const text = renderNodes([
			node,
			{
				...node,
				id: "cpu-1",
				status: "down",
				usage: null,
				capacity: { ...node.capacity, gpus: [] }
			}
		]);
		expect(text).toContain("gpu-1  ready");
		expect(text).toMatch(/2× NVIDIA A100\s+25%\s+25%\s+90% 5%/);
		expect(text).toMatch(/cpu-1\s+down\s+16 cores\s+64Gi\s+-\s+-\s+-\s+-/);
		expect(renderNodes([])).toMatch(/No nodes/);
	});
});
