/** Event names, in one place so emitters and listeners cannot drift apart. */
export const EVENTS = {
	nodeReport: "node.report",
	nodeUp: "node.up",
	nodeDown: "node.down",
	nodeUpdated: "node.updated",
	/** The scheduler changed what is reserved on a node: { nodeID, allocated }. */
	nodeAllocated: "node.allocated",
	/** An agent's news of one replica: ReplicaStatus. */
	replicaState: "workload.replica.state"
} as const;
