import fs from "fs";
import os from "os";
import path from "path";
import { ServiceBroker } from "moleculer";
import { Replica, Runner, replicaFactory } from "../../../../node-agent/runner";
import { ProcessReplica } from "../../../../node-agent/runner/process-runner";
import { ServiceReplica } from "../../../../node-agent/runner/service-runner";
import {
	CommandNotAllowedError,
	ERR_NOT_FOUND,
	NotFoundError
} from "../../../../services/shared/errors";
import type { ReplicaSpec, ReplicaState, ReplicaStatus } from "../../../../services/shared/types";

function spec(fence: number, overrides: Partial<ReplicaSpec> = {}): ReplicaSpec {
	return {
		workloadId: "w1",
		tenant: "acme",
		name: "job",
		replica: 0,
		fence,
		kind: "process",
		process: { command: "python3", args: [], env: {} },
		resources: { cpu: 1, memory: 0, gpu: 0, gpuMemory: 0 },
		gpus: [],
		restart: { policy: "never", maxRestarts: 0 },
		...overrides
	};
}

class FakeReplica implements Replica {
	state: ReplicaState = "pending";

	constructor(
		readonly spec: ReplicaSpec,
		private readonly startDelay = 0
	) {}

	status(): ReplicaStatus {
		const { workloadId, replica, fence } = this.spec;
		return { workloadId, replica, fence, nodeID: "n1", state: this.state, restarts: 0, at: 0 };
	}

	async start() {
		await new Promise(resolve => setTimeout(resolve, this.startDelay));
		this.state = "running";
		return this.status();
	}

	async stop() {
		this.state = "stopped";
		return this.status();
	}

	logs() {
		return [{ at: 0, stream: "stdout" as const, text: `fence ${this.spec.fence}` }];
	}
}

function fakeRunner(startDelay = 0) {
	const created: FakeReplica[] = [];
	const runner = new Runner({
		onStatus: () => undefined,
		createReplica: s => {
			const replica = new FakeReplica(s, startDelay);
			created.push(replica);
			return replica;
		}
	});
	return { runner, created };
}

describe("Runner", () => {
	it("starts once per fence: the same placement again returns the running one", async () => {
		const { runner, created } = fakeRunner();
		const first = await runner.start(spec(1));
		expect(await runner.start(spec(1))).toEqual(first);
		expect(created).toHaveLength(1);
		expect(runner.list()).toEqual([first]);
	});

	it("replaces the running replica with a newer placement", async () => {
		const { runner, created } = fakeRunner();
		await runner.start(spec(1));
		expect(await runner.start(spec(2))).toMatchObject({ fence: 2, state: "running" });
		expect(created.map(r => r.state)).toEqual(["stopped", "running"]);
		expect(runner.list().map(s => s.fence)).toEqual([2]);
	});

	it("ignores a start or a stop older than the running placement", async () => {
		const { runner, created } = fakeRunner();
		await runner.start(spec(5));
		expect(await runner.start(spec(4))).toBeNull();
		expect(await runner.stop("w1", 0, 4)).toBeNull();
		expect(created.map(r => r.state)).toEqual(["running"]);
		expect(runner.logs("w1", 0)).toEqual([expect.objectContaining({ text: "fence 5" })]);
	});

	it("stops a placement for good: a late start of it or an older one is ignored", async () => {
		const { runner, created } = fakeRunner();
		await runner.start(spec(5));
		expect(await runner.stop("w1", 0, 5)).toMatchObject({ fence: 5, state: "stopped" });
		expect(runner.list()).toEqual([]);
		expect(await runner.start(spec(5))).toBeNull();
		expect(await runner.start(spec(3))).toBeNull();
		expect(await runner.start(spec(6))).toMatchObject({ fence: 6, state: "running" });
		expect(created).toHaveLength(2);
	});

	it("remembers a stop that came before its start", async () => {
		const { runner, created } = fakeRunner();
		expect(await runner.stop("w1", 0, 8)).toBeNull();
		expect(await runner.start(spec(8))).toBeNull();
		expect(created).toHaveLength(0);
	});

	it("stops whatever runs when the stop has no fence", async () => {
		const { runner } = fakeRunner();
		await runner.start(spec(5));
		expect(await runner.stop("w1", 0)).toMatchObject({ fence: 5, state: "stopped" });
		expect(await runner.stop("w1", 0)).toBeNull();
		expect(await runner.start(spec(5))).toBeNull();
	});

	it("handles messages for one replica in order, so the newest placement wins", async () => {
		const { runner, created } = fakeRunner(20);
		const results = await Promise.all([runner.start(spec(1)), runner.start(spec(2))]);
		expect(results.map(s => s?.fence)).toEqual([1, 2]);
		expect(created.map(r => [r.spec.fence, r.state])).toEqual([
			[1, "stopped"],
			[2, "running"]
		]);
	});

	it("keeps a refused placement failed: the lists that name it again do not start it", async () => {
		const refused = new CommandNotAllowedError("python3", "n1");
		const created: FakeReplica[] = [];
		const runner = new Runner({
			onStatus: () => undefined,
			createReplica: s => {
				const replica = new FakeReplica(s);
				created.push(replica);
				if (s.fence === 1)
					replica.start = () => {
						replica.state = "failed";
						return Promise.reject(refused);
					};
				return replica;
			}
		});
		await expect(runner.start(spec(1))).rejects.toBe(refused);
		// Every sync names the placement again: its failed status, no new attempt.
		for (let sync = 0; sync < 5; sync++)
			expect(await runner.start(spec(1))).toMatchObject({ fence: 1, state: "failed" });
		expect(created).toHaveLength(1);
		expect(runner.list()).toMatchObject([{ fence: 1, state: "failed" }]);
		// A retry is a new placement: it starts.
		expect(await runner.start(spec(2))).toMatchObject({ fence: 2, state: "running" });
		expect(created.map(r => [r.spec.fence, r.state])).toEqual([
			[1, "stopped"],
			[2, "running"]
		]);
	});

	it("keeps a placement that spent its restarts failed across syncs (maxRestarts holds)", async () => {
		const { runner, created } = fakeRunner();
		await runner.start(spec(3, { restart: { policy: "on-failure", maxRestarts: 2 } }));
		// Its own backoff gave up: the replica reports failed.
		created[0].state = "failed";
		for (let sync = 0; sync < 5; sync++)
			expect(await runner.start(spec(3))).toMatchObject({ fence: 3, state: "failed" });
		expect(created).toHaveLength(1);
		// A stop takes it away for good.
		expect(await runner.stop("w1", 0, 3)).toMatchObject({ state: "stopped" });
		expect(runner.list()).toEqual([]);
	});

	it("stopAll stops every replica", async () => {
		const { runner, created } = fakeRunner();
		await runner.start(spec(1));
		await runner.start(spec(1, { workloadId: "w2" }));
		await runner.start(spec(1, { replica: 1 }));
		await runner.stopAll();
		expect(runner.list()).toEqual([]);
		expect(created.map(r => r.state)).toEqual(["stopped", "stopped", "stopped"]);
	});

	it("keeps an adopted replica for its fence: the same placement is kept, a newer one replaces it", async () => {
		const { runner, created } = fakeRunner();
		const adopted = new FakeReplica(spec(4));
		adopted.state = "running";
		runner.adopt(adopted);
		expect(runner.list()).toMatchObject([{ fence: 4, state: "running" }]);
		// The scheduler's list names the same placement: nothing starts.
		expect(await runner.start(spec(4))).toMatchObject({ fence: 4, state: "running" });
		expect(created).toEqual([]);
		// An older one is ignored; a newer one stops the adopted replica first.
		expect(await runner.start(spec(3))).toBeNull();
		await runner.start(spec(5));
		expect(adopted.state).toBe("stopped");
		expect(runner.list()).toMatchObject([{ fence: 5, state: "running" }]);
	});

	it("hands over: process replicas stay running, detached; the others stop", async () => {
		const { runner, created } = fakeRunner();
		const detached: string[] = [];
		const proc = Object.assign(new FakeReplica(spec(1)), {
			detach: () => detached.push("w1/0"),
			renewLease: () => undefined
		});
		proc.state = "running";
		runner.adopt(proc);
		await runner.start(spec(1, { workloadId: "svc", kind: "service" }));
		expect(await runner.handOver()).toBe(1);
		expect(detached).toEqual(["w1/0"]);
		expect(proc.state).toBe("running");
		expect(created.map(r => r.state)).toEqual(["stopped"]);
	});

	it("renews every lease, and one that fails does not keep the others from theirs", () => {
		const { runner } = fakeRunner();
		const renewed: number[] = [];
		for (const replica of [0, 1, 2])
			runner.adopt(
				Object.assign(new FakeReplica(spec(1, { replica })), {
					renewLease: () => {
						if (replica === 1) throw new Error("disk full");
						renewed.push(replica);
					}
				})
			);
		const errors: string[] = [];
		runner.renewLeases(err => errors.push(err.message));
		expect(renewed).toEqual([0, 2]);
		expect(errors).toEqual(["disk full"]);
	});

	it("has no logs for a replica it does not run", () => {
		const { runner } = fakeRunner();
		expect(() => runner.logs("w1", 0)).toThrow(NotFoundError);
		try {
			runner.logs("w1", 0);
		} catch (err) {
			expect(err).toMatchObject({ code: 404, type: ERR_NOT_FOUND, data: { id: "w1/0" } });
		}
	});
});

describe("replicaFactory", () => {
	const broker = new ServiceBroker({ logger: false });
	const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "isa-factory-"));
	const sandbox = { dataDir, root: path.join(dataDir, "workloads", "n1"), user: null };
	const statuses: ReplicaStatus[] = [];
	const runner = new Runner({
		onStatus: status => statuses.push(status),
		createReplica: replicaFactory({
			broker,
			allowedCommands: [process.execPath],
			serviceDirs: [path.resolve(__dirname, "../../../fixtures/workloads")],
			sandbox,
			process: { stopGrace: 1000 }
		})
	});

	beforeAll(() => broker.start());
	afterAll(async () => {
		await broker.stop();
		fs.rmSync(dataDir, { recursive: true, force: true });
	});

	it("picks the replica by kind", () => {
		const make = replicaFactory({ broker, allowedCommands: [], serviceDirs: [], sandbox });
		expect(make(spec(1), () => undefined)).toBeInstanceOf(ProcessReplica);
		expect(make(spec(1, { kind: "service" }), () => undefined)).toBeInstanceOf(ServiceReplica);
	});

	it("runs a process and a service side by side and stops both", async () => {
		const proc = spec(1, {
			process: {
				command: process.execPath,
				args: ["-e", "setInterval(() => {}, 1000)"],
				env: {}
			}
		});
		const service = spec(1, { workloadId: "w2", kind: "service", service: { module: "echo" } });
		expect(await runner.start(proc)).toMatchObject({ state: "running", nodeID: broker.nodeID });
		expect(await runner.start(service)).toMatchObject({ state: "running" });
		await expect(broker.call("echo.say", { text: "hi" })).resolves.toEqual({ said: "hi" });

		await runner.stopAll();
		expect(runner.list()).toEqual([]);
		expect(
			statuses
				.filter(s => s.state === "stopped")
				.map(s => s.workloadId)
				.sort()
		).toEqual(["w1", "w2"]);
		expect(broker.getLocalService("echo")).toBeUndefined();
	});
});
