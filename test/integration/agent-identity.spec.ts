/**
 * An agent obeys the lists of one cluster identity (services/shared/store/identity.ts): a list
 * from a store of another identity (a scheduler that never knew the old store, reading an
 * emptied one) is refused and stops nothing; a later epoch of its cluster (an adoption) is
 * obeyed, and `agent.running` says what runs with the identity the agent knows.
 */
import fs from "fs";
import os from "os";
import path from "path";
import { ServiceBroker } from "moleculer";
import { replicaDigest } from "../../services/shared/replica-digest";
import type { ReplicaSpec } from "../../services/shared/types";
import { eventually } from "../helpers/cluster";

jest.setTimeout(30_000);

const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "isa-agent-identity-"));
// Read by the agent's module when it loads.
process.env.ISA_DATA_DIR = dataDir;
process.env.ISA_NODE_CAPACITY = JSON.stringify({ cpu: 4, memory: "8Gi", gpus: 0 });
process.env.ISA_ALLOWED_COMMANDS = process.execPath;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const AgentService = require("../../node-agent/agent.service").default;

const spec: ReplicaSpec = {
	workloadId: "w1",
	tenant: "acme",
	name: "sleepy",
	replica: 0,
	fence: 1,
	kind: "process",
	process: { command: process.execPath, args: ["-e", "setInterval(() => {}, 1000)"], env: {} },
	resources: { cpu: 1, memory: 1024, gpu: 0, gpuMemory: 0 },
	gpus: [],
	restart: { policy: "never", maxRestarts: 0 }
};

describe("agent and the store's identity", () => {
	const broker = new ServiceBroker({ nodeID: "agent-identity", logger: false });
	broker.createService(AgentService);
	beforeAll(() => broker.start());
	afterAll(async () => {
		await broker.stop();
		fs.rmSync(dataDir, { recursive: true, force: true });
	});

	const ours = { clusterId: "ours", epoch: 1, createdAt: 1 };
	const replicas = () => broker.call<any[], object>("agent.replicas", {});

	it("refuses a list of another cluster, obeys a later epoch of its own", async () => {
		await broker.call("agent.sync", { replicas: [spec], generation: 1, identity: ours });
		await eventually(async () => (await replicas()).length === 1, 10_000, "the replica");

		const refused = await broker
			.call("agent.sync", {
				replicas: [],
				generation: 2,
				identity: { clusterId: "fresh", epoch: 1, createdAt: 2 }
			})
			.catch(err => err);
		expect(refused).toMatchObject({
			code: 503,
			type: "STORE_IDENTITY_MISMATCH",
			data: { problem: "foreign", expected: ours }
		});
		await expect(
			broker.call("agent.syncWorkloads", {
				workloads: [{ workloadId: "w1", replicas: [] }],
				generation: 3,
				identity: { clusterId: "ours", epoch: 0, createdAt: 2 }
			})
		).rejects.toMatchObject({ type: "VALIDATION_ERROR" });
		expect(await replicas()).toHaveLength(1);

		const running = await broker.call<any, object>("agent.running", {});
		expect(running).toMatchObject({ nodeID: "agent-identity", identity: ours });
		expect(running.replicas[0].spec).toMatchObject({ workloadId: "w1", fence: 1 });

		const adopted = { clusterId: "fresh", epoch: 2, createdAt: 3, supersedes: ["ours"] };
		await broker.call("agent.sync", { replicas: [], generation: 4, identity: adopted });
		expect(await replicas()).toHaveLength(0);
		expect((await broker.call<any, object>("agent.running", {})).identity).toEqual(adopted);
	});

	it("answers the reconcile's digest check on what its lists said, for its own cluster only", async () => {
		const adopted = { clusterId: "fresh", epoch: 2, createdAt: 3, supersedes: ["ours"] };
		await broker.call("agent.sync", { replicas: [spec], generation: 10, identity: adopted });
		const check = (digest: string, skip: string[] = [], identity: object = adopted) =>
			broker.call<{ match: boolean }, object>("agent.check", {
				digest,
				generation: 11,
				skip,
				identity
			});
		expect(await check(replicaDigest([spec]))).toEqual({ match: true });
		expect(await check(replicaDigest([{ ...spec, fence: 2 }]))).toEqual({ match: false });
		expect(await check(replicaDigest([]), ["w1"])).toEqual({ match: true });
		await expect(check(replicaDigest([spec]), [], ours)).rejects.toMatchObject({
			type: "STORE_IDENTITY_MISMATCH"
		});
		await broker.call("agent.sync", { replicas: [], generation: 12, identity: adopted });
	});
});
