/**
 * Alert rules as plain data and their evaluation as a small state machine, the way Prometheus
 * does it: each series a rule's selector matches is an alert of its own; a series that meets
 * the condition is `pending`, becomes `firing` once it has met it for the rule's `for`, and is
 * `resolved` when it stops meeting it (or its series, or its rule, goes away). A pending alert
 * whose condition ends just disappears: nothing was announced for it. No I/O; the clock is
 * injected, so tests step through time.
 */
import crypto from "crypto";
import { InvalidInputError } from "../shared/errors";
import { parseDuration } from "../shared/duration";
import { MAX_ALERT_THRESHOLD } from "../shared/limits";
import { isClusterOwned, type Owned } from "../shared/principal";
import { METRICS } from "./sampling";
import { Labels, Sample, seriesKey } from "./timeseries";

export const OPS = [">", ">=", "<", "<=", "==", "!="] as const;
export type Op = (typeof OPS)[number];

export const SEVERITIES = ["critical", "warning", "info"] as const;
export type Severity = (typeof SEVERITIES)[number];

export interface Matcher {
	label: string;
	op: "=" | "!=";
	value: string;
}

/** `name{label="v",other!="w"}` parsed. */
export interface Selector {
	metric: string;
	matchers: Matcher[];
}

/** The body of POST /api/v1/alerts/rules after the schema check. */
export interface RuleInput {
	name: string;
	metric: string;
	op: Op;
	threshold: number;
	for: number | string;
	severity: Severity;
	labels?: Labels;
	notify?: { webhook?: string };
}

/**
 * A rule belongs to the cluster (an admin's, and the defaults) or to the tenant whose operator
 * made it; rules stored before owners existed are the cluster's.
 */
export interface AlertRule extends Owned {
	id: string;
	name: string;
	/** The selector in canonical form. */
	metric: string;
	op: Op;
	threshold: number;
	/** As given: seconds, or a duration such as "1m30s". */
	for: number | string;
	forMs: number;
	severity: Severity;
	/** Added to the labels of each of the rule's alerts. */
	labels: Labels;
	notify?: { webhook: string };
	createdAt: number;
	createdBy: string;
}

export type AlertState = "pending" | "firing" | "resolved";

/**
 * One series' alert of one rule. `owner` and `tenant` are its rule's; `labels.tenant` is the
 * tenant the series is about (a tenant's rule only sees its own tenant's series, so its alerts
 * always carry that tenant). Who may see an alert: queries.ts `alertVisible`.
 */
export interface Alert extends Owned {
	id: string;
	ruleId: string;
	rule: string;
	severity: Severity;
	/** The series, e.g. `node.gpu.temperature{gpu="0",node="n1"}`. */
	series: string;
	/** The series' labels and the rule's. */
	labels: Labels;
	op: Op;
	threshold: number;
	state: AlertState;
	/** When it entered its current state. */
	since: number;
	/** When the condition began to hold. */
	activeAt: number;
	firedAt?: number;
	resolvedAt?: number;
	/** The latest value seen (the last one while it held, once resolved). */
	value: number;
}

/** An alert that began firing or was resolved in one evaluation: what gets announced. */
export interface Transition {
	status: "firing" | "resolved";
	alert: Alert;
	rule: AlertRule;
}

export const MAX_FOR_MS = 30 * 24 * 3600 * 1000;

function invalidMetric(text: string, message: string, position?: number): InvalidInputError {
	return new InvalidInputError(`Invalid metric '${text}': ${message}`, {
		field: "metric",
		metric: text,
		...(position === undefined ? {} : { position })
	});
}

/**
 * Parses `name` or `name{label="value",other!="value"}` (values in double quotes, `\"` and `\\`
 * escaped) and checks the name and labels against the metrics the monitor samples. Throws
 * InvalidInputError (422) saying where and what was expected.
 */
export function parseSelector(text: string): Selector {
	let i = 0;
	const skipSpace = () => {
		while (i < text.length && /\s/.test(text[i])) i++;
	};
	const expect = (what: string) =>
		invalidMetric(
			text,
			`expected ${what} at position ${i}, found ${i < text.length ? `'${text[i]}'` : "the end"}.`,
			i
		);
	const ident = (pattern: RegExp, what: string): string => {
		const m = pattern.exec(text.slice(i));
		if (!m) throw expect(what);
		i += m[0].length;
		return m[0];
	};

	skipSpace();
	const metric = ident(/^[a-zA-Z_][a-zA-Z0-9_.]*/, "a metric name");
	const known = METRICS[metric];
	if (!known)
		throw invalidMetric(
			text,
			`unknown metric '${metric}'; known: ${Object.keys(METRICS).join(", ")}.`
		);
	const matchers: Matcher[] = [];
	skipSpace();
	if (text[i] === "{") {
		i++;
		skipSpace();
		while (text[i] !== "}") {
			const at = i;
			const label = ident(/^[a-zA-Z_][a-zA-Z0-9_]*/, "a label name or '}'");
			if (!known.labels.includes(label))
				throw invalidMetric(
					text,
					`'${metric}' has no label '${label}'` +
						(known.labels.length ? ` (it has ${known.labels.join(", ")}).` : "."),
					at
				);
			skipSpace();
			const op = text.startsWith("!=", i) ? "!=" : text[i] === "=" ? "=" : null;
			if (!op) throw expect("'=' or '!='");
			i += op.length;
			skipSpace();
			if (text[i] !== '"') throw expect("a value in double quotes");
			i++;
			let value = "";
			while (i < text.length && text[i] !== '"') {
				if (text[i] === "\\" && i + 1 < text.length) i++;
				value += text[i++];
			}
			if (i >= text.length) throw expect("a closing '\"'");
			i++;
			matchers.push({ label, op, value });
			skipSpace();
			if (text[i] === ",") {
				i++;
				skipSpace();
			} else if (text[i] !== "}") throw expect("',' or '}'");
		}
		i++;
		skipSpace();
	}
	if (i < text.length) throw expect("the end");
	return { metric, matchers };
}

/** The canonical text of a selector: matchers in label order, values escaped. */
export function formatSelector(sel: Selector): string {
	if (sel.matchers.length === 0) return sel.metric;
	const parts = [...sel.matchers]
		.sort((a, b) => (a.label < b.label ? -1 : a.label > b.label ? 1 : 0))
		.map(m => `${m.label}${m.op}"${m.value.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`);
	return `${sel.metric}{${parts.join(",")}}`;
}

/** A missing label matches `=""`, as in Prometheus. */
export function matches(sel: Selector, metric: string, labels: Labels): boolean {
	if (metric !== sel.metric) return false;
	return sel.matchers.every(m => ((labels[m.label] ?? "") === m.value) === (m.op === "="));
}

/** A rule from a checked request: its selector parsed and canonical, its `for` in ms. */
export function makeRule(
	input: RuleInput,
	ids: { id: string; now: number; createdBy: string; owner?: Owned }
): AlertRule {
	const owner: Owned =
		ids.owner && !isClusterOwned(ids.owner)
			? { owner: "tenant", tenant: ids.owner.tenant }
			: { owner: "cluster" };
	if (!OPS.includes(input.op))
		throw new InvalidInputError(`op '${input.op}' is not one of ${OPS.join(" ")}.`, {
			field: "op",
			value: input.op
		});
	if (!Number.isFinite(input.threshold) || Math.abs(input.threshold) > MAX_ALERT_THRESHOLD)
		throw new InvalidInputError(
			`threshold must be a finite number from -${MAX_ALERT_THRESHOLD} to ${MAX_ALERT_THRESHOLD}.`,
			{
				field: "threshold",
				value: input.threshold,
				min: -MAX_ALERT_THRESHOLD,
				max: MAX_ALERT_THRESHOLD
			}
		);
	// A tenant's alerts are labelled with its tenant (see newAlert): a rule cannot name another.
	const tenantLabel = input.labels?.tenant;
	if (owner.owner === "tenant" && tenantLabel !== undefined && tenantLabel !== owner.tenant)
		throw new InvalidInputError(
			"labels.tenant of a tenant's rule is its own tenant; leave it out.",
			{ field: "labels.tenant", value: tenantLabel }
		);
	const rule: AlertRule = {
		id: ids.id,
		...owner,
		name: input.name,
		metric: formatSelector(parseSelector(input.metric)),
		op: input.op,
		threshold: input.threshold,
		for: input.for,
		forMs: parseDuration(input.for, { field: "for", max: MAX_FOR_MS }),
		severity: input.severity,
		labels: { ...(input.labels ?? {}) },
		createdAt: ids.now,
		createdBy: ids.createdBy
	};
	if (input.notify?.webhook) rule.notify = { webhook: input.notify.webhook };
	return rule;
}

export function compare(value: number, op: Op, threshold: number): boolean {
	switch (op) {
		case ">":
			return value > threshold;
		case ">=":
			return value >= threshold;
		case "<":
			return value < threshold;
		case "<=":
			return value <= threshold;
		case "==":
			return value === threshold;
		case "!=":
			return value !== threshold;
	}
}

interface Active {
	alert: Alert;
	/** Kept with the alert, so a deleted rule's alerts can still be resolved and announced. */
	rule: AlertRule;
}

/** What `export` returns and `import` takes: enough to go on after a restart. */
export interface AlertsSnapshot {
	active: (Active & { key: string })[];
	recent: Alert[];
}

export class AlertEvaluator {
	private readonly clock: () => number;
	private readonly keepResolved: number;
	/** By rule id and series key. */
	private readonly active = new Map<string, Active>();
	/** Resolved alerts, newest last, at most `keepResolved`. */
	private recent: Alert[] = [];
	private readonly selectors = new Map<string, Selector>();

	constructor(opts: { clock: () => number; keepResolved?: number }) {
		this.clock = opts.clock;
		this.keepResolved = opts.keepResolved ?? 200;
	}

	/**
	 * One round over every rule and the current samples; resolves what began or ended. A
	 * tenant's rule is evaluated against `viewOf(tenant)`: by default the samples without a
	 * tenant label or with its own (see sampling.ts `ClusterView.samples` for a view that also
	 * recounts the cluster-wide workload counts over that tenant's workloads only).
	 */
	evaluate(
		rules: AlertRule[],
		samples: Sample[],
		viewOf: (tenant: string) => Sample[] = tenant => tenantView(samples, tenant)
	): Transition[] {
		const now = this.clock();
		const out: Transition[] = [];
		const seen = new Set<string>();
		const views = new Map<string, Sample[]>();
		for (const rule of rules) {
			const sel = this.selector(rule.metric);
			let seenBy = samples;
			if (!isClusterOwned(rule)) {
				const tenant = rule.tenant ?? "";
				seenBy = views.get(tenant) ?? viewOf(tenant);
				views.set(tenant, seenBy);
			}
			for (const s of seenBy) {
				if (!matches(sel, s.metric, s.labels)) continue;
				const series = seriesKey(s.metric, s.labels);
				const key = `${rule.id}\u0000${series}`;
				seen.add(key);
				let entry = this.active.get(key);
				if (!compare(s.value, rule.op, rule.threshold)) {
					if (entry) this.end(key, entry, now, out);
					continue;
				}
				if (!entry) {
					entry = { alert: newAlert(rule, series, s, now), rule };
					this.active.set(key, entry);
				}
				entry.alert.value = s.value;
				if (entry.alert.state === "pending" && now - entry.alert.activeAt >= rule.forMs) {
					Object.assign(entry.alert, { state: "firing", since: now, firedAt: now });
					out.push({ status: "firing", alert: { ...entry.alert }, rule });
				}
			}
		}
		// Alerts not matched this round lost their series (a node that is down has no GPU series)
		// or their rule (deleted): they end now.
		for (const [key, entry] of this.active) if (!seen.has(key)) this.end(key, entry, now, out);
		return out;
	}

	/** Pending and firing alerts, then resolved ones, newest first within each. */
	list(): Alert[] {
		const order: Record<AlertState, number> = { firing: 0, pending: 1, resolved: 2 };
		return [...[...this.active.values()].map(e => e.alert), ...this.recent]
			.map(a => ({ ...a }))
			.sort((a, b) => order[a.state] - order[b.state] || b.since - a.since);
	}

	/** The firing alerts with their rules, by alert key: what the leader announces. */
	firing(): Map<string, Active> {
		const out = new Map<string, Active>();
		for (const [key, e] of this.active)
			if (e.alert.state === "firing") out.set(key, { alert: { ...e.alert }, rule: e.rule });
		return out;
	}

	/** Firing alerts per severity, every severity present (0 when none). */
	firingBySeverity(): Record<Severity, number> {
		const counts = { critical: 0, warning: 0, info: 0 };
		for (const { alert } of this.active.values())
			if (alert.state === "firing") counts[alert.severity]++;
		return counts;
	}

	export(): AlertsSnapshot {
		return {
			active: [...this.active].map(([key, e]) => ({ key, ...e })),
			recent: this.recent
		};
	}

	import(snapshot: AlertsSnapshot): void {
		for (const { key, alert, rule } of snapshot.active) this.active.set(key, { alert, rule });
		this.recent = [...snapshot.recent, ...this.recent].slice(-this.keepResolved);
	}

	private end(key: string, entry: Active, now: number, out: Transition[]): void {
		this.active.delete(key);
		if (entry.alert.state !== "firing") return;
		const alert: Alert = { ...entry.alert, state: "resolved", since: now, resolvedAt: now };
		this.recent.push(alert);
		if (this.recent.length > this.keepResolved) this.recent.shift();
		out.push({ status: "resolved", alert: { ...alert }, rule: entry.rule });
	}

	private selector(text: string): Selector {
		let sel = this.selectors.get(text);
		if (!sel) {
			sel = parseSelector(text);
			this.selectors.set(text, sel);
		}
		return sel;
	}
}

/** What a tenant's rule sees of the samples: the cluster's series and its own tenant's. */
export function tenantView(samples: Sample[], tenant: string): Sample[] {
	return samples.filter(s => s.labels.tenant === undefined || s.labels.tenant === tenant);
}

/**
 * The labels of a new alert: the series', then the rule's; but `tenant` says whose series it
 * is (a rule's labels cannot hide that), and a tenant's rule always names its tenant.
 */
export function alertLabels(rule: AlertRule, series: Labels): Labels {
	const labels = { ...series, ...rule.labels };
	if (series.tenant !== undefined) labels.tenant = series.tenant;
	else if (!isClusterOwned(rule) && rule.tenant !== undefined) labels.tenant = rule.tenant;
	return labels;
}

function newAlert(rule: AlertRule, series: string, s: Sample, now: number): Alert {
	return {
		...(isClusterOwned(rule) ? { owner: "cluster" } : { owner: "tenant", tenant: rule.tenant }),
		id: crypto
			.createHash("sha1")
			.update(`${rule.id}\u0000${series}\u0000${now}`)
			.digest("hex")
			.slice(0, 16),
		ruleId: rule.id,
		rule: rule.name,
		severity: rule.severity,
		series,
		labels: alertLabels(rule, s.labels),
		op: rule.op,
		threshold: rule.threshold,
		state: "pending",
		since: now,
		activeAt: now,
		value: s.value
	};
}
