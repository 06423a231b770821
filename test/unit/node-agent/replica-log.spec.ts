import { replicaLogLine } from "../../../node-agent/replica-log";
import type { ReplicaStatus } from "../../../services/shared/types";

const status = (s: Partial<ReplicaStatus>): ReplicaStatus => ({
	workloadId: "w-1",
	replica: 0,
	fence: 3,
	nodeID: "n1",
	state: "running",
	restarts: 0,
	at: 0,
	...s
});

describe("replicaLogLine", () => {
	it("warns of a failure with its reason", () => {
		const reason = "command 'x' is not allowed on node n1 (add it to ISA_ALLOWED_COMMANDS)";
		expect(replicaLogLine(status({ state: "failed", reason }))).toEqual({
			level: "warn",
			text: `w-1/0 failed: ${reason}`
		});
	});

	it("tells of a restart and the run after it at debug only", () => {
		const reason = "exited with code 1; restarting in 4 s (restart 3 of 5)";
		expect(replicaLogLine(status({ state: "starting", reason, restarts: 2 }))).toEqual({
			level: "debug",
			text: `w-1/0 ${reason}`
		});
		expect(replicaLogLine(status({ restarts: 3 }))).toEqual({
			level: "debug",
			text: "w-1/0 running again (restart 3)"
		});
	});

	it("says nothing of a first start, a run or a stop", () => {
		for (const s of [
			status({ state: "starting" }),
			status({ state: "running" }),
			status({ state: "stopped", reason: "stopped" })
		])
			expect(replicaLogLine(s)).toBeNull();
	});
});
