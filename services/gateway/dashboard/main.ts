/**
 * The IsA Cloud dashboard (GET /): after sign-in it loads the lists once from /api/v1, then
 * stays live on /api/v1/events, and reloads what no event announces every 30 s.
 * bin/build-dashboard.ts bundles this module and its imports into services/gateway/public/app.js.
 */
import type { Alert } from "../../monitor/alerts";
import { EVENTS } from "../../shared/events";
import type { NodeInfo } from "../../shared/types";
import { Api, ApiError, refusal } from "./api";
import { Charts } from "./charts";
import { byId } from "./dom";
import { EventFeed } from "./events";
import { hideBanner, renderWho, setConn, showBanner } from "./header";
import { appendNewer, clusterHistory, nodeHistory } from "./history";
import { NodeCards } from "./node-cards";
import { ListName, Renderer } from "./render";
import { bindSignIn, showDashboard, showSignIn } from "./sign-in";
import {
	addClusterPoint,
	applyReports,
	applyResourceHealth,
	createState,
	mergeNode,
	replaceNodes,
	setAlerts,
	setWorkloads,
	upsertAlert
} from "./state";
import { decodeClaims, isExpired, TOKEN_KEY } from "./token";
import type { StreamHandlers } from "./types";

/** How far back the charts ask the monitor for. */
const HISTORY_MS = 30 * 60 * 1000;
/** What no event announces (a deleted workload, a new resource) is reloaded this often. */
const SLOW_REFRESH_MS = 30_000;

type Loadable = "nodes" | ListName;

class Dashboard {
	private readonly state = createState();
	private readonly api = new Api(() => this.state.token);
	private readonly charts = new Charts(this.state);
	private readonly view: Renderer;
	private readonly feed: EventFeed;
	private readonly refreshTimers = new Map<Loadable, ReturnType<typeof setTimeout>>();
	private started = false;

	constructor() {
		const select = (id: string) => this.select(id);
		this.view = new Renderer(
			this.state,
			new NodeCards(this.state, select),
			this.charts,
			select
		);
		this.feed = new EventFeed(
			this.handlers(),
			{
				onOpen: missed => {
					setConn("live");
					hideBanner();
					if (missed) void this.loadAll();
				},
				onLost: () => {
					setConn("reconnecting", "reconnecting…");
					showBanner("Lost the connection to the gateway; reconnecting…", "warn");
				},
				onClosed: () => {
					setConn("offline");
					void this.probe();
				}
			},
			async () => (await this.api.eventTicket()).ticket
		);
	}

	/** Wires the page's controls, then starts with the saved token (or the sign-in form). */
	bind(): void {
		bindSignIn(
			async token => {
				await new Api(() => token).nodes(1);
			},
			token => {
				localStorage.setItem(TOKEN_KEY, token);
				this.start();
			}
		);
		byId("signout").addEventListener("click", () => this.signOut(""));
		byId<HTMLInputElement>("node-filter").addEventListener("input", e => {
			this.state.filter = (e.target as HTMLInputElement).value.trim().toLowerCase();
			this.view.allNodes();
		});
		this.start();
	}

	private start(): void {
		const s = this.state;
		s.token = localStorage.getItem(TOKEN_KEY);
		if (!s.token) return this.signOut("");
		s.claims = decodeClaims(s.token);
		if (isExpired(s.claims, Date.now()))
			return this.signOut("The saved token has expired. Paste a new one.");
		showDashboard();
		renderWho(s.claims);
		this.charts.ensure();
		this.connect();
		void this.loadAll();
		if (this.started) return;
		this.started = true;
		setInterval(() => {
			if (!this.state.token || document.hidden) return;
			for (const what of ["workloads", "services", "resources", "alerts"] as const)
				void this.load(what);
		}, SLOW_REFRESH_MS);
	}

	private signOut(message: string): void {
		localStorage.removeItem(TOKEN_KEY);
		this.state.token = null;
		this.state.claims = null;
		this.feed.close();
		for (const timer of this.refreshTimers.values()) clearTimeout(timer);
		this.refreshTimers.clear();
		setConn("offline");
		hideBanner();
		renderWho(null);
		showSignIn(message);
	}

	private connect(): void {
		setConn("connecting", "connecting…");
		this.feed.connect();
	}

	/** After the stream was refused or had no ticket: a refused token signs out, else retry. */
	private async probe(): Promise<void> {
		try {
			await this.api.nodes(1);
			this.retryLater("The live feed stopped; reconnecting");
		} catch (err) {
			if (!(err instanceof ApiError)) throw err;
			if (err.status === 401) return this.signOut(refusal(err));
			if (err.status === 0) return this.gatewayDown();
			this.retryLater(`The live feed is unavailable (${err.message}); retrying`);
		}
	}

	private gatewayDown(): void {
		setConn("offline");
		this.retryLater(`Cannot reach the gateway at ${location.host}; retrying`);
	}

	private retryLater(message: string): void {
		const delay = this.feed.retry(() => {
			this.connect();
			void this.loadAll();
		});
		showBanner(`${message} in ${Math.round(delay / 1000)} s…`);
	}

	/** The event stream's handlers: each updates the state and marks what to draw again. */
	private handlers(): StreamHandlers {
		const s = this.state;
		const upsertNode = (n: NodeInfo) => {
			s.nodes.set(n.id, mergeNode(s.nodes.get(n.id), n));
			this.view.node(n.id);
		};
		const alert = (a: Alert) => {
			upsertAlert(s, a);
			this.view.list("alerts");
		};
		return {
			hello: who => renderWho(who),
			[EVENTS.nodeUp]: upsertNode,
			[EVENTS.nodeDown]: upsertNode,
			[EVENTS.nodeUpdated]: upsertNode,
			[EVENTS.nodeReport]: ({ items }) => {
				const { changed, unknown } = applyReports(s, items);
				for (const id of changed) this.view.node(id);
				if (unknown) this.refreshSoon("nodes", 500);
				addClusterPoint(s, Date.now());
				this.view.charts();
			},
			[EVENTS.nodeAllocated]: ({ nodeID, allocated }) => {
				const n = s.nodes.get(nodeID);
				if (n) {
					n.allocated = allocated;
					this.view.node(nodeID);
				}
				// The placements behind it show as reserved GPUs.
				this.refreshSoon("workloads", 800);
			},
			// The scheduler derives the workload's status and placements from the agents' news:
			// the page asks for them again instead of deriving them itself.
			[EVENTS.replicaState]: () => this.refreshSoon("workloads", 500),
			[EVENTS.resourceHealthChanged]: ({ id, health }) => {
				if (applyResourceHealth(s, id, health)) this.view.list("resources");
				else this.refreshSoon("resources", 500);
			},
			// A service's status also depends on its dependencies: the registry knows it.
			[EVENTS.serviceHealthChanged]: () => this.refreshSoon("services", 500),
			[EVENTS.alertFiring]: alert,
			[EVENTS.alertResolved]: alert,
			resync: () => void this.loadAll(),
			expired: () => this.signOut("The token has expired. Paste a new one.")
		};
	}

	/** Loads one list soon, once however many events ask for it meanwhile. */
	private refreshSoon(what: Loadable, ms: number): void {
		if (this.refreshTimers.has(what)) return;
		this.refreshTimers.set(
			what,
			setTimeout(() => {
				this.refreshTimers.delete(what);
				void this.load(what);
			}, ms)
		);
	}

	private async loadAll(): Promise<void> {
		await Promise.all(
			(["nodes", "workloads", "services", "resources", "alerts"] as const).map(w =>
				this.load(w)
			)
		);
		await this.loadClusterHistory();
	}

	private async load(what: Loadable): Promise<void> {
		const s = this.state;
		try {
			switch (what) {
				case "nodes": {
					const now = Date.now();
					replaceNodes(s, (await this.api.nodes()).items, now);
					this.view.allNodes();
					if (addClusterPoint(s, now)) this.view.charts();
					return;
				}
				case "workloads":
					setWorkloads(s, (await this.api.workloads()).items);
					break;
				case "services":
					s.services = (await this.api.services()).items;
					break;
				case "resources":
					s.resources = (await this.api.resources()).items;
					break;
				case "alerts":
					try {
						setAlerts(s, (await this.api.alerts()).items);
					} catch (err) {
						// No monitor (503), or not allowed: the list says so.
						if (!(err instanceof ApiError) || err.status === 401 || err.status === 0)
							throw err;
						s.alertsAvailable = false;
					}
					break;
			}
			this.view.list(what);
		} catch (err) {
			if (!(err instanceof ApiError)) throw err;
			if (err.status === 401) return this.signOut(refusal(err));
			if (err.status === 0) return this.gatewayDown();
			if (err.status === 403 || err.status === 404 || err.status === 503) {
				// A role that may not see this, or a service not running: show it as empty.
				if (what === "services") s.services = [];
				if (what === "resources") s.resources = [];
				if (what !== "nodes") this.view.list(what);
				return;
			}
			showBanner(`Loading ${what} failed: ${err.message}`, "warn");
		}
	}

	/** The cluster chart's past from the monitor; without one, it draws only what comes live. */
	private async loadClusterHistory(): Promise<void> {
		const s = this.state;
		const since = Date.now() - HISTORY_MS;
		const series = (metric: string) => this.api.stats({ metric }, since);
		try {
			const [cpuUsed, cpuCapacity, memoryUsed, memoryCapacity] = await Promise.all([
				series("cluster.cpu.used"),
				series("cluster.cpu.capacity"),
				series("cluster.memory.used"),
				series("cluster.memory.capacity")
			]);
			// Every GPU's series, coarser: the chart draws only their average.
			const gpuUtilization = await this.api
				.stats({ metric: "node.gpu.utilization", step: "1m" }, since)
				.catch(() => []);
			const past = clusterHistory({
				cpuUsed,
				cpuCapacity,
				memoryUsed,
				memoryCapacity,
				gpuUtilization
			});
			if (past) s.cluster = appendNewer(past, s.cluster);
			s.historySource = past ? "stats" : "live";
		} catch (err) {
			if (err instanceof ApiError && err.status === 401) return this.signOut(refusal(err));
			s.historySource = "live";
		}
		byId("hist-note").textContent =
			s.historySource === "stats" ? "last 30 min" : "no history yet · live since page load";
		this.view.charts();
	}

	private async loadNodeHistory(id: string): Promise<void> {
		try {
			const past = nodeHistory(await this.api.stats({ node: id }, Date.now() - HISTORY_MS));
			if (!past || this.state.selected !== id) return;
			this.state.nodeHistory.set(id, appendNewer(past, this.state.nodeHistory.get(id)));
			this.view.charts();
		} catch {
			// No history (no monitor): the node chart keeps the samples since page load.
		}
	}

	/** Shows a node's chart, or hides it when it is selected already. */
	private select(id: string): void {
		const s = this.state;
		const prev = s.selected;
		s.selected = prev === id ? null : id;
		if (prev) this.view.node(prev);
		if (s.selected) this.view.node(s.selected);
		byId("sel-name").textContent = s.selected ?? "–";
		byId("sel-note").textContent = s.selected ? "" : "select a node below";
		this.view.charts();
		if (s.selected) void this.loadNodeHistory(s.selected);
	}
}

document.addEventListener("DOMContentLoaded", () => new Dashboard().bind());
