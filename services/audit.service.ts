/**
 * audit: the append-only, hash-chained record of every mutating request and every denied one
 * (the gateway's hooks, services/gateway/audit-hooks.ts) and of what the control plane changes
 * by itself (`audit.record`). Its logic is in services/audit/: record.ts (what a record holds),
 * chain.ts (the keyed hash chain), log.ts (the chain over the store), query.ts (filters, pages),
 * retention.ts (what is kept).
 *
 * It owns the store log `audit`, the write-ahead entries `audit-pending` and the chain's anchor
 * in `audit-state`. Write-ahead entries whose request never ended are completed at start and
 * every `recoverInterval` with an unknown outcome, so every begun request still ends with
 * exactly one record.
 */
import type { Context, Service, ServiceSchema } from "moleculer";
import StoreMixin from "../mixins/store.mixin";
import PeriodicMixin, { PeriodicMethods } from "../mixins/periodic.mixin";
import { loadEnv } from "./shared/env";
import type { Store } from "./shared/store";
import { tenantFilter, type Principal } from "./shared/principal";
import { loadOrCreateAuditKey } from "./audit/key";
import { AuditLog } from "./audit/log";
import { parseCursor, parseTime, toJsonLines, type AuditPage } from "./audit/query";
import { systemFields, type AuditFields, type AuditRecord } from "./audit/record";

const env = loadEnv();

interface AuditSettings {
	auditKey: string | null;
	dataDir: string;
	maxRecords: number | null;
	maxAgeMs: number | null;
	/** ms between two retention passes. */
	retentionInterval: number;
	/** ms between two passes over write-ahead entries left behind. */
	recoverInterval: number;
	/**
	 * Age (ms) after which a write-ahead entry counts as abandoned: far past the request
	 * timeout, so that a request still running is never completed as unknown.
	 */
	pendingGrace: number;
}

interface Meta {
	user?: Principal;
	$responseType?: string;
}

interface AuditThis extends Service<AuditSettings>, PeriodicMethods {
	store: Store;
	key: string;
	log: AuditLog;
	maintain(): Promise<void>;
}

interface ListParams {
	since?: string | number;
	until?: string | number;
	actor?: string;
	action?: string;
	outcome?: "succeeded" | "failed" | "denied" | "unknown";
	target?: string;
	tenant?: string;
	limit?: number;
	cursor?: string;
	order?: "asc" | "desc";
	format?: "json" | "jsonl";
}

const fieldsParam = { type: "object" } as const;
const timeParam = [
	{ type: "number", integer: true, min: 0, optional: true },
	{ type: "string", max: 40, optional: true }
];
const textParam = { type: "string", min: 1, max: 256, optional: true } as const;

const AuditService: ServiceSchema<AuditSettings, AuditThis> = {
	name: "audit",
	mixins: [StoreMixin(), PeriodicMixin()],

	settings: {
		auditKey: env.auditKey,
		dataDir: env.dataDir,
		maxRecords: env.auditMaxRecords,
		maxAgeMs: env.auditMaxAge,
		retentionInterval: 60_000,
		recoverInterval: 30_000,
		pendingGrace: Math.max(60_000, 6 * env.requestTimeout)
	},

	actions: {
		/** Makes a request's write-ahead entry durable before its action runs (the gateway). */
		begin: {
			idempotent: false,
			visibility: "public",
			params: { $$strict: true, fields: fieldsParam },
			async handler(this: AuditThis, ctx: Context<{ fields: AuditFields }>) {
				await this.log.begin(ctx.params.fields);
				return { id: ctx.params.fields.id };
			}
		},

		/** Appends a request's final record; `begun`: drop its write-ahead entry too. */
		commit: {
			idempotent: false,
			visibility: "public",
			params: { $$strict: true, fields: fieldsParam, begun: "boolean" },
			async handler(
				this: AuditThis,
				ctx: Context<{ fields: AuditFields; begun: boolean }>
			): Promise<{ id: string; seq: number }> {
				const { fields, begun } = ctx.params;
				const record = begun
					? await this.log.commit(fields)
					: await this.log.append(fields);
				return { id: record.id, seq: record.seq };
			}
		},

		/**
		 * Records what the control plane did by itself: a reschedule, an eviction, a drain from
		 * the REPL, an apply at start. Callers log a failure; the change is not undone.
		 */
		record: {
			idempotent: false,
			visibility: "public",
			params: {
				$$strict: true,
				actor: { type: "string", min: 1, max: 256 },
				action: { type: "string", min: 1, max: 256 },
				target: { type: "string", max: 256, optional: true },
				tenant: { type: "string", max: 256, optional: true },
				detail: { type: "string", max: 4096, optional: true },
				succeeded: { type: "boolean", optional: true },
				errorType: { type: "string", max: 128, optional: true }
			},
			async handler(
				this: AuditThis,
				ctx: Context<Parameters<typeof systemFields>[0]>
			): Promise<{ id: string; seq: number }> {
				const record = await this.log.append(systemFields(ctx.params));
				return { id: record.id, seq: record.seq };
			}
		},

		/**
		 * `GET /api/v1/audit`: records newest first (`order=asc`: oldest first), filtered; an
		 * admin sees every tenant's (or `tenant`'s), anyone else only their tenant's.
		 */
		list: {
			idempotent: true,
			access: "read",
			params: {
				$$strict: true,
				since: timeParam,
				until: timeParam,
				actor: textParam,
				action: textParam,
				outcome: {
					type: "enum",
					values: ["succeeded", "failed", "denied", "unknown"],
					optional: true
				},
				target: textParam,
				tenant: textParam,
				limit: {
					type: "number",
					integer: true,
					min: 1,
					max: 1000,
					optional: true,
					convert: true
				},
				cursor: { type: "string", max: 20, optional: true },
				order: { type: "enum", values: ["asc", "desc"], optional: true },
				format: { type: "enum", values: ["json", "jsonl"], optional: true }
			},
			async handler(
				this: AuditThis,
				ctx: Context<ListParams, Meta>
			): Promise<AuditPage | string> {
				const p = ctx.params;
				const user = ctx.meta.user;
				const page = await this.log.page(
					{
						since: parseTime(p.since, "since"),
						until: parseTime(p.until, "until"),
						actor: p.actor,
						action: p.action,
						outcome: p.outcome,
						target: p.target,
						tenant: user ? tenantFilter(user, p.tenant) : p.tenant
					},
					{
						limit: p.limit ?? 100,
						cursor: parseCursor(p.cursor),
						order: p.order ?? "desc"
					}
				);
				if (p.format !== "jsonl") return page;
				ctx.meta.$responseType = "application/x-ndjson";
				return toJsonLines(page.items);
			}
		},

		/** Walks the chain; what `npm run audit -- verify` prints. */
		verify: {
			idempotent: true,
			visibility: "public",
			async handler(this: AuditThis) {
				return this.log.verify();
			}
		}
	},

	methods: {
		/** Completes abandoned write-ahead entries, then applies retention. */
		async maintain(this: AuditThis) {
			const completed = await this.log.recover(this.settings.pendingGrace);
			if (completed > 0)
				this.logger.warn(
					`Completed ${completed} audit record(s) whose request never ended (outcome unknown).`
				);
			const dropped = await this.log.trim({
				maxRecords: this.settings.maxRecords,
				maxAgeMs: this.settings.maxAgeMs
			});
			if (dropped > 0) this.logger.info(`Audit retention dropped ${dropped} record(s).`);
		}
	},

	created(this: AuditThis) {
		this.key = loadOrCreateAuditKey(this.settings.auditKey, this.settings.dataDir, msg =>
			this.logger.warn(msg)
		);
	},

	async started(this: AuditThis) {
		this.log = new AuditLog(this.store, this.key);
		try {
			await this.maintain();
		} catch (err) {
			// A store that is down now is retried by the timer; the service still starts.
			this.logger.warn("Audit maintenance at start failed:", (err as Error).message);
		}
		const every = Math.min(this.settings.recoverInterval, this.settings.retentionInterval);
		this.every("maintain", every, () => this.maintain());
	}
};

export type { AuditRecord };
export default AuditService;
