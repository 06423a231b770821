/**
 * Dependencies between registered services and resources: refusing cycles, and the status a
 * service shows once its dependencies are counted (a service whose dependency is not healthy is
 * `degraded`). Pure: the registry hands in the graph and the health of each name.
 */
export type Status = "healthy" | "degraded" | "unhealthy" | "unknown";

export interface DependencyNode {
	name: string;
	kind: "service" | "resource" | "moleculer" | "missing";
	status: Status;
	dependencies: DependencyNode[];
}

/** A cycle that adding `name → deps` would close, as a path `[name, …, name]`, or null. */
export function findCycle(
	graph: Map<string, string[]>,
	name: string,
	deps: string[]
): string[] | null {
	const next = new Map(graph);
	next.set(name, deps);
	const visiting: string[] = [];
	const done = new Set<string>();
	const visit = (node: string): string[] | null => {
		const at = visiting.indexOf(node);
		if (at >= 0) return [...visiting.slice(at), node];
		if (done.has(node)) return null;
		visiting.push(node);
		for (const dep of next.get(node) ?? []) {
			const cycle = visit(dep);
			if (cycle) return cycle;
		}
		visiting.pop();
		done.add(node);
		return null;
	};
	return visit(name);
}

/**
 * A service's status from its own health and its dependencies': its own `unhealthy` or `unknown`
 * stands; otherwise any dependency that is not healthy makes it `degraded`.
 */
export function effectiveStatus(own: Status, dependencies: Status[]): Status {
	if (own === "unhealthy" || own === "unknown") return own;
	return dependencies.every(s => s === "healthy") ? own : "degraded";
}

/** The dependency tree of `name` with each node's effective status (a cycle ends a branch). */
export function dependencyTree(
	name: string,
	lookup: (name: string) => { kind: DependencyNode["kind"]; own: Status; dependencies: string[] },
	path: string[] = []
): DependencyNode {
	const info = lookup(name);
	const children = path.includes(name)
		? []
		: info.dependencies.map(dep => dependencyTree(dep, lookup, [...path, name]));
	return {
		name,
		kind: info.kind,
		status: effectiveStatus(
			info.own,
			children.map(c => c.status)
		),
		dependencies: children
	};
}
