/** Event names, in one place so emitters and listeners cannot drift apart. */
export const EVENTS = {
	nodeReport: "node.report",
	nodeUp: "node.up",
	nodeDown: "node.down",
	nodeUpdated: "node.updated",
	/** A down node was forgotten (retention or an admin's DELETE): { id, reason }. */
	nodeRemoved: "node.removed",
	/**
	 * The inventory holds silent nodes instead of declaring them down (nodes/liveness.ts):
	 * { reason: "blind" | "disruption" | null, nodes, since }; `nodes` empty when it ends.
	 */
	nodesHeld: "nodes.held",
	/** The scheduler changed what is reserved on a node: { nodeID, allocated }. */
	nodeAllocated: "node.allocated",
	/**
	 * An agent stops and leaves its process replicas running for the next agent of its node:
	 * { nodeID, replicas }. Its disconnect then does not mark the node down at once.
	 */
	nodeRestarting: "node.restarting",
	/**
	 * Local only: this process stops (SIGTERM, bin/isa.ts); the gateway drains its HTTP
	 * connections (gateway/drain.ts). Awaited before the services stop.
	 */
	nodeDraining: "node.draining",
	/** Local only: this process is about to exit (bin/isa.ts); the agent hands over. */
	nodeExiting: "node.exiting",
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
