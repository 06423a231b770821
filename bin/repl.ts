/**
 * Joins the cluster named by TRANSPORTER as a node of its own (no services) and opens the
 * Moleculer REPL with IsA's commands (`nodes`, and Moleculer's `call`, `services`, `info`…).
 */
import os from "os";
import { ServiceBroker } from "moleculer";
import { createBrokerConfig } from "../moleculer.config";
import { loadEnv } from "../services/shared/env";
import { prepareRepl } from "../repl/commands";

async function main(): Promise<void> {
	const env = loadEnv();
	if (!env.transporter) {
		console.error(
			"repl: TRANSPORTER is not set, so there is no cluster to join.\n" +
				"  Single node: `npm start -- --repl` starts the node with its REPL.\n" +
				"  Cluster:     TRANSPORTER=nats://127.0.0.1:4222 npm run repl"
		);
		process.exit(2);
	}
	const broker = new ServiceBroker({
		...createBrokerConfig(env),
		nodeID: env.givenNodeID ?? `repl-${os.hostname()}-${process.pid}`,
		logger: { type: "Console", options: { level: "warn" } }
	});
	await broker.start();
	// Give discovery a moment so that the first command sees the whole cluster.
	await broker.waitForServices(["nodes"], 5000).catch(() => {
		console.error("repl: no `nodes` service answered yet; is a control node running?");
	});
	prepareRepl();
	await broker.repl();
}

void main();
