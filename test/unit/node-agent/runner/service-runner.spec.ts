import fs from "fs";
import os from "os";
import path from "path";
import { Errors, ServiceBroker } from "moleculer";
import {
	ServiceReplica,
	parseServiceDirs,
	resolveServiceModule
} from "../../../../node-agent/runner/service-runner";
import {
	ConflictError,
	ERR_MODULE_NOT_ALLOWED,
	ERR_MODULE_NOT_FOUND,
	ModuleNotAllowedError,
	ModuleNotFoundError
} from "../../../../services/shared/errors";
import type { ReplicaSpec, ReplicaStatus } from "../../../../services/shared/types";

const WORKLOADS = path.resolve(__dirname, "../../../fixtures/workloads");
const EMPTY = path.resolve(__dirname, "../../../fixtures/bin");

function serviceSpec(module: string, replica = 0, claimed?: string): ReplicaSpec {
	return {
		workloadId: "w1",
		tenant: "acme",
		name: module,
		replica,
		fence: 3,
		kind: "service",
		service: { module, ...(claimed !== undefined ? { name: claimed } : {}) },
		resources: { cpu: 0.5, memory: 0, gpu: 0, gpuMemory: 0 },
		gpus: [],
		restart: { policy: "never", maxRestarts: 0 }
	};
}

describe("service directories", () => {
	it("parses ISA_SERVICE_DIRS, ./workloads when unset", () => {
		expect(parseServiceDirs(" ./workloads, /opt/isa ,")).toEqual(["./workloads", "/opt/isa"]);
		expect(parseServiceDirs(undefined)).toEqual(["./workloads"]);
		expect(parseServiceDirs(" ")).toEqual(["./workloads"]);
	});

	it("finds a module in the first directory that has it, subdirectories included", () => {
		expect(resolveServiceModule("echo", [EMPTY, WORKLOADS])).toBe(
			path.join(WORKLOADS, "echo.service.js")
		);
		expect(resolveServiceModule("broken", [WORKLOADS])).toBe(path.join(WORKLOADS, "broken.js"));
		expect(resolveServiceModule("nested/hello", [WORKLOADS])).toBe(
			path.join(WORKLOADS, "nested/hello.service.js")
		);
	});

	it.each(["../workloads/echo", "nested/../../workloads/echo", "/etc/passwd", ""])(
		"refuses the module name %j",
		module => {
			const err = (() => {
				try {
					return resolveServiceModule(module, [WORKLOADS]);
				} catch (e) {
					return e;
				}
			})() as ModuleNotAllowedError;
			expect(err).toBeInstanceOf(ModuleNotAllowedError);
			expect(err.code).toBe(403);
			expect(err.type).toBe(ERR_MODULE_NOT_ALLOWED);
			expect(err.data).toEqual({ module, dirs: [WORKLOADS] });
		}
	);

	it("refuses a symlink that leads out of the directory", () => {
		const dir = fs.mkdtempSync(path.join(os.tmpdir(), "isa-workloads-"));
		try {
			fs.symlinkSync(path.join(WORKLOADS, "echo.service.js"), path.join(dir, "echo.js"));
			expect(() => resolveServiceModule("echo", [dir])).toThrow(ModuleNotAllowedError);
		} finally {
			fs.rmSync(dir, { recursive: true });
		}
	});

	it("names the directories searched when a module is not found", () => {
		const err = (() => {
			try {
				return resolveServiceModule("chat", ["test/fixtures/bin", WORKLOADS]);
			} catch (e) {
				return e;
			}
		})() as ModuleNotFoundError;
		expect(err).toBeInstanceOf(ModuleNotFoundError);
		expect(err.code).toBe(404);
		expect(err.type).toBe(ERR_MODULE_NOT_FOUND);
		expect(err.data).toEqual({ module: "chat", dirs: [EMPTY, WORKLOADS] });
		expect(err.message).toContain(`${EMPTY}, ${WORKLOADS}`);
		expect(err.message).toContain("chat.service.js, chat.js, chat.service.ts, chat.ts");
	});
});

describe("ServiceReplica", () => {
	const broker = new ServiceBroker({ logger: false });
	const started: ServiceReplica[] = [];
	let statuses: ReplicaStatus[];

	function replica(module: string, replicaNo = 0, claimed?: string): ServiceReplica {
		const r = new ServiceReplica(serviceSpec(module, replicaNo, claimed), {
			broker,
			serviceDirs: [WORKLOADS],
			onStatus: status => statuses.push(status)
		});
		started.push(r);
		return r;
	}

	beforeAll(() => broker.start());
	afterAll(() => broker.stop());
	beforeEach(() => (statuses = []));
	afterEach(async () => {
		await Promise.all(started.splice(0).map(r => r.stop()));
	});

	it("loads the module into the broker, where its actions answer", async () => {
		const status = await replica("echo").start();
		expect(status).toMatchObject({
			workloadId: "w1",
			replica: 0,
			fence: 3,
			nodeID: broker.nodeID,
			state: "running",
			restarts: 0
		});
		expect(statuses.map(s => s.state)).toEqual(["starting", "running"]);
		await expect(broker.call("echo.say", { text: "hi" })).resolves.toEqual({ said: "hi" });
	});

	it("names the replica's tenant in the service's metadata, for the registry", async () => {
		await replica("echo", 0, "echo").start();
		expect(broker.getLocalService("echo")!.metadata).toMatchObject({ isaTenant: "acme" });
		const listed = broker.registry.getServiceList({ onlyLocal: true }) as Array<{
			name: string;
			metadata: Record<string, unknown>;
		}>;
		expect(listed.find(s => s.name === "echo")?.metadata).toMatchObject({ isaTenant: "acme" });
	});

	it("fails a replica whose module declares another service than the workload claimed", async () => {
		const status = await replica("clash", 0, "clash").start();
		expect(status).toMatchObject({
			state: "failed",
			reason:
				"module 'clash' declares the Moleculer service 'echo', but the workload claimed " +
				"'clash': set service.name to 'echo' in the workload, or change the module's name."
		});
		expect(broker.getLocalService("echo")).toBeUndefined();
		expect(broker.services.some(s => s.name === "echo")).toBe(false);
	});

	it("loads a factory export from a subdirectory", async () => {
		await replica("nested/hello").start();
		await expect(broker.call("hello.hi")).resolves.toBe("hi");
	});

	it("stop destroys the service, and a later start loads it again", async () => {
		const first = replica("echo");
		await first.start();
		expect((await first.stop()).state).toBe("stopped");
		expect(statuses.map(s => s.state)).toEqual(["starting", "running", "stopped"]);
		expect(broker.getLocalService("echo")).toBeUndefined();
		await expect(broker.call("echo.say", { text: "hi" })).rejects.toBeInstanceOf(
			Errors.ServiceNotAvailableError
		);

		await replica("echo").start();
		await expect(broker.call("echo.say", { text: "again" })).resolves.toEqual({
			said: "again"
		});
	});

	it("refuses a second service of the same name and leaves the first running", async () => {
		await replica("echo", 0).start();
		for (const [module, replicaNo] of [
			["echo", 1],
			["clash", 0]
		] as const) {
			statuses = [];
			const err = await replica(module, replicaNo)
				.start()
				.catch(e => e);
			expect(err).toBeInstanceOf(ConflictError);
			expect(err.code).toBe(409);
			expect(err.data).toEqual({ service: "echo", module, nodeID: broker.nodeID });
			expect(statuses.map(s => [s.state, s.reason])).toEqual([
				["starting", undefined],
				["failed", err.message]
			]);
		}
		expect(broker.services.filter(s => s.name === "echo")).toHaveLength(1);
		await expect(broker.call("echo.say", { text: "still" })).resolves.toEqual({
			said: "still"
		});
	});

	it("reports a service whose started handler fails, and removes it", async () => {
		const status = await replica("failing").start();
		expect(status).toMatchObject({
			state: "failed",
			reason: "could not start: model file missing"
		});
		expect(broker.getLocalService("failing")).toBeUndefined();
		await expect(broker.call("failing.ping")).rejects.toBeInstanceOf(
			Errors.ServiceNotFoundError
		);
	});

	it("reports a module that throws while it loads", async () => {
		const status = await replica("broken").start();
		expect(status.state).toBe("failed");
		expect(status.reason).toBe(
			`could not load ${path.join(WORKLOADS, "broken.js")}: cannot load this module`
		);
	});

	it("reports and throws a refused module name", async () => {
		const err = await replica("../workloads/echo")
			.start()
			.catch(e => e);
		expect(err).toBeInstanceOf(ModuleNotAllowedError);
		expect(statuses.map(s => s.state)).toEqual(["starting", "failed"]);
	});
});

describe("ServiceReplica on a broker not started yet", () => {
	it("runs once the broker has started it", async () => {
		const broker = new ServiceBroker({ logger: false });
		const r = new ServiceReplica(serviceSpec("echo"), { broker, serviceDirs: [WORKLOADS] });
		const starting = r.start();
		expect(r.status().state).toBe("starting");
		await broker.start();
		try {
			expect((await starting).state).toBe("running");
			await expect(broker.call("echo.say", { text: "late" })).resolves.toEqual({
				said: "late"
			});
			await r.stop();
		} finally {
			await broker.stop();
		}
	});
});
