/**
 * monitor: usage history, alerting and the project's Prometheus metrics. It follows the nodes
 * from their reports and the inventory's events, the registry's health changes, and the
 * workloads the scheduler reports (`scheduler.states`). Once per evaluation it samples all of
 * that (monitor/sampling.ts) into the history (monitor/timeseries.ts), evaluates the alert rules
 * (monitor/alerts.ts), announces what began firing or was resolved (monitor/notify.ts) and sets
 * the `isa_*` gauges (monitor/gauges.ts) that the gateway serves on /metrics.
 *
 * Rules live in the store (monitor/rule-store.ts; the defaults in monitor/default-rules.ts).
 * History, alert states and the last known health are snapshotted into the store too
 * (monitor/snapshot.ts), so a restarted monitor goes on where it was (with Redis: on any node).
 *
 * Several copies may run (with Redis, on several nodes). Each hears every event (an event group
 * of its own), keeps the history and evaluates the rules, so any copy answers queries. One of
 * them leads (services/shared/leadership.ts): only the leader announces alerts, through the
 * store's record of what was announced (monitor/notices.ts), and saves the snapshot. A standby
 * takes over within ISA_LEADER_LEASE of the leader's death and announces what changed meanwhile,
 * without announcing anything twice.
 */
import crypto from "crypto";
import type { Context, Service, ServiceSchema } from "moleculer";
import PeriodicMixin, { PeriodicMethods } from "../mixins/periodic.mixin";
import StoreMixin from "../mixins/store.mixin";
import { loadEnv } from "./shared/env";
import { EVENTS } from "./shared/events";
import { thisProcess } from "./shared/holder";
import { Leadership } from "./shared/leadership";
import { page, pageParams } from "./shared/params";
import type { Owned, Principal } from "./shared/principal";
import type { Store } from "./shared/store";
import type { NodeInfo, NodeReport } from "./shared/types";
import type { PublicHealth } from "./registry/health";
import type { Workload } from "./scheduler/workload";
import {
	AlertEvaluator,
	AlertRule,
	AlertState,
	OPS,
	RuleInput,
	SEVERITIES
} from "./monitor/alerts";
import { seedDefaultRules, STORE_IDENTITY_RULE } from "./monitor/default-rules";
import type { IdentityGuard } from "./shared/store/identity-guard";
import { gaugeValues, registerGauges, setGauges } from "./monitor/gauges";
import { Notice, NoticeLedger } from "./monitor/notices";
import { Notifier, NotifierOptions } from "./monitor/notify";
import { alertVisible, StatsParams, statsQuery } from "./monitor/queries";
import { RuleStore } from "./monitor/rule-store";
import { ClusterView } from "./monitor/sampling";
import { loadSnapshot, saveSnapshot } from "./monitor/snapshot";
import { DEFAULT_TIERS, Tier, TimeSeriesStore } from "./monitor/timeseries";

interface MonitorSettings {
	/** ms between two evaluations: sampling, alert rules, gauges. */
	evaluateInterval: number;
	/** ms between two reads of the rules from the store and the workloads from the scheduler. */
	refreshInterval: number;
	/** ms between two reads of the whole inventory, to catch up on events missed while away. */
	syncInterval: number;
	/** ms between two snapshots of the history into the store. */
	snapshotInterval: number;
	/** ms the leader holds its lead unrenewed; a standby takes over within it (ISA_LEADER_LEASE). */
	leaderLease: number;
	history: Tier[];
	/** Most series kept; see timeseries.ts for the memory this bounds. */
	maxSeries: number;
	/** Resolved alerts kept for `listAlerts`. */
	recentAlerts: number;
	defaultRules: boolean;
	webhook: Required<
		Pick<NotifierOptions, "timeout" | "maxAttempts" | "backoff" | "maxBackoff" | "maxQueue">
	>;
}

interface Meta {
	user?: Principal;
	idempotencyKey?: string;
	$statusCode?: number;
	/** With 201: where the new resource is (the Location header). */
	$location?: string;
}

interface MonitorThis extends Service<MonitorSettings>, PeriodicMethods {
	store: Store;
	storeIdentity: IdentityGuard;
	seedDefaults(): Promise<void>;
	ruleStore: RuleStore;
	/** The rules evaluated, as last read from the store (or just created or deleted here). */
	rules: AlertRule[];
	cluster: ClusterView;
	series: TimeSeriesStore;
	alerts: AlertEvaluator;
	notifier: Notifier;
	leadership: Leadership;
	ledger: NoticeLedger;
	/** The announcement in flight, if any: one at a time. */
	announcing: Promise<void> | null;
	announce(): Promise<void>;
	refresh(): Promise<void>;
	syncNodes(): Promise<void>;
	evaluate(): void;
	updateGauges(): void;
	saveSnapshot(): Promise<void>;
}

/** Seconds (a number, or digits as a query string brings them) or a duration like "5m". */
const durationParam = [
	{ type: "number", min: 0, convert: true },
	{ type: "string", min: 1, max: 32 }
];

/**
 * The Moleculer event group of this process's monitor. `node.up`, `node.down` and the like are
 * emitted (balanced: one listener per group), so with the default group only one of several
 * monitors would hear each; a group of its own makes every copy hear all of them.
 */
const EVENT_GROUP = `monitor-${process.pid}-${crypto.randomBytes(3).toString("hex")}`;

/** Each handler in this process's own event group. */
function everyCopy<H>(handlers: Record<string, H>): Record<string, { group: string; handler: H }> {
	return Object.fromEntries(
		Object.entries(handlers).map(([name, handler]) => [name, { group: EVENT_GROUP, handler }])
	);
}

const env = loadEnv();

const MonitorService: ServiceSchema<MonitorSettings, MonitorThis> = {
	name: "monitor",
	mixins: [StoreMixin(), PeriodicMixin()],

	settings: {
		evaluateInterval: 1000,
		refreshInterval: 2000,
		syncInterval: 10_000,
		snapshotInterval: 10_000,
		leaderLease: env.leaderLease,
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
			idempotent: true,
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
				ctx: Context<StatsParams & { limit?: number; offset?: number }, Meta>
			) {
				const query = statsQuery(ctx.params, ctx.meta.user, Date.now());
				const result = this.series.query(query);
				return {
					...page(result.items, ctx.params, 1000),
					since: query.since,
					step: result.step
				};
			}
		},

		/** The alert rules the user may see (the cluster's and its tenant's), oldest first. */
		listRules: {
			idempotent: true,
			params: { $$strict: true, ...pageParams(10000) },
			async handler(
				this: MonitorThis,
				ctx: Context<{ limit?: number; offset?: number }, Meta>
			) {
				return page(await this.ruleStore.list(ctx.meta.user), ctx.params);
			}
		},

		/**
		 * Creates an alert rule (201): the cluster's when an admin makes it, else the caller's
		 * tenant's; 422 for a bad metric, op or `for`, 409 for a name taken by a visible rule.
		 */
		createRule: {
			idempotent: "with-key",
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
				const { rule, created } = await this.ruleStore.create(ctx.params, {
					idempotencyKey: ctx.meta.idempotencyKey,
					createdBy: ctx.meta.user?.sub ?? "internal",
					now: Date.now(),
					user: ctx.meta.user
				});
				if (!created) return rule;
				this.rules = [...this.rules.filter(r => r.id !== rule.id), rule];
				ctx.meta.$statusCode = 201;
				ctx.meta.$location = `/api/v1/alerts/rules/${encodeURIComponent(rule.id)}`;
				return rule;
			}
		},

		/**
		 * Deletes an alert rule; its firing alerts are resolved at the next evaluation. 404 for
		 * another tenant's rule, 403 for a cluster rule unless an admin asks.
		 */
		deleteRule: {
			idempotent: true,
			access: "write",
			params: { $$strict: true, id: { type: "string", min: 1, max: 128 } },
			async handler(this: MonitorThis, ctx: Context<{ id: string }, Meta>) {
				await this.ruleStore.delete(ctx.params.id, ctx.meta.user);
				this.rules = this.rules.filter(r => r.id !== ctx.params.id);
				return { id: ctx.params.id, deleted: true };
			}
		},

		/**
		 * Pending and firing alerts, then recently resolved ones; `state` filters. A user sees
		 * the alerts of the rules it may see, except those about another tenant's series.
		 */
		listAlerts: {
			idempotent: true,
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
					.filter(a => (!state || a.state === state) && alertVisible(a, ctx.meta.user));
				return page(alerts, ctx.params);
			}
		}
	},

	events: everyCopy({
		[EVENTS.nodeReport](this: MonitorThis, ctx: Context<NodeReport>) {
			this.cluster.report(ctx.params);
		},
		[EVENTS.nodeUp](this: MonitorThis, ctx: Context<NodeInfo>) {
			this.cluster.setNode(ctx.params);
		},
		[EVENTS.nodeUpdated](this: MonitorThis, ctx: Context<NodeInfo>) {
			this.cluster.setNode(ctx.params);
		},
		[EVENTS.nodeDown](this: MonitorThis, ctx: Context<NodeInfo>) {
			this.cluster.setNode(ctx.params);
		},
		[EVENTS.nodesHeld](this: MonitorThis, ctx: Context<{ nodes: string[] }>) {
			this.cluster.held = ctx.params.nodes.length;
		},
		[EVENTS.nodeAllocated](
			this: MonitorThis,
			ctx: Context<{ nodeID: string; allocated: NodeInfo["allocated"] }>
		) {
			this.cluster.setAllocated(ctx.params.nodeID, ctx.params.allocated);
		},
		[EVENTS.resourceHealthChanged](
			this: MonitorThis,
			ctx: Context<{ id: string; name: string; health: PublicHealth } & Owned>
		) {
			const { id, name, health } = ctx.params;
			this.cluster.resourceHealth(id, name, health, ctx.params);
		},
		[EVENTS.serviceHealthChanged](
			this: MonitorThis,
			ctx: Context<{ name: string; endpoint?: string; health: PublicHealth } & Owned>
		) {
			const { name, endpoint, health } = ctx.params;
			this.cluster.serviceHealth(name, endpoint, health, ctx.params);
		}
	}),

	methods: {
		/**
		 * Rules from the store (other instances write them too) and workloads from the
		 * scheduler. While the store is not the cluster's, the rules stay as last read: an
		 * emptied store would otherwise silence every alert.
		 */
		async refresh(this: MonitorThis) {
			const trusted = this.storeIdentity.usable;
			if (trusted) await this.seedDefaults();
			const [rules, workloads] = await Promise.all([
				trusted ? this.ruleStore.usable() : this.rules,
				this.broker
					.call<{ items: Workload[] }, object>("scheduler.states", {}, { retries: 0 })
					.then(
						res => res.items,
						// The scheduler is not reachable: keep the workloads as last seen.
						() => this.cluster.workloads
					)
			]);
			this.rules = rules;
			this.cluster.workloads = workloads;
		},

		/** The whole inventory: catches up on events sent while this service was not there. */
		async syncNodes(this: MonitorThis) {
			try {
				const { items } = await this.broker.call<{ items: NodeInfo[] }, object>(
					"nodes.list",
					{ limit: 10000 },
					{ retries: 0 }
				);
				this.cluster.setNodes(items);
			} catch (err) {
				this.logger.debug("No inventory to sync from yet:", (err as Error).message);
			}
		},

		/** Writes the default rules the store misses (monitor/default-rules.ts). */
		async seedDefaults(this: MonitorThis) {
			if (!this.settings.defaultRules) return;
			try {
				const written = await seedDefaultRules(this.store);
				if (written > 0) this.logger.info(`Default alert rules created: ${written}.`);
			} catch (err) {
				this.logger.warn("Default alert rules not seeded:", (err as Error).message);
			}
		},

		/**
		 * One round: record history, evaluate the rules, set gauges, and on the leader announce
		 * what changed. A tenant's rules see that tenant's view of the cluster
		 * (ClusterView.samples(tenant)).
		 */
		evaluate(this: MonitorThis) {
			const identity = this.storeIdentity;
			this.cluster.storeIdentity = identity.mismatch ? false : identity.usable ? true : null;
			const samples = this.cluster.samples();
			this.series.record(samples, Date.now());
			const viewOf = (tenant: string) => this.cluster.samples(tenant);
			this.alerts.evaluate([...this.rules, STORE_IDENTITY_RULE], samples, viewOf);
			this.updateGauges();
			if (this.leadership.isLeader && !this.announcing)
				this.announcing = this.announce().finally(() => (this.announcing = null));
		},

		/**
		 * Writes what began firing or was resolved since the last announcement (fenced by the
		 * leader's term), then broadcasts it and queues its webhooks. A new leader first loads
		 * what was announced and delivers the webhooks left undelivered.
		 */
		async announce(this: MonitorThis) {
			try {
				if (!this.ledger.loaded) {
					const outbox = await this.ledger.load();
					if (outbox.length > 0)
						this.logger.info(
							`Delivering ${outbox.length} webhook notice(s) left by the last leader.`
						);
					for (const n of outbox) this.notifier.deliver(n);
				}
				const notices: Notice[] = await this.ledger.sync(this.alerts.firing(), Date.now());
				for (const n of notices) {
					this.logger.info(
						`Alert '${n.rule.name}' ${n.status}: ${n.alert.series} = ${n.alert.value}`
					);
					this.broker.broadcast(
						n.status === "firing" ? EVENTS.alertFiring : EVENTS.alertResolved,
						n.alert
					);
					this.notifier.deliver(n);
				}
			} catch (err) {
				// The store is away: the same changes are announced by a later round.
				this.logger.debug("Alerts not announced this round:", (err as Error).message);
			}
		},

		updateGauges(this: MonitorThis) {
			if (!this.broker.isMetricsEnabled()) return;
			setGauges(
				this.broker.metrics,
				gaugeValues(this.cluster, this.alerts.firingBySeverity())
			);
		},

		async saveSnapshot(this: MonitorThis) {
			// Not into a store that is not the cluster's (its writes are refused anyway), and
			// from the leader only: the copies' histories are alike, one writer is enough.
			if (!this.storeIdentity.usable || !this.leadership.isLeader) return;
			const { series, alerts, cluster } = this;
			await saveSnapshot(this.store, { series, alerts, health: cluster.health }, Date.now());
		}
	},

	created(this: MonitorThis) {
		this.rules = [];
		this.cluster = new ClusterView();
		this.series = new TimeSeriesStore({
			tiers: this.settings.history,
			maxSeries: this.settings.maxSeries
		});
		this.alerts = new AlertEvaluator({
			clock: () => Date.now(),
			keepResolved: this.settings.recentAlerts
		});
		this.announcing = null;
		this.notifier = new Notifier({
			...this.settings.webhook,
			logger: this.logger,
			maySend: () => this.leadership.isLeader,
			onSettled: notice => this.ledger.settle(notice.id)
		});
	},

	async started(this: MonitorThis) {
		// The store mixin opens `this.store` in its own `started`, which runs before this one.
		this.ruleStore = new RuleStore(this.store, this.logger);
		if (this.broker.isMetricsEnabled()) registerGauges(this.broker.metrics);
		const { series, alerts, cluster } = this;
		await loadSnapshot(this.store, { series, alerts, health: cluster.health }, this.logger);
		// refresh() seeds the default rules the store misses, now and at every refresh after.
		await this.refresh();
		await this.syncNodes();
		const s = this.settings;
		this.ledger = new NoticeLedger({
			store: this.store,
			fence: () => this.leadership.fence(),
			maxOutbox: s.webhook.maxQueue,
			onDropped: n =>
				this.logger.warn(
					`Webhook outbox full: dropped ${n.status} '${n.rule.name}' (${n.alert.series}).`
				)
		});
		this.leadership = new Leadership({
			store: this.store,
			name: "monitor",
			me: { ...thisProcess(), nodeID: this.broker.nodeID },
			leaseMs: s.leaderLease,
			onElected: term => {
				// Loaded afresh by the next announcement: another leader may have written since.
				this.ledger.forget();
				this.logger.info(`This monitor leads (term ${term}): it announces the alerts.`);
			},
			onDeposed: reason => {
				this.ledger.forget();
				this.notifier.clear();
				this.logger.info(`This monitor no longer leads (${reason}); it stands by.`);
			}
		});
		this.leadership.start();
		this.every("evaluate", s.evaluateInterval, () => this.evaluate());
		this.every("refresh", s.refreshInterval, () => this.refresh());
		this.every("sync", s.syncInterval, () => this.syncNodes());
		this.every("snapshot", s.snapshotInterval, () => this.saveSnapshot());
		this.logger.info(
			`Monitoring: history of at most ${s.maxSeries} series (${Math.round(this.series.memoryBound / 2 ** 20)} MiB).`
		);
	},

	async stopped(this: MonitorThis) {
		try {
			await this.saveSnapshot();
		} catch (err) {
			this.logger.warn("History not saved on stop:", (err as Error).message);
		}
		// Resigning lets a standby take over at once instead of after the lease.
		await this.leadership?.stop();
		this.notifier.close();
	}
};

export default MonitorService;
