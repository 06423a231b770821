/** Runs wrk against a URL and reads its summary: requests per second and latency percentiles. */
import { execFile } from "child_process";

export interface WrkResult {
	rps: number;
	p50Ms: number;
	p99Ms: number;
	errors: number;
}

/** "1.23ms" / "850.00us" / "1.20s" → ms. */
export function parseDuration(text: string): number {
	const match = /^([\d.]+)(us|ms|s|m)$/.exec(text.trim());
	if (!match) throw new Error(`wrk printed a duration I cannot read: '${text}'`);
	const n = parseFloat(match[1]);
	return { us: n / 1000, ms: n, s: n * 1000, m: n * 60000 }[match[2] as "us" | "ms" | "s" | "m"];
}

export function parseWrk(output: string): WrkResult {
	const rps = /Requests\/sec:\s+([\d.]+)/.exec(output);
	const p50 = /^\s+50%\s+(\S+)/m.exec(output);
	const p99 = /^\s+99%\s+(\S+)/m.exec(output);
	if (!rps || !p50 || !p99) throw new Error(`Unexpected wrk output:\n${output}`);
	const non2xx = /Non-2xx or 3xx responses:\s+(\d+)/.exec(output);
	const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(
		output
	);
	const errors =
		(non2xx ? Number(non2xx[1]) : 0) +
		(socket ? socket.slice(1).reduce((sum, n) => sum + Number(n), 0) : 0);
	return {
		rps: parseFloat(rps[1]),
		p50Ms: parseDuration(p50[1]),
		p99Ms: parseDuration(p99[1]),
		errors
	};
}

export function wrk(
	url: string,
	opts: { seconds: number; connections: number; headers?: string[]; script?: string }
): Promise<WrkResult> {
	const args = ["-t1", `-c${opts.connections}`, `-d${opts.seconds}s`, "--latency"];
	for (const h of opts.headers ?? []) args.push("-H", h);
	if (opts.script) args.push("-s", opts.script);
	args.push(url);
	return new Promise((resolve, reject) => {
		execFile("wrk", args, { timeout: (opts.seconds + 30) * 1000 }, (err, stdout) => {
			if (err && (err as NodeJS.ErrnoException).code === "ENOENT")
				return reject(new Error("wrk is not installed: apt-get install wrk"));
			if (err) return reject(err);
			try {
				resolve(parseWrk(stdout));
			} catch (e) {
				reject(e);
			}
		});
	});
}
