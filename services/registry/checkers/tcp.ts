import net from "net";
import { CheckTarget, parseEndpoint, ProbeChecker, Scope } from "./base";

/** A TCP connect to `tcp://host:port` or `host:port`, closed at once. */
export class TcpChecker extends ProbeChecker {
	protected async probe(target: CheckTarget, scope: Scope): Promise<void> {
		const url = parseEndpoint(target.endpoint, "tcp");
		if (!url.port) throw new Error(`endpoint '${target.endpoint}' has no port`);
		scope.step = `connect to ${url.host}`;
		await new Promise<void>((resolve, reject) => {
			const socket = net.connect({
				host: url.hostname.replace(/^\[(.*)\]$/, "$1"),
				port: Number(url.port)
			});
			scope.onClose(() => socket.destroy());
			socket.once("connect", resolve);
			socket.once("error", reject);
		});
	}
}
