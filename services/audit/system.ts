/**
 * Records what the control plane changes by itself (a reschedule after a node loss, an eviction
 * from a draining node, a drain from the REPL, an apply at start) through `audit.record`. These
 * changes are not refused when the audit log is down (a node loss must still be handled), so a
 * failure to record is logged, never thrown: fire and forget, safely. Client requests go through
 * the gateway's hooks instead, which fail closed.
 */
import type { LoggerInstance, ServiceBroker } from "moleculer";

export interface SystemChange {
	/** `system:scheduler`, `system:apply`, `repl:<user>`. */
	actor: string;
	/** What was done, named like an action: `scheduler.reschedule`, `nodes.drain`. */
	action: string;
	target?: string;
	tenant?: string;
	detail?: string;
	succeeded?: boolean;
	errorType?: string;
}

/** A recorder the scheduler's recovery and others are handed. */
export type RecordChange = (change: SystemChange) => void;

export function systemRecorder(broker: ServiceBroker, logger: LoggerInstance): RecordChange {
	return change => {
		broker
			// Not retried (audit.record appends, services/shared/retry.ts): a repeat after a
			// timeout could record the change twice; a failure is logged.
			.call("audit.record", change)
			.catch((err: Error) =>
				logger.warn(
					`Audit record of ${change.action} by ${change.actor} on ${change.target ?? "-"} not written: ${err.message}`
				)
			);
	};
}
