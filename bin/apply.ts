/**
 * Registers the services and resources of a YAML (or JSON) file through the gateway:
 *
 *   npm run apply -- -f configs/isa-platform.yaml [--dry-run] [--url http://127.0.0.1:3000]
 *
 * The token is ISA_TOKEN (its owner decides: an operator's document registers its tenant's
 * objects, an admin's the cluster's), or an admin token minted with ISA_JWT_SECRET (or the
 * secret the single node keeps in its data directory): whoever holds the secret is an admin, and
 * the platform's file registers the cluster's objects, as ISA_APPLY does. Prints what was created, updated or left as it was.
 */
import fs from "fs";
import { parseArgs } from "util";
import { cliToken } from "./cli-token";
import { loadEnv } from "../services/shared/env";

const USAGE = "usage: npm run apply -- -f FILE [--dry-run] [--url http://127.0.0.1:3000]";

function fail(message: string): never {
	console.error(`apply: ${message}`);
	process.exit(2);
}

async function main(): Promise<void> {
	let values;
	try {
		({ values } = parseArgs({
			options: {
				file: { type: "string", short: "f" },
				"dry-run": { type: "boolean" },
				url: { type: "string" }
			}
		}));
	} catch (err) {
		fail(`${(err as Error).message}\n${USAGE}`);
	}
	if (!values.file) fail(`-f FILE is required.\n${USAGE}`);
	let document: string;
	try {
		document = fs.readFileSync(values.file, "utf8");
	} catch (err) {
		fail(`cannot read ${values.file}: ${(err as Error).message}`);
	}
	const env = loadEnv();
	const base =
		values.url ?? `http://${env.host === "0.0.0.0" ? "127.0.0.1" : env.host}:${env.port}`;
	let res: Response;
	try {
		res = await fetch(`${base}/api/v1/apply${values["dry-run"] ? "?dryRun=true" : ""}`, {
			method: "POST",
			headers: {
				Authorization: `Bearer ${await cliToken("apply", fail)}`,
				"Content-Type": "application/yaml"
			},
			body: document
		});
	} catch (err) {
		fail(
			`no gateway at ${base} (${(err as Error).message}); start one with \`npm start\` or pass --url.`
		);
	}
	const body = (await res.json()) as Record<string, unknown>;
	if (res.status !== 200)
		fail(
			`${res.status} ${body.message ?? ""}${body.data ? `\n${JSON.stringify(body.data, null, 2)}` : ""}`
		);
	const report = body as {
		created: string[];
		updated: string[];
		unchanged: string[];
		changed: boolean;
		dryRun: boolean;
	};
	const line = (what: string, names: string[]) =>
		names.length && console.log(`${what}: ${names.join(", ")}`);
	line(report.dryRun ? "would create" : "created", report.created);
	line(report.dryRun ? "would update" : "updated", report.updated);
	line("unchanged", report.unchanged);
	if (!report.changed) console.log("Nothing changed.");
}

void main();
