/**
 * Commands that IsA Cloud adds to the Moleculer REPL (`npm run repl`, `npm run dev`). Each one
 * calls the cluster's actions and prints with the pure renderers below, which are unit-tested.
 */
import type { ServiceBroker } from "moleculer";
import type { NodeInfo } from "./types";
import { formatSize } from "./units";

/** A plain text table: columns padded to their widest cell. */
export function renderTable(header: string[], rows: string[][]): string {
	const widths = header.map((h, i) => Math.max(h.length, ...rows.map(r => (r[i] ?? "").length)));
	const line = (cells: string[]) =>
		cells
			.map((c, i) => c.padEnd(widths[i]))
			.join("  ")
			.trimEnd();
	return [line(header), line(widths.map(w => "-".repeat(w))), ...rows.map(line)].join("\n");
}

function percent(used: number, total: number): string {
	return total > 0 ? `${Math.round((used / total) * 100)}%` : "-";
}

/** The `nodes` table: node, status, CPU, memory, GPUs, usage. */
export function renderNodes(
	nodes: NodeInfo[],
	empty = "No nodes have reported yet. Start one with `npm start`."
): string {
	if (nodes.length === 0) return empty;
	const rows = nodes.map(n => {
		const gpus = n.capacity.gpus;
		const gpuUse = n.usage?.gpus ?? [];
		return [
			n.id,
			n.status,
			`${n.capacity.cpu} cores`,
			formatSize(n.capacity.memory),
			gpus.length ? `${gpus.length}× ${gpus[0].model}` : "-",
			n.usage ? percent(n.usage.cpu, n.capacity.cpu) : "-",
			n.usage ? percent(n.usage.memory, n.capacity.memory) : "-",
			gpuUse.length ? gpuUse.map(g => `${Math.round(g.utilization)}%`).join(" ") : "-"
		];
	});
	return renderTable(["NODE", "STATUS", "CPU", "MEMORY", "GPUS", "CPU%", "MEM%", "GPU%"], rows);
}

interface ReplArgs {
	options: Record<string, unknown>;
}

export const replCommands = [
	{
		command: "nodes",
		description: "IsA nodes: status, capacity and usage (Moleculer's view: `info`, `services`)",
		options: [{ option: "-s, --status <status>", description: "only ready, draining or down" }],
		async action(broker: ServiceBroker, args: ReplArgs) {
			const status = args.options.status as string | undefined;
			const res: { items: NodeInfo[] } = await broker.call(
				"nodes.list",
				status ? { status } : {}
			);
			console.log(renderNodes(res.items, status ? `No node is ${status}.` : undefined));
		}
	}
];

/**
 * moleculer-repl ships a `nodes` command of its own (Moleculer's registry, also shown by
 * `info`) that would shadow ours, since commander runs the first command of a name: keep it
 * from registering. Call before `broker.repl()`.
 */
export function prepareRepl(): void {
	// eslint-disable-next-line @typescript-eslint/no-require-imports
	const builtin = require("moleculer-repl/src/commands/nodes.js");
	builtin.register = () => undefined;
}
