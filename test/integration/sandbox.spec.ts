/**
 * The workload sandbox with a real node (`npm start`'s entry) as root: a process replica that
 * tries what a hostile workload would (read the JWT secret and the audit key, list the data
 * directory, signal the agent) and prints what happened; it runs as `nobody`, in its own
 * directory under the data directory, with none of the agent's variables. The data directory
 * and its secrets come out owner-only, looser modes found at start tightened.
 */
import fs from "fs";
import os from "os";
import path from "path";
import { writeSecretFile } from "../../services/shared/private-files";
import { passwdEntry } from "../../node-agent/runner/sandbox";
import { freePort } from "../helpers/servers";
import { eventually, NodeProcess, ROOT, startNode } from "../helpers/cluster";

jest.setTimeout(60_000);

const IS_ROOT = process.getuid?.() === 0;
const NOBODY = passwdEntry(fs.readFileSync("/etc/passwd", "utf8"), "nobody");

/** What the replica prints, as one JSON line: every probe's outcome, an error code or "ok". */
const PROBE = `
const fs = require("fs");
const path = require("path");
const [dataDir, agentPid, agentCwd] = process.argv.slice(1);
const attempt = fn => { try { fn(); return "ok"; } catch (err) { return err.code; } };
console.log(JSON.stringify({
	uid: process.getuid(),
	gid: process.getgid(),
	groups: process.getgroups(),
	cwd: process.cwd(),
	env: process.env,
	jwtSecret: attempt(() => fs.readFileSync(path.join(dataDir, "jwt-secret"))),
	auditKey: attempt(() => fs.readFileSync(path.join(dataDir, "audit-key"))),
	store: attempt(() => fs.readFileSync(path.join(dataDir, "isa.db"))),
	listDataDir: attempt(() => fs.readdirSync(dataDir)),
	signalAgent: attempt(() => process.kill(Number(agentPid), 0)),
	termAgent: attempt(() => process.kill(Number(agentPid), "SIGTERM")),
	listAgentCwd: attempt(() => fs.readdirSync(agentCwd)),
	writeHome: attempt(() => fs.writeFileSync(path.join(process.env.HOME, "probe"), "x"))
}));
setInterval(() => {}, 1000);
`;

describe("workload sandbox", () => {
	let dataDir: string;
	let port: number;
	let node: NodeProcess | undefined;

	const start = (env: Record<string, string> = {}) =>
		startNode("sandboxed", {
			ISA_DATA_DIR: dataDir,
			PORT: String(port),
			ISA_REPORT_INTERVAL: "0.5",
			TRANSPORTER: "",
			STORE: "",
			ISA_JWT_SECRET: "",
			ISA_ALLOWED_COMMANDS: process.execPath,
			// Must not reach the replica.
			ISA_AGENT_ONLY_MARKER: "agent-secret-variable",
			...env
		});

	async function api(token: string, url: string, method = "GET", body?: unknown) {
		const res = await fetch(`http://127.0.0.1:${port}${url}`, {
			method,
			headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
			body: body === undefined ? undefined : JSON.stringify(body)
		});
		return { status: res.status, body: (await res.json()) as any };
	}

	beforeEach(async () => {
		// Under os.tmpdir() (1777), which nobody may pass through, as through any data dir's
		// parents it must (see the README's "Workload sandbox").
		dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "isa-sandbox-"));
		port = await freePort();
	});
	afterEach(async () => {
		await node?.stop();
		node = undefined;
		fs.rmSync(dataDir, { recursive: true, force: true });
	});

	const asRoot = IS_ROOT ? it : it.skip;
	if (!IS_ROOT)
		console.warn(
			"sandbox.spec: not root, so the replica-as-another-user test is skipped; run it as root."
		);

	asRoot(
		"runs a replica as nobody in its own directory: no secret, no signal to the agent, none of its env",
		async () => {
			expect(NOBODY).not.toBeNull();
			// The audit key as the audit service keeps it: beside the JWT secret, 0600.
			writeSecretFile(dataDir, "audit-key", "audit-key-bytes");
			// A data directory and a secret left too open: tightened at start, with a warning.
			fs.chmodSync(dataDir, 0o755);
			fs.writeFileSync(path.join(dataDir, "jwt-secret"), "loose-secret\n", { mode: 0o644 });
			fs.chmodSync(path.join(dataDir, "jwt-secret"), 0o644);

			node = start();
			const token = await eventually(
				async () => /export TOKEN=(\S+)/.exec(node!.output())?.[1],
				15_000,
				"the printed admin token"
			);
			await eventually(
				async () => (await api(token, "/api/v1/nodes/sandboxed")).body.status === "ready",
				10_000,
				"node sandboxed ready"
			);
			expect(node.output()).toContain(`${dataDir} was mode 0755; set to 0700 (owner only).`);
			expect(node.output()).toContain(
				`${path.join(dataDir, "jwt-secret")} was mode 0644; set to 0600 (owner only).`
			);
			expect(node.output()).toMatch(/Process replicas run as 'nobody' \(uid 65534/);

			const created = await api(token, "/api/v1/workloads", "POST", {
				name: "hostile",
				kind: "process",
				process: {
					command: process.execPath,
					args: ["-e", PROBE, dataDir, String(node.proc.pid), ROOT],
					env: { MODEL: "tiny" }
				},
				resources: { cpu: 0.1, memory: "64Mi" }
			});
			expect(created.status).toBe(201);
			const id = created.body.id;
			const line = await eventually(
				async () =>
					(await api(token, `/api/v1/workloads/${id}/logs`)).body.items[0]?.lines[0]
						?.text,
				15_000,
				"the probe's output"
			);
			const seen = JSON.parse(line);
			const dir = path.join(dataDir, "workloads", "sandboxed", id, "0");

			expect(seen).toMatchObject({
				uid: NOBODY!.uid,
				gid: NOBODY!.gid,
				cwd: dir,
				jwtSecret: "EACCES",
				auditKey: "EACCES",
				store: "EACCES",
				listDataDir: "EACCES",
				signalAgent: "EPERM",
				termAgent: "EPERM",
				writeHome: "ok"
			});
			// root's supplementary groups are dropped with its uid.
			expect(seen.groups).toEqual([NOBODY!.gid]);
			// Only PATH and LANG of the agent's environment, and what the replica is owed.
			expect(Object.keys(seen.env).sort()).toEqual(
				[
					...["PATH", "LANG"].filter(name => process.env[name] !== undefined),
					"MODEL",
					"HOME",
					"CUDA_VISIBLE_DEVICES",
					"ISA_WORKLOAD_ID",
					"ISA_REPLICA",
					"ISA_TENANT",
					"ISA_CPU",
					"ISA_MEMORY",
					"ISA_GPU_MEMORY"
				].sort()
			);
			expect(seen.env).toMatchObject({ HOME: dir, MODEL: "tiny", ISA_WORKLOAD_ID: id });
			expect(JSON.stringify(seen.env)).not.toContain("agent-secret-variable");
			// The agent's working directory is the repository, readable or not: what matters
			// is that the replica no longer runs in it.
			console.log(
				`sandbox.spec: listing the agent's cwd from the replica: ${seen.listAgentCwd}`
			);

			expect(fs.statSync(dir)).toMatchObject({ uid: NOBODY!.uid, gid: NOBODY!.gid });
			expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
			expect(fs.readFileSync(path.join(dir, "probe"), "utf8")).toBe("x");
			// Owner-only, except search for the workload user's group on the way to its directory.
			expect(fs.statSync(dataDir).mode & 0o777).toBe(0o710);
			for (const secret of ["jwt-secret", "audit-key", "isa.db"])
				expect([secret, fs.statSync(path.join(dataDir, secret)).mode & 0o777]).toEqual([
					secret,
					0o600
				]);
			expect(node.proc.exitCode).toBeNull();

			// Deleting the workload stops the replica for good: its directory goes with it.
			expect((await api(token, `/api/v1/workloads/${id}`, "DELETE")).status).toBe(200);
			await eventually(
				async () => !fs.existsSync(path.dirname(dir)),
				10_000,
				"the replica's directory removed"
			);
		}
	);

	it("refuses to start with an ISA_WORKLOAD_USER it cannot use, saying why", async () => {
		node = start({ ISA_WORKLOAD_USER: "no-such-user-isa" });
		const code = await new Promise<number | null>(resolve => node!.proc.once("exit", resolve));
		expect(code).not.toBe(0);
		expect(node.output()).toContain(
			IS_ROOT
				? "ISA_WORKLOAD_USER='no-such-user-isa' is not a user of this machine."
				: "ISA_WORKLOAD_USER='no-such-user-isa' needs the agent to run as root"
		);
	});
});
