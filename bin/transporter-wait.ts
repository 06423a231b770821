/**
 * A bounded wait for the transporter at start. Moleculer's transit retries a failed connection
 * every 5 s for ever and `broker.start()` waits with it, so a node given a wrong TRANSPORTER (or
 * started while NATS is down) would hang without a word. After ISA_TRANSPORTER_TIMEOUT
 * the node says why it cannot connect and exits (bin/exit-codes.ts), and its supervisor retries.
 * Reconnects after a start are Moleculer's and the NATS client's, unbounded as before.
 */
import net from "net";
import type { ServiceBroker } from "moleculer";
import { TransporterUnreachableError } from "../services/shared/errors";
import { formatDuration } from "../services/shared/duration";

const DEFAULT_PORTS: Record<string, number> = {
	"nats:": 4222,
	"redis:": 6379,
	"rediss:": 6379,
	"mqtt:": 1883,
	"amqp:": 5672,
	"kafka:": 9092
};

/** The transporter's first server without credentials, as it may be printed; null: not a URL. */
export function transporterAddress(
	transporter: string
): { url: string; host: string; port: number } | null {
	let url: URL;
	try {
		url = new URL(transporter.split(",")[0].trim());
	} catch {
		return null;
	}
	const port = Number(url.port) || DEFAULT_PORTS[url.protocol];
	if (!url.hostname || !port) return null;
	return { url: `${url.protocol}//${url.host}`, host: url.hostname, port };
}

/** A socket error code in words. */
export function connectReason(code: string | undefined): string {
	switch (code) {
		case "ECONNREFUSED":
			return "connection refused";
		case "ENOTFOUND":
		case "EAI_AGAIN":
			return "host not found";
		case "ETIMEDOUT":
			return "no answer";
		case "EHOSTUNREACH":
		case "ENETUNREACH":
			return "host unreachable";
		default:
			return code ? `cannot connect (${code})` : "no connection";
	}
}

/** Why a TCP connection to the address fails now, or what it does when it does not. */
function probe(host: string, port: number): Promise<string> {
	return new Promise(resolve => {
		const socket = net.connect({ host, port, timeout: 1000 });
		const done = (reason: string) => {
			socket.destroy();
			resolve(reason);
		};
		socket.once("connect", () => done("it accepts TCP but not this node's connection"));
		socket.once("timeout", () => done(connectReason("ETIMEDOUT")));
		socket.once("error", (err: NodeJS.ErrnoException) => done(connectReason(err.code)));
	});
}

/**
 * Resolves once the broker's transporter is connected; rejects with a
 * TransporterUnreachableError when it is not within `timeout` ms.
 */
export function transporterConnected(
	broker: ServiceBroker,
	transporter: string,
	timeout: number
): Promise<void> {
	const deadline = Date.now() + timeout;
	return new Promise((resolve, reject) => {
		const timer = setInterval(() => {
			if (broker.transit?.connected) {
				clearInterval(timer);
				return resolve();
			}
			if (Date.now() < deadline) return;
			clearInterval(timer);
			const address = transporterAddress(transporter);
			const reason = address
				? probe(address.host, address.port)
				: Promise.resolve(connectReason(undefined));
			void reason.then(why =>
				reject(
					new TransporterUnreachableError(
						address?.url ?? transporter.replace(/\/\/[^@/]*@/, "//"),
						why,
						formatDuration(timeout)
					)
				)
			);
		}, 100);
		timer.unref();
	});
}
