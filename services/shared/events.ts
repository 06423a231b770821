/** Event names, in one place so emitters and listeners cannot drift apart. */
export const EVENTS = {
	nodeReport: "node.report",
	nodeUp: "node.up",
	nodeDown: "node.down",
	nodeUpdated: "node.updated"
} as const;
