/*
 * IsA Cloud dashboard: plain JS, no build step. Loads the lists once from /api/v1, then stays
 * live on /api/v1/events (server-sent events). Every change only marks what is dirty; one
 * requestAnimationFrame pass renders it, so 200 nodes reporting every 2 s cost one layout.
 */
/* global document, location, localStorage, fetch, EventSource, ResizeObserver, atob, uPlot,
	URLSearchParams,
	requestAnimationFrame, setTimeout, clearTimeout, setInterval */
(function () {
	"use strict";

	const TOKEN_KEY = "isa.token";
	/** Points kept for the cluster chart (at ~2 s per point: an hour). */
	const CLUSTER_POINTS = 1800;
	/** Samples kept per node for the node chart (~10 minutes). */
	const NODE_POINTS = 300;
	/** How far back to ask /api/v1/stats. */
	const HISTORY_MS = 30 * 60 * 1000;
	const GiB = 1024 ** 3;
	const COLORS = { cpu: "#4f9dff", mem: "#b07cff", gpu: "#34d399" };
	const STREAM_EVENTS = [
		"hello",
		"node.up",
		"node.down",
		"node.updated",
		"node.report",
		"node.allocated",
		"workload.replica.state",
		"resource.health.changed",
		"service.health.changed",
		"alert.firing",
		"alert.resolved",
		"resync",
		"expired"
	];

	const $ = id => document.getElementById(id);

	const S = {
		token: null,
		claims: null,
		nodes: new Map(),
		/** Per node: { t, cpu, mem, gpu } arrays of recent samples (seconds, percent). */
		nodeHistory: new Map(),
		workloads: new Map(),
		services: [],
		resources: [],
		alerts: new Map(),
		alertsAvailable: true,
		cluster: { t: [], cpu: [], mem: [], gpu: [] },
		historySource: "live",
		selected: null,
		filter: "",
		es: null,
		retryTimer: null,
		retryDelay: 2000,
		/** Missed events while reconnecting: reload the lists once the stream is back. */
		needResync: false,
		started: false
	};

	const cards = new Map();
	const dirty = {
		nodes: new Set(),
		allNodes: false,
		lists: new Set(),
		charts: false,
		tiles: false
	};
	let frame = 0;
	let clusterChart = null;
	let nodeChart = null;

	// ---------------------------------------------------------------- helpers

	function pct(part, whole) {
		return whole > 0 ? Math.max(0, Math.min(100, (part / whole) * 100)) : 0;
	}

	function fmtPct(v) {
		return v == null || isNaN(v) ? "–" : Math.round(v) + "%";
	}

	function fmtBytes(b) {
		if (!b) return "0";
		if (b >= 1024 * GiB) return (b / 1024 / GiB).toFixed(1).replace(/\.0$/, "") + " TiB";
		if (b >= GiB) return (b / GiB).toFixed(b >= 100 * GiB ? 0 : 1).replace(/\.0$/, "") + " GiB";
		return Math.round(b / 1024 ** 2) + " MiB";
	}

	function fmtCpu(c) {
		return (Math.round(c * 10) / 10).toString().replace(/\.0$/, "");
	}

	function fmtAgo(ms) {
		const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
		if (s < 60) return s + " s";
		if (s < 3600) return Math.round(s / 60) + " min";
		if (s < 86400) return Math.round(s / 3600) + " h";
		return Math.round(s / 86400) + " d";
	}

	function el(tag, cls, text) {
		const e = document.createElement(tag);
		if (cls) e.className = cls;
		if (text != null) e.textContent = text;
		return e;
	}

	function dot(status) {
		const d = el("span", "dot " + (status || "unknown"));
		d.title = status || "unknown";
		return d;
	}

	function naturalCompare(a, b) {
		return a.localeCompare(b, undefined, { numeric: true, sensitivity: "base" });
	}

	function decodeClaims(token) {
		try {
			const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
			return JSON.parse(atob(part + "===".slice((part.length + 3) % 4)));
		} catch {
			return null;
		}
	}

	function push(arr, v, max) {
		arr.push(v);
		if (arr.length > max) arr.splice(0, arr.length - max);
	}

	// ---------------------------------------------------------------- API

	class ApiError extends Error {
		constructor(status, body) {
			super((body && body.message) || "HTTP " + status);
			this.status = status;
			this.body = body;
		}
	}

	async function api(path) {
		let res;
		try {
			res = await fetch(path, {
				headers: { Authorization: "Bearer " + S.token, Accept: "application/json" },
				cache: "no-store"
			});
		} catch {
			throw new ApiError(0, { message: "The gateway cannot be reached." });
		}
		let body;
		try {
			body = await res.json();
		} catch {
			body = null;
		}
		if (!res.ok) throw new ApiError(res.status, body);
		return body;
	}

	function refusal(err) {
		const reason = err.body && err.body.data && err.body.data.reason;
		return "The token was refused" + (reason ? ": " + reason : ".");
	}

	// ---------------------------------------------------------------- render scheduling

	function schedule() {
		if (!frame) frame = requestAnimationFrame(render);
	}

	function markNode(id) {
		dirty.nodes.add(id);
		dirty.tiles = true;
		schedule();
	}

	function markList(name) {
		dirty.lists.add(name);
		dirty.tiles = true;
		schedule();
	}

	function render() {
		frame = 0;
		if (dirty.allNodes) {
			dirty.allNodes = false;
			dirty.nodes.clear();
			renderAllNodes();
		} else if (dirty.nodes.size) {
			for (const id of dirty.nodes) renderNode(id);
			dirty.nodes.clear();
		}
		if (dirty.lists.has("workloads")) {
			renderWorkloads();
			// Reserved GPUs come from the workloads' placements.
			for (const id of S.nodes.keys()) renderNode(id);
		}
		if (dirty.lists.has("services")) renderServices();
		if (dirty.lists.has("resources")) renderResources();
		if (dirty.lists.has("alerts")) renderAlerts();
		dirty.lists.clear();
		if (dirty.tiles) {
			dirty.tiles = false;
			renderTiles();
		}
		if (dirty.charts) {
			dirty.charts = false;
			renderCharts();
		}
	}

	// ---------------------------------------------------------------- nodes

	function gpuReservations() {
		// nodeID → gpu index → "workload#replica"
		const map = new Map();
		for (const w of S.workloads.values())
			for (const r of w.replicas || []) {
				if (!r.node || !r.gpus || r.state === "stopped") continue;
				let m = map.get(r.node);
				if (!m) map.set(r.node, (m = new Map()));
				for (const g of r.gpus) m.set(g, w.name + "#" + r.index);
			}
		return map;
	}

	let reservationsCache = null;
	let reservationsFor = null;

	function reservationsOn(id) {
		if (reservationsFor !== S.workloads || reservationsCache === null) {
			reservationsCache = gpuReservations();
			reservationsFor = S.workloads;
		}
		return reservationsCache.get(id);
	}

	function visible(node) {
		if (!S.filter) return true;
		const f = S.filter;
		return (
			node.id.toLowerCase().includes(f) ||
			(node.hostname || "").toLowerCase().includes(f) ||
			node.status.includes(f) ||
			Object.entries(node.labels || {}).some(([k, v]) => (k + "=" + v).includes(f))
		);
	}

	function makeCard(id) {
		const frag = $("node-card").content.firstElementChild.cloneNode(true);
		frag.dataset.nodeId = id;
		const c = {
			root: frag,
			dot: frag.querySelector(".dot"),
			name: frag.querySelector(".name"),
			badge: frag.querySelector(".badge"),
			cpuFill: frag.querySelector(".cpu .fill"),
			cpuAlloc: frag.querySelector(".cpu .alloc"),
			cpuV: frag.querySelector(".cpu .v"),
			memFill: frag.querySelector(".mem .fill"),
			memAlloc: frag.querySelector(".mem .alloc"),
			memV: frag.querySelector(".mem .v"),
			gpus: frag.querySelector(".gpus"),
			gpuEls: [],
			cpuBar: frag.querySelector(".cpu .bar"),
			memBar: frag.querySelector(".mem .bar")
		};
		c.name.textContent = id;
		frag.addEventListener("click", () => select(id));
		frag.addEventListener("mouseenter", () => {
			c.hovered = true;
			const node = S.nodes.get(id);
			if (node) fillTitles(c, node);
		});
		frag.addEventListener("mouseleave", () => (c.hovered = false));
		frag.addEventListener("keydown", e => {
			if (e.key === "Enter" || e.key === " ") select(id);
		});
		cards.set(id, c);
		return c;
	}

	function renderAllNodes() {
		const container = $("nodes");
		const ids = [...S.nodes.keys()].sort(naturalCompare);
		const frag = document.createDocumentFragment();
		for (const id of ids) {
			const c = cards.get(id) || makeCard(id);
			fillCard(c, S.nodes.get(id));
			frag.appendChild(c.root);
		}
		for (const [id, c] of cards)
			if (!S.nodes.has(id)) {
				c.root.remove();
				cards.delete(id);
			}
		container.replaceChildren(frag);
		renderNodeCount();
	}

	/** Smaller cards for a large cluster. */
	const DENSE_FROM = 30;

	function renderNode(id) {
		const node = S.nodes.get(id);
		let c = cards.get(id);
		if (!node) {
			if (c) {
				c.root.remove();
				cards.delete(id);
			}
			renderNodeCount();
			return;
		}
		if (!c) {
			c = makeCard(id);
			// Keep the cards in name order: insert before the first larger one.
			const container = $("nodes");
			let before = null;
			for (const other of container.children)
				if (naturalCompare(other.dataset.nodeId, id) > 0) {
					before = other;
					break;
				}
			container.insertBefore(c.root, before);
			renderNodeCount();
		}
		fillCard(c, node);
	}

	function renderNodeCount() {
		let ready = 0;
		for (const n of S.nodes.values()) if (n.status === "ready") ready++;
		$("nodes-count").textContent = S.nodes.size ? ready + " / " + S.nodes.size + " ready" : "";
		$("nodes-empty").hidden = S.nodes.size > 0;
		$("nodes").classList.toggle("dense", S.nodes.size >= DENSE_FROM);
	}

	/** Writes only what changed: 200 cards every 2 s should not touch the DOM needlessly. */
	function setText(e, text) {
		if (e.textContent !== text) e.textContent = text;
	}

	function setStyle(e, prop, value) {
		if (e.style[prop] !== value) e.style[prop] = value;
	}

	function fillCard(c, node) {
		const hidden = !visible(node);
		if (c.root.hidden !== hidden) c.root.hidden = hidden;
		if (hidden) return;
		if (c.root.dataset.status !== node.status) c.root.dataset.status = node.status;
		c.root.classList.toggle("selected", S.selected === node.id);
		const dotClass = "dot " + node.status;
		if (c.dot.className !== dotClass) c.dot.className = dotClass;
		const cap = node.capacity || { cpu: 0, memory: 0, gpus: [] };
		const usage = node.usage || { cpu: 0, memory: 0, gpus: [] };
		const alloc = node.allocated || { cpu: 0, memory: 0, gpus: 0 };
		setText(
			c.badge,
			node.status === "ready"
				? fmtCpu(cap.cpu) + " CPU · " + fmtBytes(cap.memory)
				: node.status + (node.lastSeen ? " · " + fmtAgo(node.lastSeen) : "")
		);
		const cpuP = usage.cpuPercent != null ? usage.cpuPercent : pct(usage.cpu, cap.cpu);
		const memP = pct(usage.memory, cap.memory);
		setStyle(c.cpuFill, "transform", "scaleX(" + (cpuP / 100).toFixed(3) + ")");
		setText(c.cpuV, fmtPct(cpuP));
		setStyle(c.memFill, "transform", "scaleX(" + (memP / 100).toFixed(3) + ")");
		setText(c.memV, fmtPct(memP));
		setAlloc(c.cpuAlloc, pct(alloc.cpu, cap.cpu));
		setAlloc(c.memAlloc, pct(alloc.memory, cap.memory));

		const gpus = cap.gpus || [];
		if (c.gpuEls.length !== gpus.length) {
			c.gpus.replaceChildren();
			c.gpuEls = gpus.map(g => {
				const box = el("span", "gpu");
				const u = el("i", "u");
				const m = el("i", "m");
				box.append(u, m, el("span", "i", String(g.index)));
				c.gpus.appendChild(box);
				return { box, u, m };
			});
		}
		const byIndex = new Map((usage.gpus || []).map(g => [g.index, g]));
		const reserved = reservationsOn(node.id);
		gpus.forEach((g, i) => {
			const e = c.gpuEls[i];
			const u = byIndex.get(g.index) || { utilization: 0, memoryUsed: 0, temperature: null };
			const util = Math.max(0, Math.min(100, u.utilization || 0));
			setStyle(e.u, "transform", "scaleY(" + (util / 100).toFixed(3) + ")");
			setStyle(
				e.m,
				"transform",
				"scaleX(" + (pct(u.memoryUsed, g.memory) / 100).toFixed(3) + ")"
			);
			e.box.classList.toggle("hot", u.temperature != null && u.temperature >= 85);
			e.box.classList.toggle("reserved", !!(reserved && reserved.has(g.index)));
		});
		if (c.hovered) fillTitles(c, node);
	}

	/** Tooltips are built while the pointer is on the card, not on every report. */
	function fillTitles(c, node) {
		const cap = node.capacity || { cpu: 0, memory: 0, gpus: [] };
		const usage = node.usage || { cpu: 0, memory: 0, gpus: [] };
		const alloc = node.allocated || { cpu: 0, memory: 0, gpus: 0 };
		const labels = Object.entries(node.labels || {}).map(([k, v]) => k + "=" + v);
		c.root.title =
			(node.hostname || node.id) +
			" — " +
			node.status +
			(labels.length ? "\n" + labels.join(", ") : "") +
			(node.lastSeen ? "\nlast report " + fmtAgo(node.lastSeen) + " ago" : "");
		c.cpuBar.title =
			"CPU: " +
			fmtCpu(usage.cpu || 0) +
			" of " +
			fmtCpu(cap.cpu) +
			" cores busy, " +
			fmtCpu(alloc.cpu) +
			" reserved";
		c.memBar.title =
			"Memory: " +
			fmtBytes(usage.memory) +
			" of " +
			fmtBytes(cap.memory) +
			" used, " +
			fmtBytes(alloc.memory) +
			" reserved";
		const byIndex = new Map((usage.gpus || []).map(g => [g.index, g]));
		const reserved = reservationsOn(node.id);
		(cap.gpus || []).forEach((g, i) => {
			const e = c.gpuEls[i];
			if (!e) return;
			const u = byIndex.get(g.index) || { utilization: 0, memoryUsed: 0, temperature: null };
			const by = reserved && reserved.get(g.index);
			e.box.title =
				"GPU " +
				g.index +
				" · " +
				(g.model || "GPU") +
				"\n" +
				Math.round(u.utilization || 0) +
				"% busy · " +
				fmtBytes(u.memoryUsed) +
				" / " +
				fmtBytes(g.memory) +
				(u.temperature != null ? " · " + Math.round(u.temperature) + " °C" : "") +
				(by ? "\nreserved by " + by : "");
		});
	}

	function setAlloc(tick, p) {
		setStyle(tick, "opacity", p > 0 ? "0.9" : "0");
		setStyle(tick, "left", "calc(" + p.toFixed(1) + "% - 1px)");
	}

	function upsertNode(n) {
		if (!n || !n.id) return;
		const prev = S.nodes.get(n.id);
		// node.up/updated carry the inventory's view; keep the newer usage of a report.
		S.nodes.set(n.id, prev && !n.usage ? { ...n, usage: prev.usage } : n);
		markNode(n.id);
		dirty.charts = true;
	}

	function select(id) {
		const prev = S.selected;
		S.selected = S.selected === id ? null : id;
		if (prev) markNode(prev);
		if (S.selected) markNode(S.selected);
		$("sel-name").textContent = S.selected || "–";
		$("sel-note").textContent = S.selected ? "" : "select a node below";
		dirty.charts = true;
		schedule();
		if (S.selected) void loadNodeHistory(S.selected);
	}

	// ---------------------------------------------------------------- usage history

	/** Cluster totals of the nodes' latest usage, in percent. */
	function clusterTotals() {
		let cpu = 0,
			cpuCap = 0,
			mem = 0,
			memCap = 0,
			gpuSum = 0,
			gpuN = 0;
		for (const n of S.nodes.values()) {
			if (n.status === "down" || !n.capacity) continue;
			const u = n.usage || { cpu: 0, memory: 0, gpus: [] };
			cpuCap += n.capacity.cpu || 0;
			cpu += u.cpuPercent != null ? (u.cpuPercent / 100) * (n.capacity.cpu || 0) : u.cpu || 0;
			memCap += n.capacity.memory || 0;
			mem += u.memory || 0;
			const byIndex = new Map((u.gpus || []).map(g => [g.index, g]));
			for (const g of n.capacity.gpus || []) {
				gpuSum += (byIndex.get(g.index) || {}).utilization || 0;
				gpuN++;
			}
		}
		return {
			cpu: pct(cpu, cpuCap),
			mem: pct(mem, memCap),
			gpu: gpuN ? gpuSum / gpuN : null,
			cpuCores: cpuCap,
			cpuUsed: cpu,
			memCap,
			memUsed: mem,
			gpus: gpuN
		};
	}

	function nodePercents(n) {
		const u = n.usage || { cpu: 0, memory: 0, gpus: [] };
		const cap = n.capacity || { cpu: 0, memory: 0, gpus: [] };
		const gpus = u.gpus || [];
		return {
			cpu: u.cpuPercent != null ? u.cpuPercent : pct(u.cpu, cap.cpu),
			mem: pct(u.memory, cap.memory),
			gpu: gpus.length
				? gpus.reduce((s, g) => s + (g.utilization || 0), 0) / gpus.length
				: null
		};
	}

	function addClusterPoint(atMs) {
		const t = Math.round(atMs / 1000);
		const c = S.cluster;
		const totals = clusterTotals();
		if (totals.cpuCores === 0 && totals.memCap === 0) return;
		// One point per second at most: a batch of reports is one point.
		if (c.t.length && c.t[c.t.length - 1] >= t) {
			const i = c.t.length - 1;
			c.cpu[i] = totals.cpu;
			c.mem[i] = totals.mem;
			c.gpu[i] = totals.gpu;
		} else {
			push(c.t, t, CLUSTER_POINTS);
			push(c.cpu, totals.cpu, CLUSTER_POINTS);
			push(c.mem, totals.mem, CLUSTER_POINTS);
			push(c.gpu, totals.gpu, CLUSTER_POINTS);
		}
		dirty.charts = true;
	}

	function addNodeSample(n, atMs) {
		let h = S.nodeHistory.get(n.id);
		if (!h) S.nodeHistory.set(n.id, (h = { t: [], cpu: [], mem: [], gpu: [] }));
		const t = Math.round(atMs / 1000);
		if (h.t.length && h.t[h.t.length - 1] >= t) return;
		const p = nodePercents(n);
		push(h.t, t, NODE_POINTS);
		push(h.cpu, p.cpu, NODE_POINTS);
		push(h.mem, p.mem, NODE_POINTS);
		push(h.gpu, p.gpu, NODE_POINTS);
	}

	/*
	 * /api/v1/stats (the monitor): {items: [{metric, labels, points: [[ms, value], …]}]}, one
	 * series per metric and label set. The cluster chart asks for the cluster.* series (CPU in
	 * cores, memory in bytes: the page divides used by capacity) and node.gpu.utilization
	 * averaged over all GPUs; the node chart asks for one node's series.
	 */

	/** Per second: the average of the values of all the series given. */
	function averageSeries(items) {
		const acc = new Map();
		for (const s of items || [])
			for (const p of s.points || []) {
				if (!Array.isArray(p) || typeof p[1] !== "number") continue;
				const t = Math.round(p[0] / 1000);
				const a = acc.get(t) || { sum: 0, n: 0 };
				a.sum += p[1];
				a.n++;
				acc.set(t, a);
			}
		const out = new Map();
		for (const [t, a] of acc) out.set(t, a.sum / a.n);
		return out;
	}

	function ratioSeries(used, capacity) {
		const out = new Map();
		for (const [t, u] of used) {
			const c = capacity.get(t);
			if (c > 0) out.set(t, Math.min(100, (u / c) * 100));
		}
		return out;
	}

	/** {t, cpu, mem, gpu} arrays from three maps of second → percent; null under 2 points. */
	function toHistory(cpu, mem, gpu) {
		const times = [...new Set([...cpu.keys(), ...mem.keys(), ...gpu.keys()])].sort(
			(a, b) => a - b
		);
		if (times.length < 2) return null;
		const at = (m, t) => (m.has(t) ? m.get(t) : null);
		return {
			t: times,
			cpu: times.map(t => at(cpu, t)),
			mem: times.map(t => at(mem, t)),
			gpu: times.map(t => at(gpu, t))
		};
	}

	/** Live points newer than the history go after it. */
	function appendNewer(h, live) {
		if (!live) return h;
		const last = h.t[h.t.length - 1];
		for (let i = 0; i < live.t.length; i++)
			if (live.t[i] > last) {
				h.t.push(live.t[i]);
				h.cpu.push(live.cpu[i]);
				h.mem.push(live.mem[i]);
				h.gpu.push(live.gpu[i]);
			}
		return h;
	}

	function statsQuery(params) {
		const q = new URLSearchParams({ since: String(Date.now() - HISTORY_MS), ...params });
		return api("api/v1/stats?" + q.toString()).then(body => (body && body.items) || []);
	}

	async function loadClusterHistory() {
		try {
			const [cpuUsed, cpuCap, memUsed, memCap] = (
				await Promise.all(
					[
						"cluster.cpu.used",
						"cluster.cpu.capacity",
						"cluster.memory.used",
						"cluster.memory.capacity"
					].map(metric => statsQuery({ metric }))
				)
			).map(averageSeries);
			// Every GPU's series, coarser: the chart needs their average only.
			const gpu = averageSeries(
				await statsQuery({ metric: "node.gpu.utilization", step: "1m" }).catch(() => [])
			);
			const h = toHistory(ratioSeries(cpuUsed, cpuCap), ratioSeries(memUsed, memCap), gpu);
			if (!h) throw new ApiError(204, null);
			S.cluster = appendNewer(h, S.cluster);
			S.historySource = "stats";
		} catch (err) {
			if (err.status === 401) return signOut(refusal(err));
			S.historySource = "live";
		}
		$("hist-note").textContent =
			S.historySource === "stats" ? "last 30 min" : "no history yet · live since page load";
		dirty.charts = true;
		schedule();
	}

	async function loadNodeHistory(id) {
		try {
			const items = await statsQuery({ node: id });
			const of = metric => averageSeries(items.filter(s => s.metric === metric));
			const h = toHistory(
				of("node.cpu.usage"),
				of("node.memory.usage"),
				of("node.gpu.utilization")
			);
			if (!h || S.selected !== id) return;
			S.nodeHistory.set(id, appendNewer(h, S.nodeHistory.get(id)));
			dirty.charts = true;
			schedule();
		} catch {
			/* no history: the live samples stay */
		}
	}

	// ---------------------------------------------------------------- charts

	function chartOpts(el, height) {
		const axis = {
			stroke: "#8391a7",
			grid: { stroke: "rgba(148,163,184,0.08)", width: 1 },
			ticks: { stroke: "rgba(148,163,184,0.15)", width: 1 },
			font: "11px system-ui, sans-serif"
		};
		const series = (label, color) => ({
			label,
			scale: "%",
			stroke: color,
			width: 1.75,
			fill: color + "1f",
			points: { show: false },
			spanGaps: true,
			value: (u, v) => (v == null ? "–" : v.toFixed(0) + "%")
		});
		return {
			width: Math.max(200, el.clientWidth),
			height,
			cursor: { drag: { x: false, y: false }, points: { size: 6 } },
			legend: { live: true },
			scales: { x: { time: true }, "%": { auto: false, range: [0, 100] } },
			axes: [
				{ ...axis },
				{ ...axis, scale: "%", size: 50, values: (u, vals) => vals.map(v => v + "%") }
			],
			series: [
				{ value: (u, v) => (v == null ? "–" : new Date(v * 1000).toLocaleTimeString()) },
				series("CPU", COLORS.cpu),
				series("Memory", COLORS.mem),
				series("GPU util", COLORS.gpu)
			]
		};
	}

	function ensureCharts() {
		if (clusterChart || typeof uPlot === "undefined") return;
		const ce = $("chart-cluster");
		const ne = $("chart-node");
		clusterChart = new uPlot(chartOpts(ce, 160), [[], [], [], []], ce);
		nodeChart = new uPlot(chartOpts(ne, 160), [[], [], [], []], ne);
		const ro = new ResizeObserver(() => {
			clusterChart.setSize({ width: Math.max(200, ce.clientWidth), height: 160 });
			nodeChart.setSize({ width: Math.max(200, ne.clientWidth), height: 160 });
		});
		ro.observe(ce);
		ro.observe(ne);
	}

	function renderCharts() {
		ensureCharts();
		if (!clusterChart) return;
		const c = S.cluster;
		clusterChart.setData([c.t, c.cpu, c.mem, c.gpu]);
		$("chart-cluster").dataset.points = String(c.t.length);
		const h = (S.selected && S.nodeHistory.get(S.selected)) || {
			t: [],
			cpu: [],
			mem: [],
			gpu: []
		};
		nodeChart.setData([h.t, h.cpu, h.mem, h.gpu]);
		$("chart-node").dataset.points = String(h.t.length);
		drawSpark($("s-cpu"), c.cpu, COLORS.cpu);
		drawSpark($("s-mem"), c.mem, COLORS.mem);
		drawSpark($("s-gpu"), c.gpu, COLORS.gpu);
	}

	function drawSpark(canvas, values, color) {
		const ctx = canvas.getContext("2d");
		const w = canvas.width;
		const h = canvas.height;
		ctx.clearRect(0, 0, w, h);
		const v = values.slice(-60);
		if (v.length < 2 || v.every(x => x == null)) return;
		ctx.beginPath();
		v.forEach((y, i) => {
			const x = (i / (v.length - 1)) * (w - 2) + 1;
			const yy = h - 2 - ((y || 0) / 100) * (h - 4);
			if (i === 0) ctx.moveTo(x, yy);
			else ctx.lineTo(x, yy);
		});
		ctx.strokeStyle = color;
		ctx.lineWidth = 1.5;
		ctx.stroke();
		ctx.lineTo(w - 1, h);
		ctx.lineTo(1, h);
		ctx.closePath();
		ctx.fillStyle = color + "26";
		ctx.fill();
	}

	// ---------------------------------------------------------------- tiles

	function renderTiles() {
		$("tiles").hidden = false;
		let ready = 0,
			down = 0,
			draining = 0;
		for (const n of S.nodes.values())
			if (n.status === "ready") ready++;
			else if (n.status === "down") down++;
			else draining++;
		$("t-nodes").textContent = String(ready);
		$("t-nodes-sub").textContent =
			"ready" +
			(draining ? " · " + draining + " draining" : "") +
			(down ? " · " + down + " down" : "");
		const t = clusterTotals();
		$("t-cpu").textContent = fmtPct(t.cpu);
		$("t-cpu-sub").textContent = fmtCpu(t.cpuCores) + " cores";
		$("t-mem").textContent = fmtPct(t.mem);
		$("t-mem-sub").textContent = fmtBytes(t.memCap);
		$("t-gpu").textContent = t.gpus ? fmtPct(t.gpu) : "–";
		let reserved = 0;
		for (const n of S.nodes.values()) reserved += (n.allocated && n.allocated.gpus) || 0;
		$("t-gpu-sub").textContent = t.gpus + " GPUs · " + reserved + " reserved";
		let running = 0,
			pending = 0,
			failed = 0;
		for (const w of S.workloads.values())
			if (w.status === "running") running++;
			else if (w.status === "pending") pending++;
			else if (w.status === "failed") failed++;
		$("t-wl").textContent = String(running);
		$("t-wl-sub").textContent =
			"running" +
			(pending ? " · " + pending + " pending" : "") +
			(failed ? " · " + failed + " failed" : "");
	}

	// ---------------------------------------------------------------- workloads

	function workloadStatus(w) {
		const states = (w.replicas || []).map(r => r.state);
		if (!states.length) return "stopped";
		if (states.every(s => s === "running")) return "running";
		if (states.every(s => s === "failed")) return "failed";
		if (states.every(s => s === "stopped")) return "stopped";
		if (states.some(s => s === "pending" || s === "starting")) return "pending";
		return "running";
	}

	function describeResources(r) {
		if (!r) return "";
		const parts = [];
		if (r.cpu) parts.push(fmtCpu(r.cpu) + " CPU");
		if (r.memory) parts.push(fmtBytes(r.memory));
		if (r.gpu) parts.push(r.gpu + " GPU");
		if (r.gpuMemory) parts.push(fmtBytes(r.gpuMemory) + " GPU mem");
		return parts.join(" · ");
	}

	function renderWorkloads() {
		const list = $("workloads");
		const items = [...S.workloads.values()].sort(
			(a, b) => (a.seq ?? 0) - (b.seq ?? 0) || naturalCompare(a.name, b.name)
		);
		$("wl-count").textContent = items.length ? String(items.length) : "";
		if (!items.length) {
			list.replaceChildren(el("li", "none", "No workloads."));
			return;
		}
		const admin = S.claims && (S.claims.roles || []).includes("admin");
		const frag = document.createDocumentFragment();
		for (const w of items) {
			const li = el("li");
			li.dataset.workloadId = w.id;
			const title = el("span", "title", w.name);
			if (admin && w.tenant) title.appendChild(el("small", null, w.tenant));
			const running = (w.replicas || []).filter(r => r.state === "running").length;
			const aside = el(
				"span",
				"aside",
				w.status + " · " + running + "/" + (w.replicas || []).length
			);
			const detail = el("span", "detail");
			for (const r of w.replicas || []) {
				const chip = el("span", "chip");
				chip.appendChild(dot(r.state));
				chip.appendChild(
					el(
						"span",
						null,
						r.node
							? r.node + (r.gpus && r.gpus.length ? " · GPU " + r.gpus.join(",") : "")
							: r.state + (r.reason ? ": " + r.reason : "")
					)
				);
				chip.title =
					"replica " + r.index + ": " + r.state + (r.reason ? " — " + r.reason : "");
				if (r.node) chip.addEventListener("click", () => select(r.node));
				detail.appendChild(chip);
			}
			const res = describeResources(w.resources);
			if (res) detail.appendChild(el("span", null, res + " each"));
			li.append(dot(w.status), title, aside, detail);
			frag.appendChild(li);
		}
		list.replaceChildren(frag);
	}

	function applyReplicaState(s) {
		const w = S.workloads.get(s.workloadId);
		const r = w && (w.replicas || [])[s.replica];
		if (r && r.fence === s.fence) {
			r.state = s.state;
			r.node = s.nodeID;
			r.restarts = s.restarts;
			if (s.reason) r.reason = s.reason;
			else delete r.reason;
			w.status = workloadStatus(w);
			markList("workloads");
		}
		// Placements and new workloads show up in the list, not in this event.
		refreshSoon("workloads", 800);
	}

	// ---------------------------------------------------------------- services, resources

	function renderServices() {
		const list = $("services");
		$("svc-count").textContent = S.services.length ? String(S.services.length) : "";
		if (!S.services.length) {
			list.replaceChildren(el("li", "none", "No services."));
			return;
		}
		const frag = document.createDocumentFragment();
		for (const s of S.services) {
			const li = el("li");
			const eps = s.endpoints || [];
			const healthy = eps.filter(e => e.health && e.health.status === "healthy").length;
			li.append(
				dot(s.status),
				el("span", "title", s.name),
				el(
					"span",
					"aside",
					s.type === "moleculer" ? "× " + eps.length : healthy + "/" + eps.length
				)
			);
			li.title =
				s.name +
				" (" +
				(s.type || "service") +
				"): " +
				(s.status || "unknown") +
				(eps.length
					? "\n" +
						eps
							.map(
								e =>
									(e.url || e.node) +
									": " +
									((e.health && e.health.status) || "unknown")
							)
							.join("\n")
					: "");
			frag.appendChild(li);
		}
		list.replaceChildren(frag);
	}

	function renderResources() {
		const list = $("resources");
		$("res-count").textContent = S.resources.length ? String(S.resources.length) : "";
		if (!S.resources.length) {
			list.replaceChildren(el("li", "none", "No resources."));
			return;
		}
		const frag = document.createDocumentFragment();
		for (const r of S.resources) {
			const h = r.health || { status: "unknown" };
			const li = el("li");
			const title = el("span", "title", r.name);
			title.appendChild(el("small", null, r.type));
			li.append(
				dot(h.status),
				title,
				el(
					"span",
					"aside",
					h.status === "healthy" && h.latencyMs != null
						? Math.round(h.latencyMs) + " ms"
						: h.status
				)
			);
			li.title = r.name + " (" + r.type + "): " + h.status + (h.error ? "\n" + h.error : "");
			frag.appendChild(li);
		}
		list.replaceChildren(frag);
	}

	// ---------------------------------------------------------------- alerts

	function alertKey(a) {
		return String(
			a.id ?? (a.rule || a.name || a.ruleId || "alert") + JSON.stringify(a.labels || {})
		);
	}

	function upsertAlert(a, state) {
		if (!a || typeof a !== "object") return;
		const key = alertKey(a);
		const prev = S.alerts.get(key) || {};
		S.alerts.set(key, { ...prev, ...a, state: state || a.state || prev.state || "firing" });
		S.alertsAvailable = true;
		markList("alerts");
	}

	function renderAlerts() {
		const list = $("alerts");
		const order = { firing: 0, pending: 1, resolved: 2 };
		const items = [...S.alerts.values()]
			.sort(
				(a, b) =>
					(order[a.state] ?? 3) - (order[b.state] ?? 3) ||
					(Number(b.since) || 0) - (Number(a.since) || 0)
			)
			.slice(0, 30);
		const firing = items.filter(a => a.state === "firing").length;
		$("alerts-count").textContent = firing ? firing + " firing" : "";
		if (!items.length) {
			list.replaceChildren(
				el(
					"li",
					"none",
					S.alertsAvailable
						? "Nothing is firing."
						: "No alerts yet (the monitor is not answering)."
				)
			);
			return;
		}
		const frag = document.createDocumentFragment();
		for (const a of items) {
			const li = el("li", "alert-item " + a.state);
			const severity = String(a.severity || "warning").toLowerCase();
			const name = a.rule || a.name || a.ruleName || a.metric || "alert";
			const title = el("span", "title", name);
			const subject = (a.labels && (a.labels.node || a.labels.nodeID)) || a.node || a.nodeID;
			if (subject) title.appendChild(el("small", null, subject));
			const aside = el("span", "aside");
			aside.appendChild(
				el("span", "sev " + severity, a.state === "firing" ? severity : a.state)
			);
			const detail = el("span", "detail");
			const parts = [];
			if (a.message || a.summary) parts.push(a.message || a.summary);
			const metric = a.metric || (a.series ? String(a.series).split("{")[0] : "");
			if (a.labels && a.labels.gpu != null) parts.push("GPU " + a.labels.gpu);
			if (a.value != null)
				parts.push(
					(metric ? metric + " " : "") +
						(typeof a.value === "number" ? Math.round(a.value * 100) / 100 : a.value) +
						(a.op && a.threshold != null ? " " + a.op + " " + a.threshold : "")
				);
			if (a.since) parts.push("since " + new Date(a.since).toLocaleTimeString());
			detail.textContent = parts.join(" · ");
			li.append(dot(a.state === "firing" ? severity : a.state), title, aside, detail);
			frag.appendChild(li);
		}
		list.replaceChildren(frag);
	}

	// ---------------------------------------------------------------- loading

	const refreshTimers = {};

	function refreshSoon(what, ms) {
		if (refreshTimers[what]) return;
		refreshTimers[what] = setTimeout(() => {
			refreshTimers[what] = null;
			void load(what);
		}, ms);
	}

	async function load(what) {
		try {
			if (what === "nodes") {
				const body = await api("api/v1/nodes?limit=10000");
				const now = Date.now();
				const seen = new Set();
				for (const n of body.items || []) {
					const prev = S.nodes.get(n.id);
					S.nodes.set(
						n.id,
						prev && prev.usage && !n.usage ? { ...n, usage: prev.usage } : n
					);
					seen.add(n.id);
					addNodeSample(n, now);
				}
				for (const id of [...S.nodes.keys()]) if (!seen.has(id)) S.nodes.delete(id);
				dirty.allNodes = true;
				dirty.tiles = true;
				addClusterPoint(now);
			} else if (what === "workloads") {
				const body = await api("api/v1/workloads?limit=1000");
				S.workloads = new Map((body.items || []).map(w => [w.id, w]));
				dirty.lists.add("workloads");
				dirty.tiles = true;
			} else if (what === "services") {
				S.services = (await api("api/v1/services?limit=1000")).items || [];
				dirty.lists.add("services");
			} else if (what === "resources") {
				S.resources = (await api("api/v1/resources?limit=1000")).items || [];
				dirty.lists.add("resources");
			} else if (what === "alerts") {
				try {
					const body = await api("api/v1/alerts");
					const items = Array.isArray(body) ? body : body.items || [];
					S.alerts = new Map(items.map(a => [alertKey(a), a]));
					S.alertsAvailable = true;
				} catch (err) {
					if (err.status === 401 || err.status === 0) throw err;
					S.alertsAvailable = false;
				}
				dirty.lists.add("alerts");
			}
			schedule();
		} catch (err) {
			if (err.status === 401) return signOut(refusal(err));
			if (err.status === 0) return gatewayDown();
			if (err.status === 403 || err.status === 404 || err.status === 503) {
				// A role that may not see this, or a service not running: show it as empty.
				if (what === "services") S.services = [];
				if (what === "resources") S.resources = [];
				dirty.lists.add(what);
				schedule();
				return;
			}
			showBanner("Loading " + what + " failed: " + err.message, "warn");
		}
	}

	function loadAll() {
		return Promise.all([
			load("nodes"),
			load("workloads"),
			load("services"),
			load("resources"),
			load("alerts")
		]).then(() => loadClusterHistory());
	}

	// ---------------------------------------------------------------- event stream

	function setConn(state, text) {
		$("conn").dataset.state = state;
		$("conn-text").textContent = text || state;
	}

	function connect() {
		if (S.es) S.es.close();
		clearTimeout(S.retryTimer);
		setConn("connecting", "connecting…");
		const es = new EventSource("api/v1/events?token=" + encodeURIComponent(S.token));
		S.es = es;
		es.onopen = () => {
			S.retryDelay = 2000;
			setConn("live");
			hideBanner();
			if (S.needResync) {
				S.needResync = false;
				void loadAll();
			}
		};
		es.onerror = () => {
			if (S.es !== es) return;
			S.needResync = true;
			if (es.readyState === EventSource.CLOSED) {
				// Refused (401, 503) or not an event stream: find out why before trying again.
				es.close();
				S.es = null;
				setConn("offline");
				void probe();
			} else {
				setConn("reconnecting", "reconnecting…");
				showBanner("Lost the connection to the gateway; reconnecting…", "warn");
			}
		};
		for (const name of STREAM_EVENTS)
			es.addEventListener(name, e => {
				let data;
				try {
					data = JSON.parse(e.data);
				} catch {
					return;
				}
				onEvent(name, data);
			});
	}

	async function probe() {
		try {
			await api("api/v1/nodes?limit=1");
			retryLater("The live feed stopped; reconnecting");
		} catch (err) {
			if (err.status === 401) return signOut(refusal(err));
			if (err.status === 0) return gatewayDown();
			retryLater("The live feed is unavailable (" + err.message + "); retrying");
		}
	}

	function gatewayDown() {
		setConn("offline");
		retryLater("Cannot reach the gateway at " + location.host + "; retrying");
	}

	function retryLater(message) {
		if (S.es) {
			S.es.close();
			S.es = null;
		}
		const delay = S.retryDelay;
		S.retryDelay = Math.min(S.retryDelay * 2, 30000);
		showBanner(message + " in " + Math.round(delay / 1000) + " s…");
		clearTimeout(S.retryTimer);
		S.retryTimer = setTimeout(() => {
			connect();
			void loadAll();
		}, delay);
	}

	function onEvent(name, data) {
		switch (name) {
			case "hello":
				renderWho(data);
				break;
			case "node.up":
			case "node.down":
			case "node.updated":
				upsertNode(data);
				break;
			case "node.report": {
				let unknown = false;
				const now = Date.now();
				for (const r of data.items || []) {
					const n = S.nodes.get(r.nodeID);
					if (!n) {
						unknown = true;
						continue;
					}
					n.usage = { ...(n.usage || {}), ...r.usage };
					addNodeSample(n, r.at || now);
					markNode(n.id);
				}
				if (unknown) refreshSoon("nodes", 500);
				addClusterPoint(now);
				schedule();
				break;
			}
			case "node.allocated": {
				const n = S.nodes.get(data.nodeID);
				if (n) {
					n.allocated = data.allocated;
					markNode(n.id);
				}
				refreshSoon("workloads", 800);
				break;
			}
			case "workload.replica.state":
				applyReplicaState(data);
				break;
			case "resource.health.changed": {
				const r = S.resources.find(x => x.id === data.id);
				if (r) {
					r.health = data.health;
					markList("resources");
				} else refreshSoon("resources", 500);
				break;
			}
			case "service.health.changed":
				// A service's status also depends on its dependencies: ask the registry.
				refreshSoon("services", 500);
				break;
			case "alert.firing":
				upsertAlert(data, "firing");
				break;
			case "alert.resolved":
				upsertAlert(data, "resolved");
				break;
			case "resync":
				void loadAll();
				break;
			case "expired":
				signOut("The token has expired. Paste a new one.");
				break;
		}
	}

	// ---------------------------------------------------------------- banner, sign-in

	function showBanner(message, kind) {
		const b = $("banner");
		b.textContent = message;
		b.className = "banner" + (kind ? " " + kind : "");
		b.hidden = false;
	}

	function hideBanner() {
		$("banner").hidden = true;
	}

	function renderWho(info) {
		const c = info || S.claims || {};
		const who = $("who");
		who.replaceChildren();
		if (!c.sub) return;
		who.append(
			el("b", null, c.sub),
			document.createTextNode(" · " + (c.tenant || "") + " · " + (c.roles || []).join(", "))
		);
		if (c.exp) who.title = "Token valid until " + new Date(c.exp * 1000).toLocaleString();
	}

	function signOut(message) {
		localStorage.removeItem(TOKEN_KEY);
		S.token = null;
		S.claims = null;
		if (S.es) {
			S.es.close();
			S.es = null;
		}
		clearTimeout(S.retryTimer);
		setConn("offline");
		$("main").hidden = true;
		$("tiles").hidden = true;
		$("signout").hidden = true;
		hideBanner();
		renderWho(null);
		$("signin").hidden = false;
		$("signin-error").textContent = message || "";
		$("token").value = "";
		$("token").focus();
	}

	async function signIn(token) {
		const err = $("signin-error");
		const btn = $("signin-btn");
		token = token
			.trim()
			.replace(/^Bearer\s+/i, "")
			.replace(/^export TOKEN=/, "");
		if (token.split(".").length !== 3) {
			err.textContent = "That is not a token: a JWT has three parts separated by dots.";
			return;
		}
		S.token = token;
		btn.disabled = true;
		err.textContent = "";
		try {
			await api("api/v1/nodes?limit=1");
		} catch (e) {
			btn.disabled = false;
			S.token = null;
			err.textContent =
				e.status === 401
					? refusal(e)
					: e.status === 0
						? "Cannot reach the gateway. Is it running?"
						: "The gateway answered: " + e.message;
			return;
		}
		btn.disabled = false;
		localStorage.setItem(TOKEN_KEY, token);
		start();
	}

	function start() {
		S.token = localStorage.getItem(TOKEN_KEY);
		if (!S.token) return signOut("");
		S.claims = decodeClaims(S.token);
		if (S.claims && S.claims.exp && S.claims.exp * 1000 < Date.now())
			return signOut("The saved token has expired. Paste a new one.");
		$("signin").hidden = true;
		$("main").hidden = false;
		$("signout").hidden = false;
		renderWho(null);
		ensureCharts();
		connect();
		void loadAll();
		if (!S.started) {
			S.started = true;
			// What no event announces (a deleted workload, a new resource): a slow refresh.
			setInterval(() => {
				if (!S.token || document.hidden) return;
				void load("workloads");
				void load("services");
				void load("resources");
				void load("alerts");
			}, 30000);
		}
	}

	document.addEventListener("DOMContentLoaded", () => {
		$("signin-form").addEventListener("submit", e => {
			e.preventDefault();
			void signIn($("token").value);
		});
		$("token").addEventListener("keydown", e => {
			if (e.key === "Enter" && !e.shiftKey) {
				e.preventDefault();
				void signIn($("token").value);
			}
		});
		$("signout").addEventListener("click", () => signOut(""));
		$("node-filter").addEventListener("input", e => {
			S.filter = e.target.value.trim().toLowerCase();
			dirty.allNodes = true;
			schedule();
		});
		start();
	});
})();
