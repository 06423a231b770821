/** Event names, in one place so emitters and listeners cannot drift apart. */
export const EVENTS = {
	nodeReport: "node.report",
	nodeUp: "node.up",
	nodeDown: "node.down",
	nodeUpdated: "node.updated",
	/**
	 * The inventory holds silent nodes instead of declaring them down (nodes/liveness.ts):
	 * { reason: "blind" | "disruption" | null, nodes, since }; `nodes` empty when it ends.
	 */
	nodesHeld: "nodes.held",
	/** The scheduler changed what is reserved on a node: { nodeID, allocated }. */
	nodeAllocated: "node.allocated",
	/** An agent's news of one replica: ReplicaStatus. */
	replicaState: "workload.replica.state",
	/** A registered resource turned healthy or unhealthy: { id, name, health }. */
	resourceHealthChanged: "resource.health.changed",
	/** An endpoint of a registered service did: { name, endpoint, health }. */
	serviceHealthChanged: "service.health.changed",
	/** A config key was set or deleted: { key, value, version, deleted }. */
	configChanged: "config.changed",
	/** The monitor's alerts: the alert with its rule, state, value and since. */
	alertFiring: "alert.firing",
	alertResolved: "alert.resolved"
} as const;
