/**
 * Whether this node's own transporter is connected (for nodes/liveness.ts), and what a
 * reconnect must do. Moleculer's NATS transporter on nats.js v2 does not tell its broker when
 * the connection drops and comes back (the client reconnects and resubscribes by itself;
 * `$transporter.*` events come only at start and stop), so the client's own status stream is
 * read: `disconnect` and `reconnect`. A broker without a transporter (single node) is always
 * connected.
 */
import type { Middleware, ServiceBroker } from "moleculer";

interface NatsStatus {
	type: string;
}

interface NatsClientLike {
	status(): AsyncIterable<NatsStatus> & { stop?: () => void };
}

/** The nats.js v2 client behind the broker's transporter, if that is what it has. */
function natsClient(broker: ServiceBroker): NatsClientLike | null {
	const tx = (broker.transit as unknown as { tx?: { client?: unknown } } | undefined)?.tx;
	const client = tx?.client as Partial<NatsClientLike> | undefined;
	return client && typeof client.status === "function" ? (client as NatsClientLike) : null;
}

/**
 * Calls `onChange(false)` when the transporter disconnects and `onChange(true)` when it is
 * back. Resolves to a function that stops watching.
 */
export function watchTransport(
	broker: ServiceBroker,
	onChange: (connected: boolean) => void
): () => void {
	let stopped = false;
	let iterator: { stop?: () => void } | null = null;
	const attach = () => {
		const client = natsClient(broker);
		if (stopped || !client || iterator) return;
		const statuses = client.status();
		iterator = statuses;
		void (async () => {
			for await (const s of statuses) {
				if (stopped) break;
				if (s.type === "disconnect") onChange(false);
				else if (s.type === "reconnect") onChange(true);
			}
		})().catch(() => undefined);
	};
	attach();
	// Not connected yet when this service started: the client exists once the broker is up.
	if (!iterator && broker.transit) {
		const timer = setInterval(() => {
			attach();
			if (iterator || stopped) clearInterval(timer);
		}, 200);
		timer.unref();
	}
	return () => {
		stopped = true;
		iterator?.stop?.();
	};
}

interface Discoverer {
	sendLocalNodeInfo(): unknown;
	discoverAllNodes(): unknown;
}

/**
 * A broker middleware: after a reconnect, announce this node and ask every other node for its
 * INFO at once, as Moleculer does on reconnect for its other transporters. Without it, a node
 * that its peers stopped counting during the outage (missed heartbeats) is seen again only at
 * its next heartbeat and INFO exchange, and events it broadcasts (the agents' reports) reach
 * nobody meanwhile.
 */
export function RediscoverOnReconnect(): Middleware {
	let unwatch: (() => void) | null = null;
	return {
		name: "RediscoverOnReconnect",
		started(broker: ServiceBroker) {
			if (!broker.transit) return;
			unwatch = watchTransport(broker, connected => {
				if (!connected) return;
				const discoverer = (broker.registry as unknown as { discoverer?: Discoverer })
					.discoverer;
				try {
					void Promise.resolve(discoverer?.sendLocalNodeInfo()).catch(() => undefined);
					void Promise.resolve(discoverer?.discoverAllNodes()).catch(() => undefined);
				} catch (err) {
					broker.logger.debug("Rediscovery after a reconnect failed:", err);
				}
			});
		},
		stopped() {
			unwatch?.();
		}
	} as unknown as Middleware;
}
