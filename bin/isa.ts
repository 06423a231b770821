/**
 * Starts one IsA Cloud node: a Moleculer broker configured from the environment
 * (moleculer.config.ts) running the services named in SERVICES (default: all of them).
 *
 *   node dist/bin/isa.js            start (what `npm start` runs)
 *   node dist/bin/isa.js --repl     start, then open the Moleculer REPL on this node
 *   node dist/bin/isa.js --hot      reload a service when its file changes (`npm run dev`)
 *
 * Moleculer's own runner cannot be used as is: SERVICES=agent must find node-agent/.
 */
import path from "path";
import { ServiceBroker } from "moleculer";
import { createBrokerConfig } from "../moleculer.config";
import { ALL_SERVICES, IsaEnv, loadEnv } from "../services/shared/env";
import { prepareRepl } from "../repl/commands";
import { rememberIdentitiesIn } from "../services/shared/store/identity-memory";

const SERVICE_FILES: Record<string, string> = {
	agent: "../node-agent/agent.service",
	nodes: "../services/nodes.service",
	scheduler: "../services/scheduler.service",
	tenants: "../services/tenants.service",
	registry: "../services/registry.service",
	config: "../services/config.service",
	monitor: "../services/monitor.service",
	audit: "../services/audit.service",
	gateway: "../services/gateway.service"
};

export function serviceFiles(env: IsaEnv): string[] {
	return (env.services ?? ALL_SERVICES).map(name =>
		require.resolve(path.join(__dirname, SERVICE_FILES[name]))
	);
}

async function main(): Promise<void> {
	const args = process.argv.slice(2);
	const repl = args.includes("--repl");
	let env: IsaEnv;
	try {
		env = loadEnv();
	} catch (err) {
		console.error(`IsA Cloud: ${(err as Error).message}`);
		process.exit(2);
	}
	// A restarted node still knows which store is its cluster's (services/shared/store/identity.ts).
	rememberIdentitiesIn(env.dataDir);
	const hot = args.includes("--hot");
	const config = createBrokerConfig(env);
	const broker = new ServiceBroker({
		...config,
		// The config lists Moleculer's middlewares itself, so HotReload must be named too.
		middlewares: [...(config.middlewares ?? []), ...(hot ? ["HotReload"] : [])],
		hotReload: hot
	});
	try {
		for (const file of serviceFiles(env)) broker.loadService(file);
	} catch (err) {
		// A bad setting found while creating a service (ISA_NODE_CAPACITY, say): say it plainly.
		console.error(`IsA Cloud: ${(err as Error).message}`);
		process.exit(2);
	}

	let stopping = false;
	const stop = async (signal: string) => {
		if (stopping) return;
		stopping = true;
		broker.logger.info(`${signal}: stopping…`);
		await broker.stop();
		process.exit(0);
	};
	process.on("SIGINT", () => void stop("SIGINT"));
	process.on("SIGTERM", () => void stop("SIGTERM"));

	try {
		await broker.start();
	} catch (err) {
		broker.logger.fatal(`IsA Cloud could not start: ${(err as Error).message}`);
		await broker.stop().catch(() => undefined);
		process.exit(1);
	}
	if (repl) {
		prepareRepl();
		await broker.repl();
	}
}

if (require.main === module) void main();
