/**
 * Starts one IsA Cloud node: a Moleculer broker configured from the environment
 * (moleculer.config.ts) running the services named in SERVICES (default: all of them).
 *
 *   node dist/bin/isa.js            start (what `npm start` runs)
 *   node dist/bin/isa.js --repl     start, then open the Moleculer REPL on this node
 *   node dist/bin/isa.js --hot      reload a service when its file changes (`npm run dev`)
 *
 * Moleculer's own runner cannot be used as is: SERVICES=agent must find node-agent/.
 *
 * Before its broker connects, a node takes its NODEID's lease in the store
 * (services/nodes/lease.ts) and exits with status 3 when a live node holds it: connecting
 * would make Moleculer stop the established node on the duplicate INFO packet.
 *
 * A node that cannot start says why in one line and exits with a status by cause
 * (bin/exit-codes.ts). On SIGTERM or SIGINT its gateway drains its HTTP connections first
 * (services/gateway/drain.ts, within ISA_SHUTDOWN_GRACE), then the broker stops; exit 0.
 */
import path from "path";
import type { RedisOptions } from "ioredis";
import { type BrokerOptions, ServiceBroker } from "moleculer";
import { createBrokerConfig } from "../moleculer.config";
import { acquireStore, releaseStore } from "../mixins/store.mixin";
import { redisConnection } from "../services/shared/connections";
import { ALL_SERVICES, IsaEnv, loadEnv } from "../services/shared/env";
import { NodeIdTakenError } from "../services/shared/errors";
import { EXIT, exitCodeOf, exitLine } from "./exit-codes";
import { transporterConnected } from "./transporter-wait";
import { leaseWanted, NodeLease } from "../services/nodes/lease";
import { EVENTS } from "../services/shared/events";
import { prepareRepl } from "../repl/commands";
import { rememberIdentitiesIn } from "../services/shared/store/identity-memory";
import { readTlsFiles } from "../services/gateway/tls";

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

/**
 * This node's NODEID lease, taken before it joins; exits when a live node holds it. A store that
 * does not answer does not keep the node from starting (an agent must start while Redis
 * restarts): the lease is then taken by the first renewal that reaches the store.
 */
async function takeLease(
	broker: ServiceBroker,
	env: IsaEnv,
	connection: RedisOptions
): Promise<NodeLease> {
	const logger = broker.getLogger("lease");
	// The services' stores share this connection (mixins/store.mixin.ts): it is opened with
	// their settings, whichever acquires it first.
	const store = acquireStore(
		env.store,
		env.namespace || "isa",
		broker.getLogger("store"),
		connection,
		env.storeTimeout,
		env.redisWait
	);
	const lease = new NodeLease(store, env.nodeID, { interval: env.reportInterval });
	try {
		await lease.acquire();
	} catch (err) {
		if (err instanceof NodeIdTakenError) {
			console.error(exitLine(err));
			await releaseStore(env.store, env.namespace || "isa").catch(() => undefined);
			process.exit(EXIT.nodeIdTaken);
		}
		logger.warn(
			`NODEID '${env.nodeID}' lease not checked, the store did not answer ` +
				`(${(err as Error).message}); starting, and taking it once the store answers.`
		);
	}
	return lease;
}

async function main(): Promise<void> {
	const args = process.argv.slice(2);
	const repl = args.includes("--repl");
	let env: IsaEnv;
	let config: BrokerOptions;
	let storeConnection: RedisOptions;
	try {
		env = loadEnv();
		// Reads the bus's and the store's TLS files and the cluster key, and the gateway's
		// certificate before the broker (which would log a failing gateway with a stack trace):
		// one that cannot be read is said plainly.
		config = createBrokerConfig(env);
		storeConnection = redisConnection(env.redis);
		if (env.tlsCert && env.tlsKey && (env.services ?? ALL_SERVICES).includes("gateway"))
			readTlsFiles({ cert: env.tlsCert, key: env.tlsKey, clientCa: env.tlsClientCa });
	} catch (err) {
		console.error(exitLine(err));
		process.exit(EXIT.badConfig);
	}
	// A restarted node still knows which store is its cluster's (services/shared/store/identity.ts).
	rememberIdentitiesIn(env.dataDir);
	const hot = args.includes("--hot");
	const broker = new ServiceBroker({
		...config,
		// The config lists Moleculer's middlewares itself, so HotReload must be named too.
		middlewares: [...(config.middlewares ?? []), ...(hot ? ["HotReload"] : [])],
		hotReload: hot,
		// Signals are handled below: Moleculer's own handler would stop the broker at once and
		// exit while the gateway still drains.
		skipProcessEventRegistration: true
	});
	try {
		for (const file of serviceFiles(env)) broker.loadService(file);
	} catch (err) {
		// A bad setting found while creating a service (ISA_NODE_CAPACITY, say): say it plainly.
		console.error(exitLine(err));
		process.exit(EXIT.badConfig);
	}

	const logger = broker.getLogger("lease");
	const lease = leaseWanted(env) ? await takeLease(broker, env, storeConnection) : null;

	let stopping = false;
	let stopKeeping = () => {};
	const stop = async (signal: string, code = 0) => {
		if (stopping) return;
		stopping = true;
		stopKeeping();
		broker.logger.info(`${signal}: stopping…`);
		// The gateway answers what it was asked and lets its clients go (gateway/drain.ts)
		// while the services its requests need still run.
		await broker.broadcastLocal(EVENTS.nodeDraining);
		// The process ends: the agent leaves its process replicas for the next one to adopt.
		await broker.broadcastLocal(EVENTS.nodeExiting);
		await broker.stop();
		// Given back only once the broker left, so that a successor never meets this one.
		if (lease) {
			if (code === 0) await lease.release().catch(() => undefined);
			await releaseStore(env.store, env.namespace || "isa").catch(() => undefined);
		}
		process.exit(code);
	};
	process.on("SIGINT", () => void stop("SIGINT"));
	process.on("SIGTERM", () => void stop("SIGTERM"));

	if (lease) {
		let warned = false;
		stopKeeping = lease.keep(
			held => {
				logger.fatal(
					`NODEID '${env.nodeID}' was taken over by ${held.hostname} pid ${held.pid} ` +
						"while this node was silent; this node stops."
				);
				void stop("Lease lost", EXIT.nodeIdTaken);
			},
			err => {
				if (!warned) logger.warn(`NODEID lease not renewed: ${err.message}`);
				warned = true;
			}
		);
	}

	try {
		await Promise.all([
			broker.start(),
			env.transporter &&
				transporterConnected(broker, env.transporter, env.transporterConnectTimeout)
		]);
	} catch (err) {
		console.error(exitLine(err));
		stopKeeping();
		// A broker whose transporter never connected has nothing to leave, and its transit
		// would wait for the connection to send its goodbye.
		if (broker.transit?.connected !== false) await broker.stop().catch(() => undefined);
		await lease?.release().catch(() => undefined);
		if (lease) await releaseStore(env.store, env.namespace || "isa").catch(() => undefined);
		process.exit(exitCodeOf(err));
	}
	if (repl) {
		prepareRepl();
		await broker.repl();
	}
}

if (require.main === module) void main();
