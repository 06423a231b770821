/**
 * monitor: usage history, alerting and the project's Prometheus metrics. It follows the nodes
 * from their reports and the inventory's events, the registry's health changes, and the
 * workloads in the store; once per evaluation it samples all of that into the history
 * (services/monitor/timeseries.ts), evaluates the alert rules (monitor/alerts.ts), announces
 * what began firing or was resolved (monitor/notify.ts) and sets the `isa_*` gauges that the
 * gateway serves on /metrics.
 *
 * Rules live in the store. History, alert states and the last known health are snapshotted
 * into the store too, so a restarted monitor goes on where it was (with Redis: on any node).
 * One monitor per cluster is the intended setup: two would both notify.
 */
import crypto from "crypto";
import type { Context, Service, ServiceSchema } from "moleculer";
import PeriodicMixin, { PeriodicMethods } from "../mixins/periodic.mixin";
import StoreMixin from "../mixins/store.mixin";
import { ConflictError, NotFoundError } from "./shared/errors";
import { COLLECTIONS } from "./shared/collections";
import { EVENTS } from "./shared/events";
import { page, pageParams } from "./shared/params";
import type { Store } from "./shared/store";
import type { NodeInfo, NodeReport } from "./shared/types";
import { parseDuration } from "./shared/duration";
import { canSeeTenant, type Principal } from "./shared/principal";
import type { PublicHealth } from "./registry/health";
import type { Workload } from "./scheduler/workload";
import {
	AlertEvaluator,
	AlertRule,
	AlertsSnapshot,
	AlertState,
	makeRule,
	matches,
	OPS,
	MAX_FOR_MS,
	parseSelector,
	RuleInput,
	SEVERITIES
} from "./monitor/alerts";
import { Notifier, NotifierOptions } from "./monitor/notify";
import {
	clusterSamples,
	clusterTotals,
	DEFAULT_TIERS,
	HistorySnapshot,
	healthValue,
	Labels,
	MonitoredNode,
	nodeSamples,
	Sample,
	seriesKey,
	Tier,
	TimeSeriesStore,
	workloadCounts,
	workloadSamples,
	WORKLOAD_STATES
} from "./monitor/timeseries";

const SNAPSHOT_ID = "snapshot";
/** Written once the default rules were installed, so deleting them all does not bring them back. */
const DEFAULTS_ID = "default-rules";

/** Shipped rules, created when the store has no rule yet; deleted or replaced like any other. */
export const DEFAULT_RULES: (RuleInput & { id: string })[] = [
	{
		id: "default-node-down",
		name: "Node down",
		metric: "node.status",
		op: "==",
		threshold: 0,
		for: "30s",
		severity: "critical"
	},
	{
		id: "default-gpu-hot",
		name: "GPU too hot",
		metric: "node.gpu.temperature",
		op: ">",
		threshold: 85,
		for: "1m",
		severity: "warning"
	},
	{
		id: "default-service-unhealthy",
		name: "Service unhealthy",
		metric: "service.health",
		op: "==",
		threshold: 0,
		for: "1m",
		severity: "warning"
	},
	{
		id: "default-resource-unhealthy",
		name: "Resource unhealthy",
		metric: "resource.health",
		op: "==",
		threshold: 0,
		for: "1m",
		severity: "critical"
	},
	{
		id: "default-workload-pending",
		name: "Workload pending too long",
		metric: 'workload.replicas{state="pending"}',
		op: ">",
		threshold: 0,
		for: "5m",
		severity: "warning"
	}
];

/** The gauges on /metrics. Moleculer's Prometheus reporter writes the dots as underscores. */
export const GAUGES: Record<string, { labelNames: string[]; description: string }> = {
	"isa.node.up": { labelNames: ["node"], description: "1 while the node reports, 0 when down" },
	"isa.node.cpu.capacity": { labelNames: ["node"], description: "CPU cores of the node" },
	"isa.node.cpu.usage": { labelNames: ["node"], description: "CPU cores busy" },
	"isa.node.memory.capacity": { labelNames: ["node"], description: "Memory of the node, bytes" },
	"isa.node.memory.usage": { labelNames: ["node"], description: "Memory used, bytes" },
	"isa.node.gpu.count": { labelNames: ["node"], description: "GPUs of the node" },
	"isa.node.gpu.utilization": {
		labelNames: ["node", "gpu"],
		description: "GPU utilization, percent"
	},
	"isa.node.gpu.memory.capacity": {
		labelNames: ["node", "gpu"],
		description: "GPU memory, bytes"
	},
	"isa.node.gpu.memory.used": {
		labelNames: ["node", "gpu"],
		description: "GPU memory used, bytes"
	},
	"isa.node.gpu.temperature": {
		labelNames: ["node", "gpu"],
		description: "GPU temperature, degrees Celsius"
	},
	"isa.node.allocated.cpu": { labelNames: ["node"], description: "CPU cores reserved" },
	"isa.node.allocated.memory": { labelNames: ["node"], description: "Memory reserved, bytes" },
	"isa.node.allocated.gpus": { labelNames: ["node"], description: "GPUs reserved" },
	"isa.workloads": { labelNames: ["state"], description: "Workloads by status" },
	"isa.health.status": {
		labelNames: ["kind", "name"],
		description: "1 healthy, 0 unhealthy (a service: all its endpoints)"
	},
	"isa.alerts.firing": { labelNames: ["severity"], description: "Alerts firing by severity" }
};

interface MonitorSettings {
	/** ms between two evaluations: sampling, alert rules, gauges. */
	evaluateInterval: number;
	/** ms between two reads of the rules and workloads from the store. */
	refreshInterval: number;
	/** ms between two reads of the whole inventory (events missed while away). */
	syncInterval: number;
	/** ms between two snapshots of the history into the store. */
	snapshotInterval: number;
	history: Tier[];
	/** Most series kept; see timeseries.ts for the memory this bounds. */
	maxSeries: number;
	/** Resolved alerts kept for `listAlerts`. */
	recentAlerts: number;
	defaultRules: boolean;
	webhook: Pick<
		NotifierOptions,
		"timeout" | "maxAttempts" | "backoff" | "maxBackoff" | "maxQueue"
	>;
}

interface Meta {
	user?: Principal;
	idempotencyKey?: string;
	$statusCode?: number;
	/** With 201: where the new resource is (the Location header). */
	$location?: string;
}

/** What the snapshot document holds. */
interface Snapshot {
	savedAt: number;
	history: HistorySnapshot;
	alerts: AlertsSnapshot;
	/** Health comes only as changes: the last known one is kept across a restart. */
	health: [string, Sample][];
}

interface MonitorThis extends Service<MonitorSettings>, PeriodicMethods {
	store: Store;
	nodes: Map<string, MonitoredNode>;
	health: Map<string, Sample>;
	workloads: Workload[];
	rules: AlertRule[];
	series: TimeSeriesStore;
	alerts: AlertEvaluator;
	notifier: Notifier;
	samples(): Sample[];
	evaluate(): void;
	refresh(): Promise<void>;
	syncNodes(): Promise<void>;
	setNode(info: NodeInfo): void;
	setHealth(key: string, metric: string, labels: Labels, health: PublicHealth): void;
	saveSnapshot(): Promise<void>;
	loadSnapshot(): Promise<void>;
	installDefaultRules(): Promise<void>;
	registerGauges(): void;
	updateGauges(): void;
}

/** Seconds (a number, or digits as a query string brings them) or a duration like "5m". */
const durationParam = [
	{ type: "number", min: 0, convert: true },
	{ type: "string", min: 1, max: 32 }
];

/** Series and alerts of a tenant's workloads are that tenant's; an admin sees all. */
function visible(labels: Labels, user: Principal | undefined): boolean {
	return !user || labels.tenant === undefined || canSeeTenant(user, labels.tenant);
}

function byCreation(a: AlertRule, b: AlertRule): number {
	return a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

const MonitorService: ServiceSchema<MonitorSettings, MonitorThis> = {
	name: "monitor",
	mixins: [StoreMixin(), PeriodicMixin()],

	settings: {
		evaluateInterval: 1000,
		refreshInterval: 2000,
		syncInterval: 10_000,
		snapshotInterval: 10_000,
		history: DEFAULT_TIERS,
		maxSeries: 2000,
		recentAlerts: 200,
		defaultRules: true,
		webhook: {
			timeout: 5000,
			maxAttempts: 6,
			backoff: 1000,
			maxBackoff: 60_000,
			maxQueue: 1000
		}
	},

	actions: {
		/**
		 * Usage history: every series (per node and cluster-wide) with points from `since`
		 * (ms since the epoch, or a duration ago such as "15m"; default 1 h), optionally only
		 * one node's or one metric's (a name or a selector), in buckets of at least `step`.
		 */
		stats: {
			params: {
				$$strict: true,
				node: { type: "string", min: 1, max: 256, optional: true },
				metric: { type: "string", min: 1, max: 512, optional: true },
				since: [
					{ type: "number", min: 0, convert: true, optional: true },
					{ type: "string", min: 1, max: 32, optional: true }
				],
				step: durationParam.map(p => ({ ...p, optional: true })),
				...pageParams(10000)
			},
			handler(
				this: MonitorThis,
				ctx: Context<
					{
						node?: string;
						metric?: string;
						since?: number | string;
						step?: number | string;
						limit?: number;
						offset?: number;
					},
					Meta
				>
			) {
				const { node, metric } = ctx.params;
				const now = Date.now();
				const since =
					ctx.params.since === undefined
						? now - 3_600_000
						: typeof ctx.params.since === "number"
							? ctx.params.since
							: now -
								parseDuration(ctx.params.since, {
									field: "since",
									max: MAX_FOR_MS
								});
				const step =
					ctx.params.step === undefined
						? undefined
						: parseDuration(ctx.params.step, { field: "step", max: MAX_FOR_MS });
				const sel = metric ? parseSelector(metric) : null;
				const result = this.series.query({
					since,
					now,
					step,
					filter: (m, labels) =>
						(!node || labels.node === node) &&
						(!sel || matches(sel, m, labels)) &&
						visible(labels, ctx.meta.user)
				});
				return { ...page(result.items, ctx.params, 1000), since, step: result.step };
			}
		},

		/** The alert rules, oldest first. */
		listRules: {
			params: { $$strict: true, ...pageParams(10000) },
			async handler(this: MonitorThis, ctx: Context<{ limit?: number; offset?: number }>) {
				const rules = (await this.store.list<AlertRule>(COLLECTIONS.alertRules))
					.map(d => d.value)
					.sort(byCreation);
				return page(rules, ctx.params);
			}
		},

		/** Creates an alert rule (201); 422 for a bad metric, op or `for`, 409 for a taken name. */
		createRule: {
			access: "write",
			params: {
				$$strict: true,
				name: { type: "string", min: 1, max: 128 },
				metric: { type: "string", min: 1, max: 512 },
				op: { type: "enum", values: [...OPS] },
				threshold: { type: "number" },
				for: durationParam,
				severity: { type: "enum", values: [...SEVERITIES] },
				labels: {
					type: "record",
					optional: true,
					key: { type: "string", min: 1, max: 128, pattern: /^[a-zA-Z_][a-zA-Z0-9_]*$/ },
					value: { type: "string", max: 256 }
				},
				notify: {
					type: "object",
					optional: true,
					strict: true,
					props: {
						webhook: {
							type: "url",
							optional: true,
							max: 2048,
							pattern: /^https?:\/\//i
						}
					}
				}
			},
			async handler(this: MonitorThis, ctx: Context<RuleInput, Meta>) {
				const key = ctx.meta.idempotencyKey;
				// A retried create with the same Idempotency-Key lands on the same id.
				const id = key
					? crypto
							.createHash("sha256")
							.update(`alert-rule\u0000${key}`)
							.digest("hex")
							.slice(0, 32)
					: crypto.randomUUID();
				const rule = makeRule(ctx.params, {
					id,
					now: Date.now(),
					createdBy: ctx.meta.user?.sub ?? "internal"
				});
				const existing = await this.store.list<AlertRule>(COLLECTIONS.alertRules);
				const same = existing.find(d => d.id === id);
				if (same) return same.value;
				if (existing.some(d => d.value.name === rule.name))
					throw new ConflictError(`An alert rule named '${rule.name}' exists already.`, {
						name: rule.name
					});
				if ((await this.store.cas(COLLECTIONS.alertRules, id, rule, 0)) === null) {
					const raced = await this.store.get<AlertRule>(COLLECTIONS.alertRules, id);
					if (raced) return raced.value;
				}
				this.rules = [...this.rules.filter(r => r.id !== id), rule];
				ctx.meta.$statusCode = 201;
				ctx.meta.$location = `/api/v1/alerts/rules/${encodeURIComponent(rule.id)}`;
				return rule;
			}
		},

		/** Deletes an alert rule; its firing alerts are resolved at the next evaluation. */
		deleteRule: {
			access: "write",
			params: { $$strict: true, id: { type: "string", min: 1, max: 128 } },
			async handler(this: MonitorThis, ctx: Context<{ id: string }>) {
				if (!(await this.store.delete(COLLECTIONS.alertRules, ctx.params.id)))
					throw new NotFoundError("Alert rule", ctx.params.id);
				this.rules = this.rules.filter(r => r.id !== ctx.params.id);
				return { id: ctx.params.id, deleted: true };
			}
		},

		/** Pending and firing alerts, then recently resolved ones; `state` filters. */
		listAlerts: {
			params: {
				$$strict: true,
				state: { type: "enum", values: ["pending", "firing", "resolved"], optional: true },
				...pageParams(10000)
			},
			handler(
				this: MonitorThis,
				ctx: Context<{ state?: AlertState; limit?: number; offset?: number }, Meta>
			) {
				const { state } = ctx.params;
				const alerts = this.alerts
					.list()
					.filter(a => (!state || a.state === state) && visible(a.labels, ctx.meta.user));
				return page(alerts, ctx.params);
			}
		}
	},

	events: {
		[EVENTS.nodeReport](this: MonitorThis, ctx: Context<NodeReport>) {
			const r = ctx.params;
			const known = this.nodes.get(r.nodeID);
			this.nodes.set(r.nodeID, {
				id: r.nodeID,
				// Only a live agent reports; the inventory's node.up follows with the exact status.
				status: !known || known.status === "down" ? "ready" : known.status,
				capacity: r.capacity,
				usage: r.usage,
				allocated: known?.allocated ?? { cpu: 0, memory: 0, gpus: 0 }
			});
		},
		[EVENTS.nodeUp](this: MonitorThis, ctx: Context<NodeInfo>) {
			this.setNode(ctx.params);
		},
		[EVENTS.nodeUpdated](this: MonitorThis, ctx: Context<NodeInfo>) {
			this.setNode(ctx.params);
		},
		[EVENTS.nodeDown](this: MonitorThis, ctx: Context<NodeInfo>) {
			this.setNode(ctx.params);
		},
		[EVENTS.nodeAllocated](
			this: MonitorThis,
			ctx: Context<{ nodeID: string; allocated: NodeInfo["allocated"] }>
		) {
			const node = this.nodes.get(ctx.params.nodeID);
			if (node) node.allocated = ctx.params.allocated;
		},
		[EVENTS.resourceHealthChanged](
			this: MonitorThis,
			ctx: Context<{ id: string; name: string; health: PublicHealth }>
		) {
			const { id, name, health } = ctx.params;
			this.setHealth(`resource\u0000${id}`, "resource.health", { id, name }, health);
		},
		[EVENTS.serviceHealthChanged](
			this: MonitorThis,
			ctx: Context<{ name: string; endpoint?: string; health: PublicHealth }>
		) {
			const { name, endpoint, health } = ctx.params;
			const labels: Labels = endpoint ? { name, endpoint } : { name };
			this.setHealth(
				`service\u0000${name}\u0000${endpoint ?? ""}`,
				"service.health",
				labels,
				health
			);
		}
	},

	methods: {
		/** Everything known now, as samples: nodes, cluster totals, workloads, health. */
		samples(this: MonitorThis): Sample[] {
			const nodes = [...this.nodes.values()];
			return [
				...nodes.flatMap(nodeSamples),
				...clusterSamples(clusterTotals(nodes)),
				...workloadSamples(this.workloads),
				...this.health.values()
			];
		},

		/** One round: record history, evaluate the rules, announce transitions, set gauges. */
		evaluate(this: MonitorThis) {
			const samples = this.samples();
			this.series.record(samples, Date.now());
			for (const t of this.alerts.evaluate(this.rules, samples)) {
				this.logger.info(
					`Alert '${t.rule.name}' ${t.status}: ${t.alert.series} = ${t.alert.value}`
				);
				this.notifier.notify(t);
			}
			this.updateGauges();
		},

		/** Rules from the store (other instances write them) and workloads from the scheduler. */
		async refresh(this: MonitorThis) {
			const [rules, workloads] = await Promise.all([
				this.store.list<AlertRule>(COLLECTIONS.alertRules),
				this.broker
					.call<{ items: Workload[] }, object>("scheduler.states", {}, { retries: 0 })
					.then(
						res => res.items,
						// No scheduler now: the workloads as last seen.
						() => this.workloads
					)
			]);
			this.rules = rules
				.map(d => d.value)
				.filter(rule => {
					try {
						parseSelector(rule.metric);
						return true;
					} catch (err) {
						this.logger.warn(
							`Alert rule '${rule.id}' skipped:`,
							(err as Error).message
						);
						return false;
					}
				});
			this.workloads = workloads;
		},

		/** The whole inventory: catches up on events sent while this service was not there. */
		async syncNodes(this: MonitorThis) {
			try {
				const { items } = await this.broker.call<{ items: NodeInfo[] }, object>(
					"nodes.list",
					{ limit: 10000 },
					{ retries: 0 }
				);
				this.nodes.clear();
				for (const info of items) this.setNode(info);
			} catch (err) {
				this.logger.debug("No inventory to sync from yet:", (err as Error).message);
			}
		},

		setNode(this: MonitorThis, info: NodeInfo) {
			this.nodes.set(info.id, {
				id: info.id,
				status: info.status,
				capacity: info.capacity,
				usage: info.status === "down" ? null : info.usage,
				allocated: info.allocated
			});
		},

		/** An unknown status drops the series: a guess would fire or resolve alerts. */
		setHealth(
			this: MonitorThis,
			key: string,
			metric: string,
			labels: Labels,
			health: PublicHealth
		) {
			const value = healthValue(health.status);
			if (value === null) this.health.delete(key);
			else this.health.set(key, { metric, labels, value });
		},

		async saveSnapshot(this: MonitorThis) {
			const snapshot: Snapshot = {
				savedAt: Date.now(),
				history: this.series.snapshot(),
				alerts: this.alerts.export(),
				health: [...this.health]
			};
			await this.store.put(COLLECTIONS.monitor, SNAPSHOT_ID, snapshot);
		},

		/** Best effort: a snapshot that cannot be read costs the history, never the start. */
		async loadSnapshot(this: MonitorThis) {
			const doc = await this.store.get<Snapshot>(COLLECTIONS.monitor, SNAPSHOT_ID);
			if (!doc) return;
			try {
				const { history, alerts, health } = doc.value;
				if (!this.series.restore(history))
					this.logger.warn(
						"The saved history has other tiers than configured; not loaded."
					);
				this.alerts.import(alerts);
				for (const [key, sample] of health) this.health.set(key, sample);
			} catch (err) {
				this.logger.warn("The saved history could not be read:", (err as Error).message);
				return;
			}
			this.logger.info(
				`History restored: ${this.series.size} series, saved ${new Date(doc.value.savedAt).toISOString()}.`
			);
		},

		/** Once per store: when no rule exists yet, the defaults are written. */
		async installDefaultRules(this: MonitorThis) {
			if (await this.store.get(COLLECTIONS.monitor, DEFAULTS_ID)) return;
			if ((await this.store.list(COLLECTIONS.alertRules)).length === 0) {
				const now = Date.now();
				for (const [i, input] of DEFAULT_RULES.entries()) {
					// One ms apart, so that they list in the order above.
					const rule = makeRule(input, {
						id: input.id,
						now: now + i,
						createdBy: "monitor"
					});
					await this.store.cas(COLLECTIONS.alertRules, rule.id, rule, 0);
				}
				this.logger.info(`Default alert rules created: ${DEFAULT_RULES.length}.`);
			}
			await this.store.cas(COLLECTIONS.monitor, DEFAULTS_ID, { at: Date.now() }, 0);
		},

		registerGauges(this: MonitorThis) {
			if (!this.broker.isMetricsEnabled()) return;
			for (const [name, def] of Object.entries(GAUGES))
				if (!this.broker.metrics.hasMetric(name))
					this.broker.metrics.register({ type: "gauge", name, ...def });
		},

		/**
		 * Every gauge rebuilt from the current state, so a node or service that went away
		 * leaves no stale line behind. Synchronous: a scrape never sees half of it.
		 */
		updateGauges(this: MonitorThis) {
			if (!this.broker.isMetricsEnabled()) return;
			const metrics = this.broker.metrics;
			for (const name of Object.keys(GAUGES)) metrics.getMetric(name)?.clear();
			const set = (name: string, value: number, labels: Labels) =>
				metrics.set(name, value, labels);
			for (const n of this.nodes.values()) {
				const node = { node: n.id };
				set("isa.node.up", n.status === "down" ? 0 : 1, node);
				set("isa.node.cpu.capacity", n.capacity.cpu, node);
				set("isa.node.memory.capacity", n.capacity.memory, node);
				set("isa.node.gpu.count", n.capacity.gpus.length, node);
				set("isa.node.allocated.cpu", n.allocated.cpu, node);
				set("isa.node.allocated.memory", n.allocated.memory, node);
				set("isa.node.allocated.gpus", n.allocated.gpus, node);
				for (const g of n.capacity.gpus)
					set("isa.node.gpu.memory.capacity", g.memory, {
						...node,
						gpu: String(g.index)
					});
				if (!n.usage) continue;
				set("isa.node.cpu.usage", n.usage.cpu, node);
				set("isa.node.memory.usage", n.usage.memory, node);
				for (const g of n.usage.gpus) {
					const gpu = { ...node, gpu: String(g.index) };
					set("isa.node.gpu.utilization", g.utilization, gpu);
					set("isa.node.gpu.memory.used", g.memoryUsed, gpu);
					if (g.temperature !== null) set("isa.node.gpu.temperature", g.temperature, gpu);
				}
			}
			const counts = workloadCounts(this.workloads);
			for (const state of WORKLOAD_STATES) set("isa.workloads", counts[state], { state });
			const health = new Map<string, { kind: string; name: string; value: number }>();
			for (const s of this.health.values()) {
				const kind = s.metric === "resource.health" ? "resource" : "service";
				const key = seriesKey(kind, { name: s.labels.name });
				const prev = health.get(key);
				health.set(key, {
					kind,
					name: s.labels.name,
					value: Math.min(prev?.value ?? 1, s.value)
				});
			}
			for (const h of health.values())
				set("isa.health.status", h.value, { kind: h.kind, name: h.name });
			const firing = this.alerts.firingBySeverity();
			for (const severity of SEVERITIES)
				set("isa.alerts.firing", firing[severity], { severity });
		}
	},

	created(this: MonitorThis) {
		this.nodes = new Map();
		this.health = new Map();
		this.workloads = [];
		this.rules = [];
		this.series = new TimeSeriesStore({
			tiers: this.settings.history,
			maxSeries: this.settings.maxSeries
		});
		this.alerts = new AlertEvaluator({
			clock: () => Date.now(),
			keepResolved: this.settings.recentAlerts
		});
		this.notifier = new Notifier({
			...this.settings.webhook,
			logger: this.logger,
			broadcast: (status, alert) =>
				this.broker.broadcast(
					status === "firing" ? EVENTS.alertFiring : EVENTS.alertResolved,
					alert
				)
		});
	},

	async started(this: MonitorThis) {
		this.registerGauges();
		await this.loadSnapshot();
		if (this.settings.defaultRules) await this.installDefaultRules();
		await this.refresh();
		await this.syncNodes();
		const s = this.settings;
		this.every("evaluate", s.evaluateInterval, () => this.evaluate());
		this.every("refresh", s.refreshInterval, () => this.refresh());
		this.every("sync", s.syncInterval, () => this.syncNodes());
		this.every("snapshot", s.snapshotInterval, () => this.saveSnapshot());
		this.logger.info(
			`Monitoring: history of at most ${s.maxSeries} series (${Math.round(this.series.memoryBound / 2 ** 20)} MiB).`
		);
	},

	async stopped(this: MonitorThis) {
		this.notifier.close();
		try {
			await this.saveSnapshot();
		} catch (err) {
			this.logger.warn("History not saved on stop:", (err as Error).message);
		}
	}
};

export default MonitorService;
