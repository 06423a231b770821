/**
 * One card per node (#nodes, from the #node-card template): status, CPU and memory bars with a
 * tick at what is reserved, and a bar per GPU. A card is made once and then only its changed
 * text and styles are written, since every node reports every ~2 s.
 */
import type { GpuUsage, NodeInfo } from "../../shared/types";
import { byId, el, setStyle, setText } from "./dom";
import { formatAgo, formatCores, formatPercent, naturalCompare, percent } from "./format";
import { formatSize } from "../../shared/format";
import { DashboardState, nodeMatches } from "./state";

/** Smaller cards from this many nodes on. */
const DENSE_FROM = 30;
/** A GPU at this temperature (°C) or hotter is marked. */
const HOT_CELSIUS = 85;
const IDLE_GPU: GpuUsage = { index: -1, utilization: 0, memoryUsed: 0, temperature: null };

interface GpuBox {
	box: HTMLElement;
	/** Utilization, a vertical fill. */
	u: HTMLElement;
	/** Memory used, a horizontal fill. */
	m: HTMLElement;
}

interface Card {
	root: HTMLElement;
	dot: HTMLElement;
	badge: HTMLElement;
	cpuBar: HTMLElement;
	cpuFill: HTMLElement;
	cpuAlloc: HTMLElement;
	cpuV: HTMLElement;
	memBar: HTMLElement;
	memFill: HTMLElement;
	memAlloc: HTMLElement;
	memV: HTMLElement;
	gpus: HTMLElement;
	gpuBoxes: GpuBox[];
	/** Tooltips are kept up to date only while the pointer is on the card. */
	hovered: boolean;
}

function part(root: HTMLElement, selector: string): HTMLElement {
	const e = root.querySelector<HTMLElement>(selector);
	if (!e) throw new Error(`The node card template has no ${selector}.`);
	return e;
}

function usageOf(node: NodeInfo): Map<number, GpuUsage> {
	return new Map((node.usage?.gpus ?? []).map(g => [g.index, g]));
}

/** The reserved tick of a bar: hidden at 0. */
function setAlloc(tick: HTMLElement, p: number): void {
	setStyle(tick, "opacity", p > 0 ? "0.9" : "0");
	setStyle(tick, "left", `calc(${p.toFixed(1)}% - 1px)`);
}

function setFill(fill: HTMLElement, axis: "X" | "Y", p: number): void {
	setStyle(fill, "transform", `scale${axis}(${(p / 100).toFixed(3)})`);
}

export class NodeCards {
	private readonly cards = new Map<string, Card>();
	private readonly container = byId("nodes");
	private readonly template = byId<HTMLTemplateElement>("node-card");

	constructor(
		private readonly state: DashboardState,
		private readonly onSelect: (id: string) => void
	) {}

	/** Every card, in name order; cards of nodes that are gone are dropped. */
	renderAll(): void {
		const ids = [...this.state.nodes.keys()].sort(naturalCompare);
		const frag = document.createDocumentFragment();
		for (const id of ids) {
			const c = this.cards.get(id) ?? this.make(id);
			this.fill(c, this.state.nodes.get(id)!);
			frag.appendChild(c.root);
		}
		for (const [id, c] of this.cards)
			if (!this.state.nodes.has(id)) {
				c.root.remove();
				this.cards.delete(id);
			}
		this.container.replaceChildren(frag);
		this.renderCount();
	}

	/** One node's card: made and put in name order if new, removed if the node is gone. */
	render(id: string): void {
		const node = this.state.nodes.get(id);
		let c = this.cards.get(id);
		if (!node) {
			if (c) {
				c.root.remove();
				this.cards.delete(id);
			}
			this.renderCount();
			return;
		}
		if (!c) {
			c = this.make(id);
			const before = [...this.container.children].find(
				other => naturalCompare((other as HTMLElement).dataset.nodeId ?? "", id) > 0
			);
			this.container.insertBefore(c.root, before ?? null);
			this.renderCount();
		}
		this.fill(c, node);
	}

	private renderCount(): void {
		const nodes = this.state.nodes;
		const ready = [...nodes.values()].filter(n => n.status === "ready").length;
		byId("nodes-count").textContent = nodes.size ? `${ready} / ${nodes.size} ready` : "";
		byId("nodes-empty").hidden = nodes.size > 0;
		this.container.classList.toggle("dense", nodes.size >= DENSE_FROM);
	}

	private make(id: string): Card {
		const root = this.template.content.firstElementChild!.cloneNode(true) as HTMLElement;
		root.dataset.nodeId = id;
		const c: Card = {
			root,
			dot: part(root, ".dot"),
			badge: part(root, ".badge"),
			cpuBar: part(root, ".cpu .bar"),
			cpuFill: part(root, ".cpu .fill"),
			cpuAlloc: part(root, ".cpu .alloc"),
			cpuV: part(root, ".cpu .v"),
			memBar: part(root, ".mem .bar"),
			memFill: part(root, ".mem .fill"),
			memAlloc: part(root, ".mem .alloc"),
			memV: part(root, ".mem .v"),
			gpus: part(root, ".gpus"),
			gpuBoxes: [],
			hovered: false
		};
		part(root, ".name").textContent = id;
		root.addEventListener("click", () => this.onSelect(id));
		root.addEventListener("keydown", e => {
			if (e.key === "Enter" || e.key === " ") this.onSelect(id);
		});
		root.addEventListener("mouseenter", () => {
			c.hovered = true;
			const node = this.state.nodes.get(id);
			if (node) this.fillTitles(c, node);
		});
		root.addEventListener("mouseleave", () => (c.hovered = false));
		this.cards.set(id, c);
		return c;
	}

	private fill(c: Card, node: NodeInfo): void {
		const hidden = !nodeMatches(node, this.state.filter);
		if (c.root.hidden !== hidden) c.root.hidden = hidden;
		if (hidden) return;
		if (c.root.dataset.status !== node.status) c.root.dataset.status = node.status;
		c.root.classList.toggle("selected", this.state.selected === node.id);
		const dotClass = `dot ${node.status}`;
		if (c.dot.className !== dotClass) c.dot.className = dotClass;
		const cap = node.capacity;
		setText(
			c.badge,
			node.status === "ready"
				? `${formatCores(cap.cpu)} CPU · ${formatSize(cap.memory)}`
				: `${node.status} · ${formatAgo(node.lastSeen, Date.now())}`
		);
		const cpuP = node.usage?.cpuPercent ?? 0;
		const memP = percent(node.usage?.memory ?? 0, cap.memory);
		setFill(c.cpuFill, "X", cpuP);
		setText(c.cpuV, formatPercent(cpuP));
		setFill(c.memFill, "X", memP);
		setText(c.memV, formatPercent(memP));
		setAlloc(c.cpuAlloc, percent(node.allocated.cpu, cap.cpu));
		setAlloc(c.memAlloc, percent(node.allocated.memory, cap.memory));

		if (c.gpuBoxes.length !== cap.gpus.length) {
			c.gpus.replaceChildren();
			c.gpuBoxes = cap.gpus.map(g => {
				const box = el("span", "gpu");
				const u = el("i", "u");
				const m = el("i", "m");
				box.append(u, m, el("span", "i", String(g.index)));
				c.gpus.appendChild(box);
				return { box, u, m };
			});
		}
		const usage = usageOf(node);
		const reserved = this.state.reservations.get(node.id);
		cap.gpus.forEach((g, i) => {
			const b = c.gpuBoxes[i];
			const u = usage.get(g.index) ?? IDLE_GPU;
			setFill(b.u, "Y", Math.max(0, Math.min(100, u.utilization)));
			setFill(b.m, "X", percent(u.memoryUsed, g.memory));
			b.box.classList.toggle("hot", u.temperature !== null && u.temperature >= HOT_CELSIUS);
			b.box.classList.toggle("reserved", reserved?.has(g.index) ?? false);
		});
		if (c.hovered) this.fillTitles(c, node);
	}

	private fillTitles(c: Card, node: NodeInfo): void {
		const cap = node.capacity;
		const alloc = node.allocated;
		const labels = Object.entries(node.labels).map(([k, v]) => `${k}=${v}`);
		c.root.title =
			`${node.hostname || node.id} — ${node.status}` +
			(labels.length ? `\n${labels.join(", ")}` : "") +
			`\nlast report ${formatAgo(node.lastSeen, Date.now())} ago`;
		c.cpuBar.title =
			`CPU: ${formatCores(node.usage?.cpu ?? 0)} of ${formatCores(cap.cpu)} cores busy, ` +
			`${formatCores(alloc.cpu)} reserved`;
		c.memBar.title =
			`Memory: ${formatSize(node.usage?.memory ?? 0)} of ${formatSize(cap.memory)} used, ` +
			`${formatSize(alloc.memory)} reserved`;
		const usage = usageOf(node);
		const reserved = this.state.reservations.get(node.id);
		cap.gpus.forEach((g, i) => {
			const b = c.gpuBoxes[i];
			if (!b) return;
			const u = usage.get(g.index) ?? IDLE_GPU;
			const by = reserved?.get(g.index);
			b.box.title =
				`GPU ${g.index} · ${g.model || "GPU"}\n${Math.round(u.utilization)}% busy · ` +
				`${formatSize(u.memoryUsed)} / ${formatSize(g.memory)}` +
				(u.temperature !== null ? ` · ${Math.round(u.temperature)} °C` : "") +
				(by ? `\nreserved by ${by}` : "");
		});
	}
}
