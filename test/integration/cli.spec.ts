/** The command-line tools as a user runs them: `npm run token` and `npm run repl`. */
import { spawnSync } from "child_process";
import fs from "fs";
import os from "os";
import path from "path";
import { TokenVerifier } from "../../services/gateway/jwt";
import { loadOrCreateSecret } from "../../services/gateway/secret";
import { ROOT } from "../helpers/cluster";

function run(script: string, args: string[], env: Record<string, string>) {
	return spawnSync(process.execPath, [path.join(ROOT, "dist/bin", script), ...args], {
		cwd: ROOT,
		env: { ...process.env, ...env },
		encoding: "utf8"
	});
}

describe("npm run token", () => {
	it("mints a token the gateway accepts, with the tenant and roles asked for", async () => {
		const res = run(
			"token.js",
			[
				"--tenant",
				"acme",
				"--role",
				"operator",
				"--role",
				"viewer",
				"--sub",
				"ann",
				"--ttl",
				"1h"
			],
			{
				ISA_JWT_SECRET: "cli-secret"
			}
		);
		expect(res.status).toBe(0);
		const principal = await new TokenVerifier({ secret: "cli-secret" }).verify(
			res.stdout.trim()
		);
		expect(principal).toMatchObject({
			sub: "ann",
			tenant: "acme",
			roles: ["operator", "viewer"]
		});
		expect(principal.exp - Date.now() / 1000).toBeGreaterThan(3500);
	});

	it("uses the secret the single node keeps in its data directory", async () => {
		const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "isa-cli-"));
		const { secret } = loadOrCreateSecret(dataDir);
		const res = run("token.js", ["--tenant", "t", "--role", "admin"], {
			ISA_DATA_DIR: dataDir,
			ISA_JWT_SECRET: ""
		});
		expect(res.status).toBe(0);
		expect(await new TokenVerifier({ secret }).verify(res.stdout.trim())).toMatchObject({
			tenant: "t",
			roles: ["admin"]
		});
		fs.rmSync(dataDir, { recursive: true, force: true });
	});

	it.each([
		[["--role", "admin"], /--tenant is required/],
		[["--tenant", "t"], /at least one --role/],
		[["--tenant", "t", "--role", "root"], /unknown role root/],
		[["--tenant", "t", "--role", "admin", "--ttl", "soon"], /not a duration/]
	])("refuses %p with the usage", (args, message) => {
		const res = run("token.js", args, { ISA_JWT_SECRET: "s" });
		expect(res.status).toBe(2);
		expect(res.stderr).toMatch(message);
		expect(res.stderr).toMatch(/usage: npm run -s token/);
	});

	it("says how to get a secret when there is none", () => {
		const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "isa-cli-"));
		const res = run("token.js", ["--tenant", "t", "--role", "admin"], {
			ISA_DATA_DIR: dataDir,
			ISA_JWT_SECRET: ""
		});
		expect(res.status).toBe(2);
		expect(res.stderr).toMatch(/start the node once/);
		fs.rmSync(dataDir, { recursive: true, force: true });
	});
});

describe("npm run repl", () => {
	it("explains what to do when there is no cluster to join", () => {
		const res = run("repl.js", [], { TRANSPORTER: "" });
		expect(res.status).toBe(2);
		expect(res.stderr).toMatch(/npm start -- --repl/);
	});
});

describe("npm start", () => {
	it("stops with the reason on a bad setting", () => {
		const res = run("isa.js", [], { SERVICES: "agent,sheduler" });
		expect(res.status).toBe(2);
		expect(res.stderr).toMatch(/unknown services: sheduler/);
		const bad = run("isa.js", [], { ISA_NODE_CAPACITY: '{"cpu": 4}', SERVICES: "agent" });
		expect(bad.status).toBe(2);
		expect(bad.stderr).toMatch(/ISA_NODE_CAPACITY/);
	});
});
