/**
 * The gateway's `listen`. moleculer-web's own passes its callback to `server.listen`, which Node
 * calls only on success: a port in use left its `started` waiting for ever (the node then exited
 * 0 once nothing else was pending, with a stack trace in the log). Here a failure rejects with a
 * ListenError that names the address and the fix (exit status 4, bin/exit-codes.ts). Any
 * net.Server: plain HTTP, or the HTTPS server of gateway/tls.ts.
 */
import type { Server } from "net";
import { ListenError } from "../shared/errors";

export function listen(server: Server, port: number, host: string): Promise<void> {
	return new Promise((resolve, reject) => {
		const onError = (err: NodeJS.ErrnoException) => {
			server.off("listening", onListening);
			reject(new ListenError(host, port, err.code ?? "UNKNOWN"));
		};
		const onListening = () => {
			server.off("error", onError);
			resolve();
		};
		server.once("error", onError);
		server.once("listening", onListening);
		server.listen(port, host);
	});
}
