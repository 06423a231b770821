import {
	clusterUsage,
	gpuUtilization,
	nodePercents
} from "../../../../services/gateway/dashboard/usage";
import { node } from "./fixtures";

describe("dashboard usage", () => {
	const fleet = [
		node("a", { gpus: 2, gpuUtil: 80, cpu: 16 }),
		node("b", { status: "draining", gpus: 4, gpuUtil: 20 }),
		node("c", { status: "down", gpus: 8, gpuUtil: 100 }),
		node("d", { usage: false, allocated: { cpu: 0, memory: 0, gpus: 0 } })
	];

	it("averages every GPU of the nodes that are up, an unreported one as idle", () => {
		expect(gpuUtilization(fleet)).toBeCloseTo((2 * 80 + 4 * 20) / 6);
		const unreported = { ...node("e", { gpus: 2 }), usage: null };
		expect(gpuUtilization([unreported, node("f", { gpus: 2, gpuUtil: 60 })])).toBe(30);
		expect(gpuUtilization([node("g")])).toBeNull();
	});

	it("gives the cluster's usage in percent of what is up", () => {
		const u = clusterUsage(fleet);
		// a: 16 cores, b: 8, d: no report, of 3 × 32 up.
		expect(u.cpu).toBeCloseTo((24 / 96) * 100);
		expect(u.mem).toBeCloseTo((64 / 384) * 100);
		expect(u.totals.nodes).toEqual({ ready: 2, draining: 1, down: 1 });
	});

	it("gives a node's usage as the monitor samples it; zeros before a report", () => {
		expect(nodePercents(node("a", { cpu: 8, gpus: 2, gpuUtil: 40 }))).toEqual({
			cpu: 25,
			mem: 25,
			gpu: 40
		});
		expect(nodePercents(node("b"))).toEqual({ cpu: 25, mem: 25, gpu: null });
		expect(nodePercents(node("c", { usage: false }))).toEqual({ cpu: 0, mem: 0, gpu: null });
	});
});
