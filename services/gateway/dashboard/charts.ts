/**
 * The cluster and node charts (uPlot) and the tiles' sparklines (a plain canvas).
 *
 * uPlot is not in the bundle: index.html loads node_modules/uplot's IIFE build from the
 * gateway's /vendor/ route (no CDN, so the page works offline), and the page uses its global.
 * Only uPlot's types are imported here.
 */
import type uPlot from "uplot";
import { byId } from "./dom";
import { emptyHistory, History } from "./history";
import type { DashboardState } from "./state";

declare global {
	interface Window {
		/** uPlot.iife.min.js, loaded before the bundle; missing if /vendor/ failed. */
		uPlot?: typeof uPlot;
	}
}

/** The lines' colours, as app.css has them (--cpu, --mem, --gpu). */
const COLORS = { cpu: "#4f9dff", mem: "#b07cff", gpu: "#34d399" };
const HEIGHT = 160;
/** The newest points a sparkline draws. */
const SPARK_POINTS = 60;

function chartOptions(width: number): uPlot.Options {
	const axis: uPlot.Axis = {
		stroke: "#8391a7",
		grid: { stroke: "rgba(148,163,184,0.08)", width: 1 },
		ticks: { stroke: "rgba(148,163,184,0.15)", width: 1 },
		font: "11px system-ui, sans-serif"
	};
	const line = (label: string, color: string): uPlot.Series => ({
		label,
		scale: "%",
		stroke: color,
		width: 1.75,
		fill: `${color}1f`,
		points: { show: false },
		spanGaps: true,
		value: (_u, v) => (v == null ? "–" : `${v.toFixed(0)}%`)
	});
	return {
		width,
		height: HEIGHT,
		cursor: { drag: { x: false, y: false }, points: { size: 6 } },
		legend: { live: true },
		scales: { x: { time: true }, "%": { auto: false, range: [0, 100] } },
		axes: [
			{ ...axis },
			{ ...axis, scale: "%", size: 50, values: (_u, vals) => vals.map(v => `${v}%`) }
		],
		series: [
			{ value: (_u, v) => (v == null ? "–" : new Date(v * 1000).toLocaleTimeString()) },
			line("CPU", COLORS.cpu),
			line("Memory", COLORS.mem),
			line("GPU util", COLORS.gpu)
		]
	};
}

function chartData(h: History): uPlot.AlignedData {
	return [h.t, h.cpu, h.mem, h.gpu];
}

/** A filled line of the newest values (percent) across the canvas. */
function drawSpark(canvas: HTMLCanvasElement, values: (number | null)[], color: string): void {
	const ctx = canvas.getContext("2d");
	if (!ctx) return;
	const w = canvas.width;
	const h = canvas.height;
	ctx.clearRect(0, 0, w, h);
	const v = values.slice(-SPARK_POINTS);
	if (v.length < 2 || v.every(x => x === null)) return;
	ctx.beginPath();
	v.forEach((y, i) => {
		const x = (i / (v.length - 1)) * (w - 2) + 1;
		const yy = h - 2 - ((y ?? 0) / 100) * (h - 4);
		if (i === 0) ctx.moveTo(x, yy);
		else ctx.lineTo(x, yy);
	});
	ctx.strokeStyle = color;
	ctx.lineWidth = 1.5;
	ctx.stroke();
	ctx.lineTo(w - 1, h);
	ctx.lineTo(1, h);
	ctx.closePath();
	ctx.fillStyle = `${color}26`;
	ctx.fill();
}

export class Charts {
	private cluster: uPlot | null = null;
	private node: uPlot | null = null;

	constructor(private readonly state: DashboardState) {}

	/** Makes both charts once uPlot is there, and keeps them as wide as their panels. */
	ensure(): boolean {
		if (this.cluster) return true;
		const UPlot = window.uPlot;
		if (!UPlot) return false;
		const ce = byId("chart-cluster");
		const ne = byId("chart-node");
		const width = (e: HTMLElement) => Math.max(200, e.clientWidth);
		const cluster = new UPlot(chartOptions(width(ce)), chartData(emptyHistory()), ce);
		const node = new UPlot(chartOptions(width(ne)), chartData(emptyHistory()), ne);
		const resize = new ResizeObserver(() => {
			cluster.setSize({ width: width(ce), height: HEIGHT });
			node.setSize({ width: width(ne), height: HEIGHT });
		});
		resize.observe(ce);
		resize.observe(ne);
		this.cluster = cluster;
		this.node = node;
		return true;
	}

	/** Both charts and the sparklines from the state. `data-points` says how many are drawn. */
	render(): void {
		if (!this.ensure()) return;
		const c = this.state.cluster;
		this.cluster!.setData(chartData(c));
		byId("chart-cluster").dataset.points = String(c.t.length);
		const selected = this.state.selected;
		const h = (selected && this.state.nodeHistory.get(selected)) || emptyHistory();
		this.node!.setData(chartData(h));
		byId("chart-node").dataset.points = String(h.t.length);
		drawSpark(byId<HTMLCanvasElement>("s-cpu"), c.cpu, COLORS.cpu);
		drawSpark(byId<HTMLCanvasElement>("s-mem"), c.mem, COLORS.mem);
		drawSpark(byId<HTMLCanvasElement>("s-gpu"), c.gpu, COLORS.gpu);
	}
}
