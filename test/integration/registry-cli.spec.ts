/**
 * The registry as a user meets it on one node: ISA_APPLY registers the shipped platform file at
 * start, `npm run apply` applies it again and says nothing changed, and the REPL's `resources`,
 * `services` and `health` commands show it.
 */
import { spawnSync } from "child_process";
import fs from "fs";
import os from "os";
import path from "path";
import { mintToken } from "../../services/gateway/jwt";
import { freePort } from "../helpers/servers";
import { ENTRY, eventually, NodeProcess, ROOT, startNode } from "../helpers/cluster";

const SECRET = "registry-cli-secret";
jest.setTimeout(60_000);

describe("registry from the command line", () => {
	const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "isa-regcli-"));
	let node: NodeProcess;
	let port: number;
	let token: string;

	const get = async (url: string) =>
		(
			await fetch(`http://127.0.0.1:${port}${url}`, {
				headers: { Authorization: `Bearer ${token}` }
			})
		).json() as Promise<any>;

	/** The five resources of configs/isa-platform.yaml registered, once the node has applied it. */
	const fiveResources = () =>
		eventually(
			async () => {
				const body = await get("/api/v1/resources");
				return body.total === 5 && body;
			},
			15_000,
			"5 resources"
		);

	/** The first health checks done: PostgreSQL runs on this machine, nothing listens for Neo4j. */
	const healthChecked = () =>
		eventually(
			async () => {
				const body = await get("/api/v1/resources");
				const by = Object.fromEntries(
					body.items.map((r: any) => [r.name, r.health.status])
				);
				return by.isa_mcp_postgres === "healthy" && by.isa_mcp_graph === "unhealthy";
			},
			20_000,
			"postgres healthy and neo4j unhealthy"
		);

	// The node, started with ISA_APPLY, is what every test reads; nothing else registers the
	// platform file before the tests, so the first test still sees what the start applied.
	beforeAll(async () => {
		port = await freePort();
		token = await mintToken({
			secret: SECRET,
			sub: "v",
			tenant: "default",
			roles: ["viewer"],
			ttl: 600
		});
		node = startNode(
			"solo",
			{
				ISA_DATA_DIR: dataDir,
				PORT: String(port),
				ISA_JWT_SECRET: SECRET,
				TRANSPORTER: "",
				STORE: "",
				ISA_APPLY: path.join(ROOT, "configs/isa-platform.yaml")
			},
			ENTRY,
			["--repl"]
		);
		await fiveResources();
	});
	afterAll(async () => {
		await node?.stop();
		fs.rmSync(dataDir, { recursive: true, force: true });
	});

	it("applies configs/isa-platform.yaml at start (ISA_APPLY) and checks every resource", async () => {
		const resources = await fiveResources();
		expect(resources.items.map((r: any) => r.name).sort()).toEqual([
			"isa_mcp_analytics",
			"isa_mcp_graph",
			"isa_mcp_objects",
			"isa_mcp_postgres",
			"isa_mcp_vector"
		]);
		await healthChecked();
		const agent = await get("/api/v1/services/isa_agent");
		expect(agent.dependencyTree.dependencies.map((d: any) => d.name)).toEqual([
			"isa_model",
			"isa_mcp_postgres",
			"isa_mcp_vector"
		]);
	});

	it("applies it again with `npm run apply` and changes nothing", () => {
		const res = spawnSync(
			process.execPath,
			[path.join(ROOT, "dist/bin/apply.js"), "-f", "configs/isa-platform.yaml"],
			{
				cwd: ROOT,
				env: {
					...process.env,
					PORT: String(port),
					ISA_JWT_SECRET: SECRET,
					HOST: "127.0.0.1"
				},
				encoding: "utf8"
			}
		);
		expect(res.stderr).toBe("");
		expect(res.status).toBe(0);
		expect(res.stdout).toMatch(/unchanged: .*service\/isa_agent/);
		expect(res.stdout).toMatch(/Nothing changed\./);
		const bad = spawnSync(process.execPath, [path.join(ROOT, "dist/bin/apply.js")], {
			cwd: ROOT,
			encoding: "utf8"
		});
		expect(bad.status).toBe(2);
		expect(bad.stderr).toMatch(/-f FILE is required/);
	});

	it("shows resources, services and health in the REPL", async () => {
		// The health table shows the checks' results, so they must have run.
		await healthChecked();
		const marker = node.output().length;
		node.proc.stdin!.write("resources\nservices\nhealth\n");
		await eventually(
			async () => {
				const out = node.output().slice(marker);
				return (
					/NAME\s+OWNER\s+TYPE\s+ENDPOINT\s+HEALTH/.test(out) &&
					/isa_mcp_postgres\s+cluster\s+postgres\s+postgres:\/\/postgres@127\.0\.0\.1:5432\/postgres\s+healthy/.test(
						out
					) &&
					/isa_agent\s+cluster\s+http\s+\w+\s+http:\/\/127\.0\.0\.1:8080\s+isa_model, isa_mcp_postgres, isa_mcp_vector/.test(
						out
					) &&
					/KIND\s+NAME\s+OWNER\s+TARGET\s+STATUS/.test(out) &&
					/resource\s+isa_mcp_graph\s+cluster\s+bolt:\/\/127\.0\.0\.1:7687\s+unhealthy/.test(
						out
					)
				);
			},
			10_000,
			"the three tables"
		);
	});
});
