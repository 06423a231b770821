/**
 * Bundles the dashboard (services/gateway/dashboard/main.ts and its imports) into
 * services/gateway/public/app.js with a source map: the folder the gateway serves GET / from.
 * Part of `npm run build`, after tsc (which compiles this file to dist/bin/).
 *
 * The bundle is built for the browser, so a Node module imported by the page, directly or
 * through a server module, fails the build instead of failing in the browser.
 */
import path from "path";
import { build } from "esbuild";
import { dashboardDirs, packageRoot } from "../services/gateway/events";

async function main(): Promise<void> {
	const source = path.join(packageRoot(), "services", "gateway", "dashboard");
	const outfile = path.join(dashboardDirs().publicDir, "app.js");
	const result = await build({
		entryPoints: [path.join(source, "main.ts")],
		tsconfig: path.join(source, "tsconfig.json"),
		outfile,
		bundle: true,
		format: "esm",
		platform: "browser",
		target: "es2022",
		minify: true,
		sourcemap: true,
		metafile: true,
		logLevel: "warning"
	});
	const bytes = Object.values(result.metafile.outputs).reduce((n, o) => n + o.bytes, 0);
	console.log(
		`Dashboard: ${path.relative(process.cwd(), outfile)} (${bytes} bytes with its map)`
	);
}

main().catch(err => {
	console.error((err as Error).message);
	process.exitCode = 1;
});
