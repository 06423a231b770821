/**
 * The agent's log line for a replica's state change: one per change, never one per sync or per
 * attempt. A failure is a warning (once per placement: a failed placement is not started
 * again, see runner/index.ts); a restart waiting for its backoff and the run after it are debug
 * lines, so that a replica that keeps failing fills no log. Pure.
 */
import type { ReplicaStatus } from "../services/shared/types";

export interface LogLine {
	level: "warn" | "debug";
	text: string;
}

export function replicaLogLine(s: ReplicaStatus): LogLine | null {
	const name = `${s.workloadId}/${s.replica}`;
	if (s.state === "failed")
		return { level: "warn", text: `${name} failed: ${s.reason ?? "no reason given"}` };
	// A restart: the reason says what ended and when it starts again.
	if (s.state === "starting" && s.reason) return { level: "debug", text: `${name} ${s.reason}` };
	if (s.state === "running" && s.restarts > 0)
		return { level: "debug", text: `${name} running again (restart ${s.restarts})` };
	return null;
}
