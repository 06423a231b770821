/**
 * Adopts the store after it lost the cluster's identity (restarted empty, restored from an old
 * backup, another cluster's): asks the gateway to write the identity anew and re-register what
 * the agents still run (POST /api/v1/cluster/adopt, services/scheduler/adopt.ts).
 *
 *   npm run adopt [-- --force] [--url http://127.0.0.1:3000]
 *
 * --force adopts even when an agent does not answer (its replicas are then forgotten and
 * stopped). The token is ISA_TOKEN (an admin's), or an admin token minted with ISA_JWT_SECRET
 * or the secret a single node keeps in its data directory. Prints what was re-registered.
 */
import { parseArgs } from "util";
import { cliToken } from "./cli-token";
import { loadEnv } from "../services/shared/env";

const USAGE = "usage: npm run adopt [-- --force] [--url http://127.0.0.1:3000]";

function fail(message: string): never {
	console.error(`adopt: ${message}`);
	process.exit(2);
}

async function main(): Promise<void> {
	let values;
	try {
		({ values } = parseArgs({
			options: { force: { type: "boolean" }, url: { type: "string" } }
		}));
	} catch (err) {
		fail(`${(err as Error).message}\n${USAGE}`);
	}
	const env = loadEnv();
	const base =
		values.url ?? `http://${env.host === "0.0.0.0" ? "127.0.0.1" : env.host}:${env.port}`;
	let res: Response;
	try {
		res = await fetch(`${base}/api/v1/cluster/adopt`, {
			method: "POST",
			headers: {
				Authorization: `Bearer ${await cliToken("adopt", fail)}`,
				"Content-Type": "application/json"
			},
			body: JSON.stringify(values.force ? { force: true } : {})
		});
	} catch (err) {
		fail(`no gateway at ${base} (${(err as Error).message}); pass --url.`);
	}
	const body = (await res.json()) as Record<string, any>;
	if (res.status !== 200)
		fail(
			`${res.status} ${body.message ?? ""}${body.data ? `\n${JSON.stringify(body.data, null, 2)}` : ""}`
		);
	console.log(
		`Adopted: cluster ${body.identity.clusterId}, epoch ${body.identity.epoch}. ` +
			`Re-registered ${body.workloads.length} workload(s) with ${body.replicas} running replica(s) ` +
			`from ${body.nodes.length} agent(s).`
	);
	for (const s of body.skipped as Array<{ workloadId: string; reason: string }>)
		console.log(`skipped ${s.workloadId}: ${s.reason}`);
	if (body.unreachable.length)
		console.log(`not asked (no answer): ${body.unreachable.join(", ")}`);
}

void main();
