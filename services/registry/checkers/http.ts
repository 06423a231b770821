import { Agent, request } from "undici";
import { CheckTarget, ProbeChecker, Scope, splitCredentials } from "./base";

/** Any status in `expectStatus`, or else in [200, upTo). */
function statusRule(
	expect: number | number[] | undefined,
	upTo: 300 | 400
): { accepts(status: number): boolean; text: string } {
	if (expect !== undefined) {
		const list = [expect].flat();
		return { accepts: status => list.includes(status), text: list.join(" or ") };
	}
	return {
		accepts: status => status >= 200 && status < upTo,
		text: upTo === 300 ? "2xx" : "2xx or 3xx"
	};
}

/**
 * A GET of endpoint + path, not following redirects: by default any 2xx or 3xx is healthy. It
 * uses its own connection pool, destroyed afterwards, so that no keep-alive socket outlives it.
 * Also the checker of registered external services (their health path as `path`).
 */
export class HttpChecker extends ProbeChecker {
	/** Statuses below this are healthy when the target gives no `expectStatus`. */
	protected readonly healthyBelow: 300 | 400 = 400;

	/** No path: the endpoint URL as written (an http resource may name its health URL whole). */
	protected path(target: CheckTarget): string {
		return target.path ?? "";
	}

	protected async probe(target: CheckTarget, scope: Scope): Promise<void> {
		const { url, user, password } = splitCredentials(target, "http");
		const given = this.path(target);
		const path = given && !given.startsWith("/") ? `/${given}` : given;
		const base = path ? url.href.replace(/\/+$/, "") : url.href;
		const rule = statusRule(target.expectStatus, this.healthyBelow);
		const agent = new Agent({
			connect: { timeout: target.timeoutMs },
			headersTimeout: target.timeoutMs,
			bodyTimeout: target.timeoutMs
		});
		scope.onClose(() => agent.destroy());
		const headers: Record<string, string> = {};
		if (user !== undefined || password !== undefined) {
			const basic = Buffer.from(`${user ?? ""}:${password ?? ""}`).toString("base64");
			headers.authorization = `Basic ${basic}`;
		}
		const shown = path || url.pathname;
		scope.step = `GET ${shown}`;
		const res = await request(base + path, {
			dispatcher: agent,
			headers
		});
		// Read (at most undici's dump limit of) the body, so that closing aborts no live stream.
		await res.body.dump();
		if (!rule.accepts(res.statusCode)) {
			throw new Error(`HTTP ${res.statusCode} from ${shown} (expected ${rule.text})`);
		}
	}
}
