/**
 * What the page knows of the cluster, and the changes the lists and the events make to it.
 * Pure: the render modules read this state, and nothing here touches the DOM.
 */
import type { Alert, AlertState } from "../../monitor/alerts";
import type { WorkloadStatus } from "../../scheduler/workload";
import type { NodeInfo, Usage } from "../../shared/types";
import type { Principal } from "../../shared/principal";
import type { ReportSample } from "../events";
import { naturalCompare } from "./format";
import { addPoint, emptyHistory, History } from "./history";
import type { EventHealth, ResourceView, ServiceView, WorkloadView } from "./types";
import { clusterUsage, nodePercents } from "./usage";

/** Points kept for the cluster chart (at ~2 s per batch of reports: an hour). */
export const CLUSTER_POINTS = 1800;
/** Samples kept per node for the node chart (~10 minutes). */
export const NODE_POINTS = 300;
/** Alerts listed at most. */
export const MAX_ALERTS = 30;

export interface DashboardState {
	token: string | null;
	claims: Partial<Principal> | null;
	nodes: Map<string, NodeInfo>;
	/** Per node: its recent samples, for the node chart. */
	nodeHistory: Map<string, History>;
	workloads: Map<string, WorkloadView>;
	/** Node → GPU index → "workload#replica" holding it, from the workloads' placements. */
	reservations: Map<string, Map<number, string>>;
	services: ServiceView[];
	resources: ResourceView[];
	/** By alert id: the monitor's list, then what the stream announced since. */
	alerts: Map<string, Alert>;
	/** False while the monitor does not answer /api/v1/alerts. */
	alertsAvailable: boolean;
	cluster: History;
	/** "stats": the cluster chart starts with the monitor's history; "live": since page load. */
	historySource: "live" | "stats";
	/** The node whose chart is shown. */
	selected: string | null;
	/** The node filter, lower case. */
	filter: string;
}

export function createState(): DashboardState {
	return {
		token: null,
		claims: null,
		nodes: new Map(),
		nodeHistory: new Map(),
		workloads: new Map(),
		reservations: new Map(),
		services: [],
		resources: [],
		alerts: new Map(),
		alertsAvailable: true,
		cluster: emptyHistory(),
		historySource: "live",
		selected: null,
		filter: ""
	};
}

/**
 * A node as the inventory announces it (node.up, node.updated, the list), keeping the usage
 * the page already has when the inventory's copy has none yet (a node restored from the store).
 */
export function mergeNode(prev: NodeInfo | undefined, next: NodeInfo): NodeInfo {
	return prev?.usage && !next.usage ? { ...next, usage: prev.usage } : next;
}

/** The nodes of GET /api/v1/nodes replace the known ones; each adds a sample to its chart. */
export function replaceNodes(state: DashboardState, items: NodeInfo[], now: number): void {
	const seen = new Set<string>();
	for (const n of items) {
		const node = mergeNode(state.nodes.get(n.id), n);
		state.nodes.set(n.id, node);
		seen.add(n.id);
		addNodeSample(state, node, now);
	}
	for (const id of [...state.nodes.keys()]) if (!seen.has(id)) state.nodes.delete(id);
}

/**
 * One batch of `node.report`: each known node takes the new usage and a chart sample. Returns
 * the nodes changed, and whether a report came from a node the page does not know yet.
 */
export function applyReports(
	state: DashboardState,
	items: readonly ReportSample[]
): { changed: string[]; unknown: boolean } {
	const changed: string[] = [];
	let unknown = false;
	for (const r of items) {
		const n = state.nodes.get(r.nodeID);
		if (!n) {
			unknown = true;
			continue;
		}
		// A report carries only what the page draws; the rest (loadAvg) stays as it was.
		const usage: Usage = { ...(n.usage ?? { loadAvg: [] }), ...r.usage };
		n.usage = usage;
		addNodeSample(state, n, r.at);
		changed.push(n.id);
	}
	return { changed, unknown };
}

export function addNodeSample(state: DashboardState, node: NodeInfo, atMs: number): void {
	let h = state.nodeHistory.get(node.id);
	if (!h) state.nodeHistory.set(node.id, (h = emptyHistory()));
	addPoint(h, atMs, nodePercents(node), NODE_POINTS);
}

/** A cluster chart point from the nodes' latest usage; false while no node is up. */
export function addClusterPoint(state: DashboardState, atMs: number): boolean {
	const usage = clusterUsage([...state.nodes.values()]);
	if (usage.totals.cpu.capacity === 0 && usage.totals.memory.capacity === 0) return false;
	addPoint(state.cluster, atMs, usage, CLUSTER_POINTS);
	return true;
}

/** Whether a node card shows under the filter: its id, hostname, status or a `key=value` label. */
export function nodeMatches(node: NodeInfo, filter: string): boolean {
	if (!filter) return true;
	return (
		node.id.toLowerCase().includes(filter) ||
		node.hostname.toLowerCase().includes(filter) ||
		node.status.includes(filter) ||
		Object.entries(node.labels).some(([k, v]) => `${k}=${v}`.includes(filter))
	);
}

/** Which replica holds each GPU, from the placements; a stopped replica holds none. */
export function gpuReservations(
	workloads: Iterable<WorkloadView>
): Map<string, Map<number, string>> {
	const out = new Map<string, Map<number, string>>();
	for (const w of workloads)
		for (const r of w.replicas) {
			if (!r.node || r.gpus.length === 0 || r.state === "stopped") continue;
			let gpus = out.get(r.node);
			if (!gpus) out.set(r.node, (gpus = new Map()));
			for (const g of r.gpus) gpus.set(g, `${w.name}#${r.index}`);
		}
	return out;
}

export function setWorkloads(state: DashboardState, items: WorkloadView[]): void {
	state.workloads = new Map(items.map(w => [w.id, w]));
	state.reservations = gpuReservations(items);
}

/** The workloads in the order they were created. */
export function sortedWorkloads(workloads: Iterable<WorkloadView>): WorkloadView[] {
	return [...workloads].sort((a, b) => a.seq - b.seq || naturalCompare(a.name, b.name));
}

/** Workloads by the status the scheduler gives them. */
export function workloadCounts(workloads: Iterable<WorkloadView>): Record<WorkloadStatus, number> {
	const counts = { pending: 0, running: 0, degraded: 0, failed: 0, stopped: 0 };
	for (const w of workloads) counts[w.status]++;
	return counts;
}

/** An alert the stream announced: it replaces the one of the same id (firing → resolved). */
export function upsertAlert(state: DashboardState, alert: Alert): void {
	state.alerts.set(alert.id, alert);
	state.alertsAvailable = true;
}

export function setAlerts(state: DashboardState, items: Alert[]): void {
	state.alerts = new Map(items.map(a => [a.id, a]));
	state.alertsAvailable = true;
}

const ALERT_ORDER: Record<AlertState, number> = { firing: 0, pending: 1, resolved: 2 };

/**
 * Firing, then pending, then resolved alerts, newest first within each, at most `max`: the
 * order of the monitor's list (AlertEvaluator.list in services/monitor/alerts.ts, a module the
 * page cannot import: it needs Node's crypto), which announced alerts have to be merged into.
 */
export function sortedAlerts(alerts: Iterable<Alert>, max = MAX_ALERTS): Alert[] {
	return [...alerts]
		.sort((a, b) => ALERT_ORDER[a.state] - ALERT_ORDER[b.state] || b.since - a.since)
		.slice(0, max);
}

/** A resource's new health from `resource.health.changed`; false for a resource not listed. */
export function applyResourceHealth(
	state: DashboardState,
	id: string,
	health: EventHealth
): boolean {
	const r = state.resources.find(x => x.id === id);
	if (!r) return false;
	r.health = { checkedAt: null, latencyMs: null, ...health };
	return true;
}
