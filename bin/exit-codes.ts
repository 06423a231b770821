/**
 * How a node (bin/isa.ts) ends, for supervisors and scripts: one line on stderr that says what
 * and how to fix it, and an exit status by cause (the README's table). Any status but 0 means
 * "restart me once the cause is fixed"; 2 to 5 name the cause.
 */
import { Errors } from "moleculer";
import { NodeIdTakenError, StartupError } from "../services/shared/errors";

export const EXIT = {
	/** Stopped on SIGTERM or SIGINT, its requests drained. */
	stopped: 0,
	/** Anything else that kept it from starting or running. */
	failed: 1,
	/** A setting is wrong: an environment variable, a service's setting. */
	badConfig: 2,
	/** Its NODEID is held by a live node. */
	nodeIdTaken: 3,
	/** The gateway cannot listen on HOST:PORT (in use, not allowed). */
	listenFailed: 4,
	/** The transporter did not answer within ISA_TRANSPORTER_TIMEOUT. */
	transporterUnreachable: 5
} as const;

/** The exit status for an error that kept a node from starting. */
export function exitCodeOf(err: unknown): number {
	if (err instanceof NodeIdTakenError) return EXIT.nodeIdTaken;
	if (err instanceof StartupError)
		return err.type === "TRANSPORTER_UNREACHABLE"
			? EXIT.transporterUnreachable
			: EXIT.listenFailed;
	// A setting refused while the services were created or started (InvalidInputError).
	if (err instanceof Errors.MoleculerClientError) return EXIT.badConfig;
	return EXIT.failed;
}

/** The one line a node prints when it cannot start. */
export function exitLine(err: unknown): string {
	return `IsA Cloud: ${err instanceof Error ? err.message : String(err)}`;
}
