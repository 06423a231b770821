/**
 * The single-node default, as `npm start` runs it: no transporter, the embedded store, a JWT
 * secret made in the data directory and an admin token printed at start. A restart keeps both
 * the state and the secret.
 */
import fs from "fs";
import os from "os";
import path from "path";
import { freePort } from "../helpers/servers";
import { eventually, NodeProcess, startNode } from "../helpers/cluster";

jest.setTimeout(60_000);

/** A process workload that runs until it is stopped. */
const SLEEPER = {
	name: "sleeper",
	kind: "process",
	process: { command: process.execPath, args: ["-e", "setInterval(() => {}, 1000)"] },
	resources: { cpu: 0.1, memory: "64Mi" }
};

// Each test has a node, a data directory and a port of its own: the restart test makes its
// first run itself instead of continuing the first test's.
describe("single node with the embedded store", () => {
	let dataDir: string;
	let port: number;
	let node: NodeProcess | undefined;

	const start = () =>
		startNode("solo", {
			ISA_DATA_DIR: dataDir,
			PORT: String(port),
			ISA_REPORT_INTERVAL: "0.5",
			TRANSPORTER: "",
			STORE: "",
			ISA_JWT_SECRET: "",
			ISA_ALLOWED_COMMANDS: process.execPath
		});

	async function printedToken(n: NodeProcess): Promise<string> {
		return eventually(
			async () => /export TOKEN=(\S+)/.exec(n.output())?.[1],
			15_000,
			"the printed admin token"
		);
	}

	async function api(token: string, url: string, method = "GET", body?: unknown) {
		const res = await fetch(`http://127.0.0.1:${port}${url}`, {
			method,
			headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
			body: body === undefined ? undefined : JSON.stringify(body)
		});
		return { status: res.status, body: (await res.json()) as any };
	}

	/** The first run that the restart test continues: the token, "sleeper" and the drain. */
	async function firstRun(): Promise<void> {
		node = start();
		const token = await printedToken(node);
		await eventually(
			async () => (await api(token, "/api/v1/nodes/solo")).body.status === "ready",
			10_000,
			"node solo ready"
		);
		expect((await api(token, "/api/v1/workloads", "POST", SLEEPER)).status).toBe(201);
		await eventually(
			async () => (await api(token, "/api/v1/workloads")).body.items[0].status === "running",
			10_000,
			"the workload running"
		);
		expect((await api(token, "/api/v1/nodes/solo/drain", "POST")).body.status).toBe("draining");
	}

	beforeEach(async () => {
		dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "isa-single-"));
		port = await freePort();
	});
	afterEach(async () => {
		await node?.stop();
		node = undefined;
		fs.rmSync(dataDir, { recursive: true, force: true });
	});

	it("starts, prints a working admin token and keeps its secret in the data directory", async () => {
		node = start();
		const token = await printedToken(node);
		const secretFile = path.join(dataDir, "jwt-secret");
		expect(fs.statSync(secretFile).mode & 0o777).toBe(0o600);
		expect(fs.existsSync(path.join(dataDir, "isa.db"))).toBe(true);

		const solo = await eventually(
			async () => (await api(token, "/api/v1/nodes/solo")).body.status === "ready",
			10_000,
			"node solo ready"
		);
		expect(solo).toBe(true);
		const created = await api(token, "/api/v1/workloads", "POST", SLEEPER);
		expect(created.status).toBe(201);
		await eventually(
			async () => (await api(token, "/api/v1/workloads")).body.items[0].status === "running",
			10_000,
			"the workload running"
		);
		const drained = await api(token, "/api/v1/nodes/solo/drain", "POST");
		expect(drained.body.status).toBe("draining");
		// The only node drains: the replica waits, and says why (first that it left the node,
		// then, once no node takes it, what every node lacks).
		const waiting = await eventually(
			async () => {
				const w = (await api(token, "/api/v1/workloads")).body.items[0];
				return (
					w.status === "pending" && /1 node is draining/.test(w.replicas[0].reason) && w
				);
			},
			10_000,
			"the workload pending"
		);
		expect(waiting.replicas[0].reason).toMatch(/1 node is draining/);
	});

	it("keeps the state and the secret across a restart", async () => {
		await firstRun();
		const firstToken = /export TOKEN=(\S+)/.exec(node!.output())![1];
		const secret = fs.readFileSync(path.join(dataDir, "jwt-secret"), "utf8");
		await node!.stop();

		node = start();
		await printedToken(node);
		expect(fs.readFileSync(path.join(dataDir, "jwt-secret"), "utf8")).toBe(secret);
		// The token printed by the first run still works: same secret.
		const status = await eventually(
			async () => {
				const { status, body } = await api(firstToken, "/api/v1/nodes/solo");
				return status === 200 && body.status !== "down" && body.status;
			},
			10_000,
			"node solo back"
		);
		// The cordon and the workload were kept in the embedded store.
		expect(status).toBe("draining");
		expect(
			(await api(firstToken, "/api/v1/workloads")).body.items.map((w: any) => w.name)
		).toEqual(["sleeper"]);
		await api(firstToken, "/api/v1/nodes/solo/uncordon", "POST");
		await eventually(
			async () =>
				(await api(firstToken, "/api/v1/workloads")).body.items[0].status === "running",
			10_000,
			"the workload running again"
		);
	});
});
