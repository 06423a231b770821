import {
	pickWorkload,
	renderAlerts,
	renderAudit,
	renderNodes,
	renderResources,
	renderServices,
	renderTable,
	renderWorkloads
} from "../../../repl/commands";
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

	it("renders alerts, firing first", () => {
		const base = { severity: "warning", op: ">", threshold: 85, since: Date.now() - 5000 };
		const text = renderAlerts([
			{
				...base,
				rule: "GPU too hot",
				series: 'node.gpu.temperature{node="n1",gpu="0"}',
				state: "resolved",
				value: 70
			},
			{
				...base,
				rule: "GPU too hot",
				series: 'node.gpu.temperature{node="n2",gpu="1"}',
				state: "firing",
				value: 91
			}
		]);
		expect(text.split("\n")[2]).toMatch(
			/^FIRING\s+warning\s+GPU too hot\s+cluster\s+node\.gpu\.temperature\{node="n2",gpu="1"\}\s+91 > 85\s+5s ago$/
		);
		expect(renderAlerts([])).toMatch(/All quiet/);
		const mine = renderAlerts(
			[
				{ ...base, rule: "mine", series: "x", state: "firing", value: 90 },
				{ ...base, rule: "theirs", series: "x", state: "firing", value: 90 }
			].map((a, i) => (i ? { ...a, owner: "tenant" as const, tenant: "acme" } : a))
		);
		expect(mine).toMatch(/^FIRING\s+warning\s+theirs\s+acme\s+x/m);
	});

	it("labels resources and services with their owner", () => {
		const health = { status: "healthy", checkedAt: null, latencyMs: 3 };
		const resources = renderResources([
			{ name: "shared-pg", type: "postgres", endpoint: "postgres://***@db", health },
			{
				name: "acme-pg",
				type: "postgres",
				endpoint: "postgres://***@a",
				health,
				owner: "tenant",
				tenant: "acme"
			}
		]);
		expect(resources.split("\n")[0]).toMatch(/^NAME\s+OWNER\s+TYPE/);
		expect(resources).toMatch(/^shared-pg\s+cluster\s+postgres/m);
		expect(resources).toMatch(/^acme-pg\s+acme\s+postgres/m);
		const services = renderServices([
			{
				name: "api",
				type: "http",
				status: "healthy",
				endpoints: [{ url: "http://a" }],
				dependencies: [],
				owner: "tenant",
				tenant: "globex"
			}
		]);
		expect(services).toMatch(/^api\s+globex\s+http\s+healthy\s+http:\/\/a/m);
	});

	it("renders workloads with their placement and the pending reason", () => {
		const text = renderWorkloads([
			{
				id: "1",
				name: "llm",
				tenant: "acme",
				kind: "process",
				status: "pending",
				resources: { cpu: 2, memory: 8 * 1024 ** 3, gpu: 1, gpuMemory: 0 },
				replicas: [
					{ node: "gpu-1", gpus: [0], state: "running" },
					{ node: null, gpus: [], state: "pending", reason: "0/1 nodes fit" }
				]
			}
		]);
		expect(text).toMatch(
			/llm\s+acme\s+process\s+pending\s+1\/2\s+2 cpu, 8Gi, 1 gpu\s+gpu-1\[0\] -\s+0\/1 nodes fit/
		);
	});
});

describe("pickWorkload", () => {
	const w = (id: string, name: string, tenant: string) => ({
		id,
		name,
		tenant,
		kind: "process",
		status: "failed",
		resources: { cpu: 1, memory: 1, gpu: 0, gpuMemory: 0 },
		replicas: []
	});
	const items = [w("id-1", "llm", "acme"), w("id-2", "llm", "globex"), w("id-3", "etl", "acme")];

	it("finds a workload by id, or by a name only one workload has", () => {
		expect(pickWorkload(items, "id-2")).toBe(items[1]);
		expect(pickWorkload(items, "etl")).toBe(items[2]);
	});

	it("says when no workload or several have the name", () => {
		expect(pickWorkload(items, "nope")).toBe("No workload 'nope'.");
		expect(pickWorkload(items, "llm")).toBe(
			"Several workloads are named 'llm' (acme: id-1, globex: id-2); give the id."
		);
	});
});

describe("renderAudit", () => {
	const base = {
		id: "r1",
		seq: 7,
		prev: "",
		hash: "",
		time: "2025-01-31T12:00:00.123Z",
		kind: "request" as const,
		actor: "alice",
		tenant: "t1",
		roles: ["operator"],
		action: "scheduler.create",
		method: "POST",
		route: "/api/v1/workloads",
		path: "/api/v1/workloads",
		target: "w-1",
		source: "127.0.0.1",
		userAgent: null,
		requestId: "q1",
		outcome: { status: 201, succeeded: true },
		durationMs: 3
	};

	it("prints one row per record with its outcome", () => {
		const out = renderAudit([
			base,
			{
				...base,
				seq: 6,
				actor: null,
				tenant: null,
				target: null,
				outcome: { status: 401, errorType: "NO_TOKEN", succeeded: false }
			},
			{ ...base, seq: 5, outcome: { status: null, errorType: "UNKNOWN", succeeded: null } }
		]);
		const lines = out.split("\n");
		expect(lines[0]).toMatch(/^SEQ\s+TIME\s+ACTOR\s+TENANT\s+ACTION\s+TARGET\s+OUTCOME$/);
		expect(lines[2]).toMatch(
			/^7\s+2025-01-31 12:00:00Z\s+alice\s+t1\s+scheduler\.create\s+w-1\s+201 ok$/
		);
		expect(lines[3]).toMatch(/^6 .* -\s+-\s+scheduler\.create\s+-\s+401 NO_TOKEN$/);
		expect(lines[4]).toMatch(/unknown$/);
		expect(renderAudit([])).toBe("No audit records match.");
	});
});
