/**
 * IsA nodes as separate OS processes (the built `dist/bin/isa.js`, what `npm start` runs), for
 * cluster tests: each node is a real process that a test can `kill -9` and start again.
 */
import { spawn, ChildProcess } from "child_process";
import path from "path";

// From test/helpers under ts-jest, or from dist/test/helpers when the benchmark runs it.
export const ROOT = path.resolve(
	__dirname,
	__dirname.split(path.sep).includes("dist") ? "../../.." : "../.."
);
export const FAKE_BIN = path.join(ROOT, "test/fixtures/bin");
export const ENTRY = path.join(ROOT, "dist/bin/isa.js");

export interface NodeProcess {
	nodeID: string;
	proc: ChildProcess;
	/** Everything the process printed so far. */
	output(): string;
	/** SIGKILL: no goodbye to the cluster. */
	kill(): Promise<void>;
	/** SIGTERM and wait for a clean exit. */
	stop(): Promise<void>;
}

export function startNode(
	nodeID: string,
	env: Record<string, string>,
	entry = ENTRY,
	args: string[] = []
): NodeProcess {
	const proc = spawn(process.execPath, [entry, ...args], {
		cwd: ROOT,
		env: { ...process.env, NODEID: nodeID, LOGLEVEL: "info", ...env },
		// stdin stays open for nodes started with --repl.
		stdio: ["pipe", "pipe", "pipe"]
	});
	let out = "";
	proc.stdout!.on("data", d => (out += d));
	proc.stderr!.on("data", d => (out += d));
	const exited = new Promise<void>(resolve => proc.once("exit", () => resolve()));
	const send = async (signal: NodeJS.Signals) => {
		if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
		await exited;
	};
	return {
		nodeID,
		proc,
		output: () => out,
		kill: () => send("SIGKILL"),
		stop: () => send("SIGTERM")
	};
}

/** Polls `fn` until it returns a truthy value or the time is up; resolves to that value. */
export async function eventually<T>(
	fn: () => Promise<T | null | undefined | false>,
	timeoutMs: number,
	what: string
): Promise<T> {
	const deadline = Date.now() + timeoutMs;
	let last: unknown;
	for (;;) {
		try {
			const value = await fn();
			if (value) return value;
		} catch (err) {
			last = err;
		}
		if (Date.now() > deadline)
			throw new Error(
				`Timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last}` : ""}`
			);
		await new Promise(r => setTimeout(r, 50));
	}
}
