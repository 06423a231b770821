/**
 * What the gateway sends the page, spelled with the server's own types: the answers of the
 * /api/v1 lists and the payloads of the event stream. Type-only imports, so none of the server
 * code reaches the bundle (except the event names, which are plain constants).
 */
import type { Alert } from "../../monitor/alerts";
import type { SeriesPoints } from "../../monitor/timeseries";
import type { DependencyNode, Status } from "../../registry/dependencies";
import type { HealthStatus, PublicHealth } from "../../registry/health";
import type { ExternalService, Resource } from "../../registry/model";
import type { workloadView } from "../../scheduler/workload";
import { EVENTS } from "../../shared/events";
import type { page } from "../../shared/params";
import type { NodeInfo, ReplicaStatus } from "../../shared/types";
import type { Principal } from "../../shared/principal";
import type { ReportSample } from "../events";

/** Every list action answers one page: `{ items, total }`. */
export type Page<T> = ReturnType<typeof page<T>>;

/** GET /api/v1/workloads: the stored workload plus the status the scheduler derives. */
export type WorkloadView = ReturnType<typeof workloadView>;

/** GET /api/v1/resources: a registered resource with its redacted endpoint and health. */
export type ResourceView = Resource & { health: PublicHealth };

/** An external service as GET /api/v1/services shows it: each endpoint's health. */
export interface ExternalServiceView extends Omit<ExternalService, "endpoints"> {
	endpoints: { url: string; health: PublicHealth; circuit: "open" | "closed" }[];
	/** Its own health, degraded when a dependency is not healthy. */
	status: Status;
	dependencyTree: DependencyNode;
}

/** A Moleculer service the registry discovered on the brokers: healthy on every node. */
export interface MoleculerServiceView {
	name: string;
	type: "moleculer";
	nodes: string[];
	actions: string[];
	endpoints: { node: string; health: { status: HealthStatus } }[];
	dependencies: string[];
	status: Status;
}

export type ServiceView = ExternalServiceView | MoleculerServiceView;

/** GET /api/v1/stats: the monitor's series, each `[ms, value]` points. */
export type StatsAnswer = Page<SeriesPoints> & { since: number; step: number };

/** The first event of a stream: who the token is, and the stream's timings. */
export type Hello = Principal & { reportInterval: number; heartbeatInterval: number };

/**
 * A health as events carry it: a deleted resource or service is announced as just
 * `{ status: "unknown" }`, without the times of a check.
 */
export type EventHealth = Pick<PublicHealth, "status"> & Partial<PublicHealth>;

/**
 * The events of GET /api/v1/events the page listens to, by name, with their payloads:
 * services/gateway/events.ts streams the cluster events of EVENTS, and adds `hello`, `resync`
 * (events were dropped: reload the lists) and `expired` (the token ran out).
 */
export interface StreamEvents {
	hello: Hello;
	[EVENTS.nodeUp]: NodeInfo;
	[EVENTS.nodeDown]: NodeInfo;
	[EVENTS.nodeUpdated]: NodeInfo;
	/** The newest report of each node since the last batch. */
	[EVENTS.nodeReport]: { items: ReportSample[] };
	[EVENTS.nodeAllocated]: { nodeID: string; allocated: NodeInfo["allocated"] };
	[EVENTS.replicaState]: ReplicaStatus;
	[EVENTS.resourceHealthChanged]: { id: string; name: string; health: EventHealth };
	[EVENTS.serviceHealthChanged]: {
		name: string;
		endpoint?: string;
		type?: "moleculer";
		health: EventHealth;
	};
	[EVENTS.alertFiring]: Alert;
	[EVENTS.alertResolved]: Alert;
	resync: { dropped: number };
	expired: { reason: string };
}

/** One handler per event the page listens to; the stream subscribes to exactly these. */
export type StreamHandlers = { [K in keyof StreamEvents]: (data: StreamEvents[K]) => void };
