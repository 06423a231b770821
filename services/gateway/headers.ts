/**
 * Security headers on every answer of the gateway: the dashboard, its static files, the API.
 *
 * - `Content-Security-Policy`: the page loads only its own scripts, styles and API
 *   (`'self'`), no inline script or style element, and may not be framed (`frame-ancestors`).
 *   uPlot and the page set styles through `element.style` (CSSOM), which `style-src` does not
 *   govern; the favicon is a `data:` URL. On a JSON answer the policy does nothing harmful.
 * - `X-Content-Type-Options: nosniff`: a JSON or text answer is never run as a script.
 * - `Referrer-Policy: no-referrer`: the dashboard's URLs never leave in a Referer.
 * - `Strict-Transport-Security` when the gateway serves HTTPS: browsers that saw it once come
 *   back over HTTPS only, for a year. Not sent over plain HTTP, where browsers ignore it.
 */
import type { ServerResponse } from "http";

export const CONTENT_SECURITY_POLICY = [
	"default-src 'self'",
	"script-src 'self'",
	"style-src 'self'",
	"img-src 'self' data:",
	"connect-src 'self'",
	"object-src 'none'",
	"base-uri 'none'",
	"form-action 'self'",
	"frame-ancestors 'none'"
].join("; ");

/** One year, as the HSTS preload list asks. */
export const HSTS = "max-age=31536000";

/** The headers every answer carries, as [name, value]; HSTS only when serving HTTPS. */
export function securityHeaders(https: boolean): ReadonlyArray<readonly [string, string]> {
	const headers: [string, string][] = [
		["Content-Security-Policy", CONTENT_SECURITY_POLICY],
		["X-Content-Type-Options", "nosniff"],
		["Referrer-Policy", "no-referrer"]
	];
	if (https) headers.push(["Strict-Transport-Security", HSTS]);
	return headers;
}

/** `handler`, with the headers set before it answers. */
export function withSecurityHeaders<Req, Res extends Pick<ServerResponse, "setHeader">>(
	handler: (req: Req, res: Res) => void,
	headers: ReadonlyArray<readonly [string, string]>
): (req: Req, res: Res) => void {
	return (req, res) => {
		for (const [name, value] of headers) res.setHeader(name, value);
		handler(req, res);
	};
}
