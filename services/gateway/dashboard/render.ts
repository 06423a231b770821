/**
 * Render scheduling: a change only marks what it made stale, and one requestAnimationFrame
 * pass draws all of it, so 200 nodes reporting every 2 s cost one layout, not 200.
 */
import type { Charts } from "./charts";
import { renderAlerts, renderResources, renderServices, renderWorkloads } from "./lists";
import type { NodeCards } from "./node-cards";
import type { DashboardState } from "./state";
import { renderTiles } from "./tiles";

export type ListName = "workloads" | "services" | "resources" | "alerts";

export class Renderer {
	private frame = 0;
	private readonly staleNodes = new Set<string>();
	private allNodesStale = false;
	private readonly staleLists = new Set<ListName>();
	private tilesStale = false;
	private chartsStale = false;

	constructor(
		private readonly state: DashboardState,
		private readonly cards: NodeCards,
		private readonly chartsView: Charts,
		private readonly onSelect: (node: string) => void
	) {}

	/** One node's card, and the tiles that sum it up. */
	node(id: string): void {
		this.staleNodes.add(id);
		this.tilesStale = true;
		this.schedule();
	}

	/** Every card (a new list, or a new filter). */
	allNodes(): void {
		this.allNodesStale = true;
		this.tilesStale = true;
		this.schedule();
	}

	list(name: ListName): void {
		this.staleLists.add(name);
		this.tilesStale = true;
		this.schedule();
	}

	charts(): void {
		this.chartsStale = true;
		this.schedule();
	}

	private schedule(): void {
		if (!this.frame) this.frame = requestAnimationFrame(() => this.render());
	}

	private render(): void {
		this.frame = 0;
		if (this.allNodesStale) this.cards.renderAll();
		else for (const id of this.staleNodes) this.cards.render(id);
		this.allNodesStale = false;
		this.staleNodes.clear();
		const lists = this.staleLists;
		if (lists.has("workloads")) {
			renderWorkloads(this.state, this.onSelect);
			// The cards mark the GPUs that the workloads' placements reserve.
			for (const id of this.state.nodes.keys()) this.cards.render(id);
		}
		if (lists.has("services")) renderServices(this.state);
		if (lists.has("resources")) renderResources(this.state);
		if (lists.has("alerts")) renderAlerts(this.state);
		lists.clear();
		if (this.tilesStale) {
			this.tilesStale = false;
			renderTiles(this.state);
		}
		if (this.chartsStale) {
			this.chartsStale = false;
			this.chartsView.render();
		}
	}
}
