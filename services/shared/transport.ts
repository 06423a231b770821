/**
 * Whether this node's own transporter is connected (for nodes/liveness.ts), and what a
 * reconnect must do. Moleculer's NATS transporter on nats.js v2 does not tell its broker when
 * the connection drops and comes back (the client reconnects and resubscribes by itself;
 * `$transporter.*` events come only at start and stop), so the client's own status stream is
 * read: `disconnect` and `reconnect`. A broker without a transporter (single node) is always
 * connected.
 */
import { Errors, type Middleware, type ServiceBroker } from "moleculer";
import { type Idempotency, safeToRepeat } from "./retry";

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

/** A call this node waits on, as Moleculer's transit keeps it (`pendingRequests`). */
export interface PendingRequest {
	action: { name: string; idempotent?: Idempotency };
	nodeID: string;
	ctx: { meta?: { idempotencyKey?: unknown } };
	reject(err: Error): void;
}

/**
 * Rejects the calls this node waits on that are safe to make again (retry.ts) as Moleculer
 * rejects the calls to a node that left: RequestRejectedError, which is retryable, so the Retry
 * middleware makes them again at once. Answers sent to this node while its transporter was
 * away are lost (core NATS keeps nothing for a subject nobody listens to), and each such call
 * would otherwise wait for its whole timeout. A call that is not safe to repeat waits on: its
 * answer may still come. With `nodeID`, only the calls to that node. Answers how many were
 * sent again.
 */
export function resendPending(pending: Map<string, PendingRequest>, nodeID?: string): number {
	let resent = 0;
	for (const [id, req] of pending) {
		if (nodeID !== undefined && req.nodeID !== nodeID) continue;
		const key = req.ctx.meta?.idempotencyKey;
		if (!safeToRepeat(req.action.idempotent, typeof key === "string")) continue;
		pending.delete(id);
		req.reject(
			new Errors.RequestRejectedError({ action: req.action.name, nodeID: req.nodeID })
		);
		resent++;
	}
	return resent;
}

interface Discoverer {
	sendLocalNodeInfo(): unknown;
	discoverAllNodes(): unknown;
}

/** The internal service on every node that hears of other nodes' reconnects. */
const BUS_SERVICE = "$bus";
/** Broadcast by a node whose transporter is back (ctx.nodeID: which one). */
export const RECONNECTED_EVENT = "$bus.reconnected";

function pendingOf(broker: ServiceBroker): Map<string, PendingRequest> | null {
	const transit = broker.transit as unknown as
		{ pendingRequests?: Map<string, PendingRequest> } | undefined;
	return transit?.pendingRequests ?? null;
}

/**
 * A broker middleware for a node's reconnect to the bus (a NATS server that died, and the
 * client moved to another of the cluster, or the same one back):
 *
 * - It announces the node and asks every other node for its INFO at once, as Moleculer does on
 *   reconnect for its other transporters. Without it, a node that its peers stopped counting
 *   during the outage (missed heartbeats) is seen again only at its next heartbeat and INFO
 *   exchange, and events it broadcasts (the agents' reports) reach nobody meanwhile.
 * - The calls it waits on that are safe to repeat are made again (resendPending): their
 *   answers may have been sent while it was away.
 * - It tells every node (RECONNECTED_EVENT), and each makes its calls to this node that are
 *   safe to repeat again: a call sent while this node was away never reached it. Measured in
 *   test/faults/nats-cluster.spec.ts: a read sent then waited for its whole timeout (10 s).
 */
export function RediscoverOnReconnect(): Middleware {
	let unwatch: (() => void) | null = null;
	return {
		name: "RediscoverOnReconnect",
		created(broker: ServiceBroker) {
			if (!broker.transit) return;
			broker.createService({
				name: BUS_SERVICE,
				events: {
					[RECONNECTED_EVENT](ctx: { nodeID: string | null }) {
						const pending = pendingOf(broker);
						if (!ctx.nodeID || ctx.nodeID === broker.nodeID || !pending) return;
						const resent = resendPending(pending, ctx.nodeID);
						if (resent)
							broker.logger.info(
								`${resent} call(s) to '${ctx.nodeID}' sent again: it reconnected.`
							);
					}
				}
			});
		},
		started(broker: ServiceBroker) {
			if (!broker.transit) return;
			unwatch = watchTransport(broker, connected => {
				if (!connected) return;
				const pending = pendingOf(broker);
				const resent = pending ? resendPending(pending) : 0;
				if (resent) broker.logger.info(`${resent} call(s) sent again after the reconnect.`);
				void Promise.resolve(broker.broadcast(RECONNECTED_EVENT, {})).catch(
					() => undefined
				);
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
