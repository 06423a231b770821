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

describe("single node with the embedded store", () => {
	const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "isa-single-"));
	let port: number;
	let node: NodeProcess | undefined;

	const start = () =>
		startNode("solo", {
			ISA_DATA_DIR: dataDir,
			PORT: String(port),
			ISA_REPORT_INTERVAL: "0.5",
			TRANSPORTER: "",
			STORE: "",
			ISA_JWT_SECRET: ""
		});

	async function printedToken(n: NodeProcess): Promise<string> {
		return eventually(
			async () => /export TOKEN=(\S+)/.exec(n.output())?.[1],
			15_000,
			"the printed admin token"
		);
	}

	async function api(token: string, url: string, method = "GET") {
		const res = await fetch(`http://127.0.0.1:${port}${url}`, {
			method,
			headers: { Authorization: `Bearer ${token}` }
		});
		return { status: res.status, body: (await res.json()) as any };
	}

	beforeAll(async () => {
		port = await freePort();
	});
	afterAll(async () => {
		await node?.stop();
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
		const drained = await api(token, "/api/v1/nodes/solo/drain", "POST");
		expect(drained.body.status).toBe("draining");
	});

	it("keeps the state and the secret across a restart", async () => {
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
		// The cordon was kept in the embedded store.
		expect(status).toBe("draining");
	});
});
