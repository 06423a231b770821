/**
 * A node that cannot start says what and how to fix it in one line on stderr, prints no stack
 * trace, and exits with the status of its cause (bin/exit-codes.ts), so that a supervisor
 * restarts it and an operator knows why. Real processes: `dist/bin/isa.js`.
 */
import fs from "fs";
import net from "net";
import os from "os";
import path from "path";
import { startNode } from "../helpers/cluster";
import { freePort } from "../helpers/servers";

jest.setTimeout(30_000);

/** Starts a node, waits for its exit: the status, and stderr's lines. */
async function exitOf(env: Record<string, string>) {
	const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "isa-exits-"));
	const node = startNode("exits", { ISA_DATA_DIR: dataDir, ...env });
	let stderr = "";
	node.proc.stderr!.on("data", d => (stderr += d));
	const code = await new Promise<number | null>(resolve =>
		node.proc.once("exit", status => resolve(status))
	);
	fs.rmSync(dataDir, { recursive: true, force: true });
	const lines = stderr.trim().split("\n");
	return { code, lines, last: lines[lines.length - 1], output: node.output() };
}

function expectNoStack(lines: string[]) {
	expect(lines.filter(l => /^\s+at /.test(l))).toEqual([]);
}

describe("clear exits", () => {
	it("a busy PORT: exit 4, the address and the fix", async () => {
		const port = await freePort();
		const holder = net.createServer();
		await new Promise<void>(resolve => holder.listen(port, "127.0.0.1", resolve));
		try {
			const { code, lines, last } = await exitOf({ SERVICES: "gateway", PORT: String(port) });
			expect(code).toBe(4);
			expect(last).toBe(
				`IsA Cloud: port ${port} on 127.0.0.1 is in use (EADDRINUSE); stop what holds it or set PORT.`
			);
			expectNoStack(lines);
		} finally {
			holder.close();
		}
	});

	it("a bad setting: exit 2, the variable and what it must be", async () => {
		const port = await exitOf({ SERVICES: "gateway", PORT: "abc" });
		expect(port.code).toBe(2);
		expect(port.lines).toEqual(["IsA Cloud: PORT='abc' is not a number."]);
		const grace = await exitOf({ SERVICES: "gateway", ISA_SHUTDOWN_GRACE: "soon" });
		expect(grace.code).toBe(2);
		expect(grace.last).toMatch(/^IsA Cloud: ISA_SHUTDOWN_GRACE 'soon' is not a duration/);
		expectNoStack(grace.lines);
	});

	it("an unreachable transporter: exit 5 after ISA_TRANSPORTER_TIMEOUT, with the reason", async () => {
		const nats = `nats://127.0.0.1:${await freePort()}`;
		const started = Date.now();
		const { code, lines, last } = await exitOf({
			SERVICES: "nodes",
			TRANSPORTER: nats,
			ISA_TRANSPORTER_TIMEOUT: "1s"
		});
		expect(code).toBe(5);
		expect(Date.now() - started).toBeLessThan(15_000);
		expect(last).toBe(
			`IsA Cloud: cannot reach the transporter ${nats} (connection refused, waited 1s); ` +
				"start it, fix TRANSPORTER, or wait longer with ISA_TRANSPORTER_TIMEOUT."
		);
		expectNoStack(lines);
	});
});
