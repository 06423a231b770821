/**
 * Commands that IsA Cloud adds to the Moleculer REPL (`npm run repl`, `npm run dev`). Each one
 * calls the cluster's actions and prints with the pure renderers below, which are unit-tested.
 */
import os from "os";
import type { ServiceBroker } from "moleculer";
import type { AuditRecord } from "../services/audit/record";
import type { NodeInfo } from "../services/shared/types";
import { loadEnv } from "../services/shared/env";
import { formatSize } from "../services/shared/format";
import { isClusterOwned, type Owned } from "../services/shared/principal";

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

/**
 * The OWNER cell: "cluster", or the owning tenant. The REPL runs as an admin and lists every
 * tenant's objects, so each row says whose it is.
 */
export function ownerCell(object: Owned): string {
	return isClusterOwned(object) ? "cluster" : (object.tenant ?? "?");
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

interface WorkloadRow {
	id: string;
	name: string;
	tenant: string;
	kind: string;
	status: string;
	resources: { cpu: number; memory: number; gpu: number; gpuMemory: number };
	replicas: { node: string | null; gpus: number[]; state: string; reason?: string }[];
}

/** The `workloads` table: name, tenant, status, resources and where each replica runs. */
export function renderWorkloads(items: WorkloadRow[]): string {
	if (items.length === 0)
		return "No workloads. Create one with `schedule <name> --cpu 1 --memory 1Gi --command …`.";
	const rows = items.map(w => {
		const r = w.resources;
		const ask = [`${r.cpu} cpu`, formatSize(r.memory)];
		if (r.gpu) ask.push(`${r.gpu} gpu`);
		if (r.gpuMemory) ask.push(`${formatSize(r.gpuMemory)} gpu mem`);
		const running = w.replicas.filter(x => x.state === "running").length;
		const where = w.replicas
			.map(x => (x.node ? `${x.node}${x.gpus.length ? `[${x.gpus.join(",")}]` : ""}` : "-"))
			.join(" ");
		const reason = w.replicas.find(x => x.reason)?.reason ?? "";
		return [
			w.name,
			w.tenant,
			w.kind,
			w.status,
			`${running}/${w.replicas.length}`,
			ask.join(", "),
			where,
			reason
		];
	});
	return renderTable(
		["NAME", "TENANT", "KIND", "STATUS", "READY", "REQUESTS", "NODES", "REASON"],
		rows
	);
}

/** The REPL acts as a trusted member of the cluster: an admin of ISA_TENANT (default "default"). */
function replUser() {
	return { sub: "repl", tenant: loadEnv().tenant, roles: ["admin"] };
}

/** Who the audit log names for what is done from this REPL: `repl:<OS user>`. */
function replActor(): string {
	let user = "unknown";
	try {
		user = os.userInfo().username;
	} catch {
		// No passwd entry (a container's arbitrary uid): the actor says so.
	}
	return `repl:${user}`;
}

/** The `audit` table: newest first; the outcome is the status and, when it failed, its type. */
export function renderAudit(items: AuditRecord[]): string {
	if (items.length === 0) return "No audit records match.";
	const rows = items.map(r => [
		String(r.seq),
		r.time.replace("T", " ").replace(/\.\d+Z$/, "Z"),
		r.actor ?? "-",
		r.tenant ?? "-",
		r.action ?? r.route ?? "-",
		r.target ?? "-",
		r.outcome.succeeded === null
			? "unknown"
			: `${r.outcome.status ?? ""}${r.outcome.succeeded ? " ok" : ` ${r.outcome.errorType ?? "failed"}`}`.trim()
	]);
	return renderTable(["SEQ", "TIME", "ACTOR", "TENANT", "ACTION", "TARGET", "OUTCOME"], rows);
}

/** Drains or uncordons a node, and records it (actor `repl:<user>`); a failed record is told. */
async function nodeCommand(broker: ServiceBroker, action: "drain" | "uncordon", id: string) {
	try {
		await broker.call(`nodes.${action}`, { id }, { meta: { user: replUser() } });
		console.log(
			action === "drain"
				? `Draining ${id}: its workloads move elsewhere.`
				: `${id} is ready again.`
		);
	} catch (err) {
		console.log(`Not done: ${(err as Error).message}`);
		return;
	}
	try {
		await broker.call("audit.record", {
			actor: replActor(),
			action: `nodes.${action}`,
			target: id
		});
	} catch (err) {
		console.log(`Done, but the audit record was not written: ${(err as Error).message}`);
	}
}

interface ReplArgs {
	options: Record<string, unknown>;
	name?: string;
}

/**
 * The workload a REPL command names, by id or by name; a string when none or several match
 * (the REPL is an admin and sees every tenant's: the id tells them apart).
 */
export function pickWorkload(items: WorkloadRow[], nameOrId: string): WorkloadRow | string {
	const byId = items.find(w => w.id === nameOrId);
	if (byId) return byId;
	const named = items.filter(w => w.name === nameOrId);
	if (named.length === 1) return named[0];
	return named.length === 0
		? `No workload '${nameOrId}'.`
		: `Several workloads are named '${nameOrId}' (${named.map(w => `${w.tenant}: ${w.id}`).join(", ")}); give the id.`;
}

interface HealthRow {
	status: string;
	checkedAt: number | null;
	latencyMs: number | null;
	error?: string;
}

function ago(at: number | null): string {
	return at ? `${Math.max(0, Math.round((Date.now() - at) / 1000))}s ago` : "-";
}

/** The `resources` table: name, owner, type, endpoint (redacted), health. */
export function renderResources(
	items: Array<{ name: string; type: string; endpoint: string; health: HealthRow } & Owned>
): string {
	if (items.length === 0)
		return "No resources. Register some: `npm run apply -- -f configs/isa-platform.yaml`.";
	return renderTable(
		["NAME", "OWNER", "TYPE", "ENDPOINT", "HEALTH", "LATENCY", "CHECKED", "ERROR"],
		items.map(r => [
			r.name,
			ownerCell(r),
			r.type,
			r.endpoint,
			r.health.status,
			r.health.latencyMs != null ? `${r.health.latencyMs}ms` : "-",
			ago(r.health.checkedAt),
			r.health.error ?? ""
		])
	);
}

/** The `services` table: name, owner, type, status, endpoints, dependencies. */
export function renderServices(
	items: Array<
		{
			name: string;
			type: string;
			status: string;
			endpoints: Array<{ url?: string; node?: string }>;
			dependencies: string[];
		} & Owned
	>
): string {
	if (items.length === 0) return "No services.";
	return renderTable(
		["NAME", "OWNER", "TYPE", "STATUS", "ENDPOINTS", "DEPENDS ON"],
		items.map(s => [
			s.name,
			ownerCell(s),
			s.type,
			s.status,
			s.endpoints.map(e => e.url ?? e.node).join(" "),
			s.dependencies.join(", ")
		])
	);
}

interface AlertRow extends Owned {
	rule: string;
	severity: string;
	series: string;
	state: string;
	since: number;
	value: number;
	op: string;
	threshold: number;
}

/** The `alerts` table: firing first, then pending, then recently resolved; OWNER is the rule's. */
export function renderAlerts(items: AlertRow[]): string {
	if (items.length === 0) return "No alerts. All quiet.";
	const order: Record<string, number> = { firing: 0, pending: 1, resolved: 2 };
	const rows = [...items]
		.sort((a, b) => (order[a.state] ?? 3) - (order[b.state] ?? 3) || b.since - a.since)
		.map(a => [
			a.state.toUpperCase(),
			a.severity,
			a.rule,
			ownerCell(a),
			a.series,
			`${a.value} ${a.op} ${a.threshold}`,
			ago(a.since)
		]);
	return renderTable(["STATE", "SEVERITY", "RULE", "OWNER", "SERIES", "VALUE", "SINCE"], rows);
}

export const replCommands = [
	{
		command: "alerts",
		description: "Firing, pending and recently resolved alerts",
		async action(broker: ServiceBroker) {
			const res: { items: AlertRow[] } = await broker.call(
				"monitor.listAlerts",
				{},
				{ meta: { user: replUser() } }
			);
			console.log(renderAlerts(res.items));
		}
	},
	{
		command: "services",
		description:
			"IsA services: registered external ones and discovered Moleculer ones, with status",
		async action(broker: ServiceBroker) {
			const res: { items: Parameters<typeof renderServices>[0] } = await broker.call(
				"registry.listServices",
				{ limit: 1000 },
				{ meta: { user: replUser() } }
			);
			console.log(renderServices(res.items));
		}
	},
	{
		command: "resources",
		description: "IsA resources (databases, stores, files) with their health",
		async action(broker: ServiceBroker) {
			const res: { items: Parameters<typeof renderResources>[0] } = await broker.call(
				"registry.listResources",
				{ limit: 1000 },
				{ meta: { user: replUser() } }
			);
			console.log(renderResources(res.items));
		}
	},
	{
		command: "health",
		description: "Every health check of the registry: target, status, latency, last error",
		async action(broker: ServiceBroker) {
			const rows: Array<HealthRow & Owned & { kind: string; name: string; target: string }> =
				await broker.call("registry.health");
			console.log(
				rows.length === 0
					? "Nothing is checked yet."
					: renderTable(
							[
								"KIND",
								"NAME",
								"OWNER",
								"TARGET",
								"STATUS",
								"LATENCY",
								"CHECKED",
								"ERROR"
							],
							rows.map(r => [
								r.kind,
								r.name,
								ownerCell(r),
								r.target,
								r.status,
								r.latencyMs != null ? `${r.latencyMs}ms` : "-",
								ago(r.checkedAt),
								r.error ?? ""
							])
						)
			);
		}
	},
	{
		command: "workloads",
		description: "IsA workloads: status, requests and placement of each replica",
		async action(broker: ServiceBroker) {
			const res: { items: WorkloadRow[] } = await broker.call(
				"scheduler.list",
				{ limit: 1000 },
				{ meta: { user: replUser() } }
			);
			console.log(renderWorkloads(res.items));
		}
	},
	{
		command: "schedule <name>",
		description:
			"Create a workload: schedule llm --cpu 2 --memory 8Gi --gpu 1 --replicas 2 --command python3 --args serve.py",
		options: [
			{ option: "--cpu <cores>", description: "cores, or millicores like 500m (default 1)" },
			{ option: "--memory <size>", description: "bytes or 512Mi, 16Gi (default 1Gi)" },
			{ option: "--gpu <count>", description: "whole GPUs" },
			{ option: "--gpu-memory <size>", description: "memory on one shared GPU" },
			{ option: "--replicas <n>", description: "replicas (default 1)" },
			{ option: "--command <path>", description: "a process workload's executable" },
			{ option: "--args <args>", description: "its arguments, space separated" },
			{ option: "--module <name>", description: "a service workload's module" },
			{ option: "--strategy <s>", description: "binpack (default) or spread" }
		],
		async action(broker: ServiceBroker, args: ReplArgs) {
			const o = args.options;
			const num = (v: unknown) => (v === undefined ? undefined : Number(v));
			const params = {
				name: args.name,
				kind: o.module ? "service" : "process",
				...(o.module
					? { service: { module: String(o.module) } }
					: {
							process: {
								command: String(o.command ?? ""),
								args: o.args ? String(o.args).split(" ") : []
							}
						}),
				resources: {
					cpu:
						o.cpu !== undefined
							? isNaN(Number(o.cpu))
								? String(o.cpu)
								: Number(o.cpu)
							: 1,
					memory: String(o.memory ?? "1Gi"),
					...(o.gpu !== undefined ? { gpu: num(o.gpu) } : {}),
					...(o.gpuMemory !== undefined ? { gpuMemory: String(o.gpuMemory) } : {})
				},
				replicas: num(o.replicas) ?? 1,
				...(o.strategy ? { placement: { strategy: String(o.strategy) } } : {})
			};
			try {
				const w: WorkloadRow = await broker.call("scheduler.create", params, {
					meta: { user: replUser() }
				});
				console.log(renderWorkloads([w]));
			} catch (err) {
				const e = err as { message: string; data?: unknown };
				console.log(
					`Not scheduled: ${e.message}${e.data ? `\n${JSON.stringify(e.data)}` : ""}`
				);
			}
		}
	},
	{
		command: "retry <name>",
		description:
			"Start a workload's failed replicas again, placed anew (by name or id; audited)",
		async action(broker: ServiceBroker, args: ReplArgs) {
			const meta = { meta: { user: replUser() } };
			const res: { items: WorkloadRow[] } = await broker.call(
				"scheduler.list",
				{ limit: 10000 },
				meta
			);
			const w = pickWorkload(res.items, String(args.name));
			if (typeof w === "string") return console.log(w);
			try {
				console.log(
					renderWorkloads([await broker.call("scheduler.retry", { id: w.id }, meta)])
				);
			} catch (err) {
				return console.log(`Not retried: ${(err as Error).message}`);
			}
			try {
				await broker.call("audit.record", {
					actor: replActor(),
					action: "scheduler.retry",
					target: w.id,
					tenant: w.tenant
				});
			} catch (err) {
				console.log(
					`Done, but the audit record was not written: ${(err as Error).message}`
				);
			}
		}
	},
	{
		command: "drain <node>",
		description: "Drain a node: no new placements, its workloads move elsewhere (audited)",
		async action(broker: ServiceBroker, args: ReplArgs & { node?: string }) {
			await nodeCommand(broker, "drain", String(args.node));
		}
	},
	{
		command: "uncordon <node>",
		description: "Make a drained node ready again (audited)",
		async action(broker: ServiceBroker, args: ReplArgs & { node?: string }) {
			await nodeCommand(broker, "uncordon", String(args.node));
		}
	},
	{
		command: "audit",
		description:
			"The newest audit records: audit -n 20 --actor alice --action scheduler. --outcome denied",
		options: [
			{ option: "-n, --limit <n>", description: "how many (default 20)" },
			{ option: "--actor <actor>", description: "only this actor" },
			{ option: "--action <action>", description: "an action, or a prefix ending in ." },
			{ option: "--outcome <outcome>", description: "succeeded, failed, denied or unknown" },
			{ option: "--target <id>", description: "only this target" },
			{ option: "--since <time>", description: "ms since the epoch or an ISO date" }
		],
		async action(broker: ServiceBroker, args: ReplArgs) {
			const o = args.options;
			const params: Record<string, unknown> = { limit: Number(o.limit ?? 20) };
			for (const name of ["actor", "action", "outcome", "target", "since"])
				if (o[name] !== undefined) params[name] = String(o[name]);
			try {
				const res: { items: AuditRecord[] } = await broker.call("audit.list", params, {
					meta: { user: replUser() }
				});
				console.log(renderAudit(res.items));
			} catch (err) {
				console.log(`No audit records: ${(err as Error).message}`);
			}
		}
	},
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
 * moleculer-repl ships `nodes` and `services` commands of its own (Moleculer's registry, also
 * shown by `info`) that would shadow ours, since commander runs the first command of a name:
 * keep those from registering. Call before `broker.repl()`.
 */
export function prepareRepl(): void {
	for (const { command } of replCommands) {
		const name = command.split(" ")[0];
		let builtin: { register?: unknown };
		try {
			// eslint-disable-next-line @typescript-eslint/no-require-imports
			builtin = require(`moleculer-repl/src/commands/${name}.js`);
		} catch {
			continue; // no built-in command of that name
		}
		builtin.register = () => undefined;
	}
}
