/**
 * The side lists: workloads with their replicas, registered services and resources with their
 * health, and alerts. Each is rebuilt whole when it changes: they are short (alerts at most
 * MAX_ALERTS) and change far less often than the node cards.
 */
import type { Alert } from "../../monitor/alerts";
import type { HealthStatus } from "../../registry/health";
import { byId, dot, el } from "./dom";
import { describeRequest } from "./format";
import { DashboardState, sortedAlerts, sortedWorkloads } from "./state";
import { isAdmin } from "./token";
import type { ServiceView, WorkloadView } from "./types";

/** Fills a list, or says `none` when it is empty; the count goes next to its heading. */
function fillList(listId: string, countId: string, items: HTMLElement[], none: string): void {
	byId(countId).textContent = items.length ? String(items.length) : "";
	byId(listId).replaceChildren(...(items.length ? items : [el("li", "none", none)]));
}

function workloadItem(w: WorkloadView, admin: boolean, onSelect: (node: string) => void) {
	const li = el("li");
	li.dataset.workloadId = w.id;
	const title = el("span", "title", w.name);
	// Other roles see their own tenant's workloads only: the tenant says nothing to them.
	if (admin) title.appendChild(el("small", null, w.tenant));
	const running = w.replicas.filter(r => r.state === "running").length;
	const aside = el("span", "aside", `${w.status} · ${running}/${w.replicas.length}`);
	const detail = el("span", "detail");
	for (const r of w.replicas) {
		const chip = el("span", "chip");
		const where = r.node
			? r.node + (r.gpus.length ? ` · GPU ${r.gpus.join(",")}` : "")
			: r.state + (r.reason ? `: ${r.reason}` : "");
		chip.append(dot(r.state), el("span", null, where));
		chip.title = `replica ${r.index}: ${r.state}${r.reason ? ` — ${r.reason}` : ""}`;
		const node = r.node;
		if (node) chip.addEventListener("click", () => onSelect(node));
		detail.appendChild(chip);
	}
	const asks = describeRequest(w.resources);
	if (asks) detail.appendChild(el("span", null, `${asks} each`));
	li.append(dot(w.status), title, aside, detail);
	return li;
}

/** Workloads in creation order; a replica's chip selects the node it runs on. */
export function renderWorkloads(state: DashboardState, onSelect: (node: string) => void): void {
	const admin = isAdmin(state.claims);
	const items = sortedWorkloads(state.workloads.values()).map(w =>
		workloadItem(w, admin, onSelect)
	);
	fillList("workloads", "wl-count", items, "No workloads.");
}

/** An external service's endpoints by URL; a Moleculer service's by the node offering it. */
function endpointsOf(s: ServiceView): { where: string; status: HealthStatus }[] {
	return s.endpoints.map(e => ({
		where: "url" in e ? e.url : e.node,
		status: e.health.status
	}));
}

export function renderServices(state: DashboardState): void {
	const items = state.services.map(s => {
		const eps = endpointsOf(s);
		const healthy = eps.filter(e => e.status === "healthy").length;
		const li = el("li");
		li.append(
			dot(s.status),
			el("span", "title", s.name),
			el(
				"span",
				"aside",
				s.type === "moleculer" ? `× ${eps.length}` : `${healthy}/${eps.length}`
			)
		);
		li.title =
			`${s.name} (${s.type}): ${s.status}` +
			eps.map(e => `\n${e.where}: ${e.status}`).join("");
		return li;
	});
	fillList("services", "svc-count", items, "No services.");
}

export function renderResources(state: DashboardState): void {
	const items = state.resources.map(r => {
		const h = r.health;
		const li = el("li");
		const title = el("span", "title", r.name);
		title.appendChild(el("small", null, r.type));
		li.append(
			dot(h.status),
			title,
			el(
				"span",
				"aside",
				h.status === "healthy" && h.latencyMs !== null
					? `${Math.round(h.latencyMs)} ms`
					: h.status
			)
		);
		li.title = `${r.name} (${r.type}): ${h.status}${h.error ? `\n${h.error}` : ""}`;
		return li;
	});
	fillList("resources", "res-count", items, "No resources.");
}

/** The metric of an alert's series: `node.gpu.temperature{gpu="0",node="n1"}` → its name. */
function metricOf(a: Alert): string {
	return a.series.split("{")[0];
}

function alertItem(a: Alert): HTMLElement {
	const li = el("li", `alert-item ${a.state}`);
	const title = el("span", "title", a.rule);
	if (a.labels.node) title.appendChild(el("small", null, a.labels.node));
	const aside = el("span", "aside");
	aside.appendChild(el("span", `sev ${a.severity}`, a.state === "firing" ? a.severity : a.state));
	const parts: string[] = [];
	if (a.labels.gpu !== undefined) parts.push(`GPU ${a.labels.gpu}`);
	parts.push(`${metricOf(a)} ${Math.round(a.value * 100) / 100} ${a.op} ${a.threshold}`);
	parts.push(`since ${new Date(a.since).toLocaleTimeString()}`);
	li.append(
		dot(a.state === "firing" ? a.severity : a.state),
		title,
		aside,
		el("span", "detail", parts.join(" · "))
	);
	return li;
}

export function renderAlerts(state: DashboardState): void {
	const alerts = sortedAlerts(state.alerts.values());
	const firing = alerts.filter(a => a.state === "firing").length;
	byId("alerts-count").textContent = firing ? `${firing} firing` : "";
	byId("alerts").replaceChildren(
		...(alerts.length
			? alerts.map(alertItem)
			: [
					el(
						"li",
						"none",
						state.alertsAvailable
							? "Nothing is firing."
							: "No alerts yet (the monitor is not answering)."
					)
				])
	);
}
