/**
 * The nodes service forgets down nodes after its retention (ISA_NODE_RETENTION): from the list,
 * from the store, with a `node.removed` event and a system audit record; live nodes and nodes
 * down for less than the retention stay. A real SQLite store, a broker without transporter.
 */
import fs from "fs";
import os from "os";
import path from "path";
import { ServiceBroker } from "moleculer";
import type { Context } from "moleculer";
import NodesService from "../../../services/nodes.service";
import type { SystemChange } from "../../../services/audit/system";
import { COLLECTIONS } from "../../../services/shared/collections";
import { SqliteStore } from "../../../services/shared/store/sqlite";
import type { NodeInfo } from "../../../services/shared/types";
import { idleReport } from "../../helpers/nodes";
import { withSettings } from "../../helpers/services";

const RETENTION = 400;

async function waitFor<T>(fn: () => Promise<T | null | false>, ms = 5000): Promise<T> {
	const deadline = Date.now() + ms;
	for (;;) {
		const value = await fn();
		if (value) return value;
		if (Date.now() > deadline) throw new Error("timed out");
		await new Promise(r => setTimeout(r, 20));
	}
}

describe("nodes service: retention of down nodes", () => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), "isa-retention-"));
	const file = path.join(dir, "isa.db");
	const broker = new ServiceBroker({ logger: false });
	const audited: SystemChange[] = [];
	const removed: unknown[] = [];
	broker.createService(withSettings(NodesService, { store: file, nodeRetention: RETENTION }));
	broker.createService({
		name: "audit",
		actions: {
			record(ctx: Context<SystemChange>) {
				audited.push(ctx.params);
				return { ok: true };
			}
		}
	});
	broker.createService({
		name: "listener",
		events: {
			"node.removed"(ctx: Context<unknown>) {
				removed.push(ctx.params);
			}
		}
	});
	const ids = async () =>
		(await broker.call<{ items: NodeInfo[] }, object>("nodes.list", {})).items.map(n => n.id);

	beforeAll(() => broker.start());
	afterAll(async () => {
		await broker.stop();
		fs.rmSync(dir, { recursive: true, force: true });
	});

	it("forgets a node down for longer than the retention, keeps the live and the recent", async () => {
		await broker.broadcast("node.report", idleReport("gone", 100));
		await broker.broadcast("node.report", idleReport("live", 100));
		await waitFor(async () => (await ids()).length === 2);
		broker.broadcastLocal("$node.disconnected", { node: { id: "gone" } });
		await waitFor(async () =>
			(await broker.call<NodeInfo, object>("nodes.get", { id: "gone" })).status === "down"
				? true
				: null
		);
		// "live" keeps reporting past the retention; "gone" is forgotten once it is over.
		const keepReporting = setInterval(
			() => void broker.broadcast("node.report", idleReport("live", 100)),
			50
		);
		try {
			await waitFor(async () => !(await ids()).includes("gone"), RETENTION + 3000);
			expect(await ids()).toEqual(["live"]);
		} finally {
			clearInterval(keepReporting);
		}

		const store = new SqliteStore(file);
		try {
			expect(await store.get(COLLECTIONS.nodes, "gone")).toBeNull();
			expect(await store.get(COLLECTIONS.nodes, "live")).not.toBeNull();
		} finally {
			await store.close();
		}
		expect(removed).toEqual([{ id: "gone", reason: "retention" }]);
		await waitFor(async () => audited.length > 0);
		expect(audited).toEqual([
			expect.objectContaining({
				actor: "system:nodes",
				action: "nodes.forget",
				target: "gone"
			})
		]);
	});

	it("knows a forgotten node again as new when it reports", async () => {
		await broker.broadcast("node.report", idleReport("gone", 100));
		await waitFor(async () => (await ids()).includes("gone"));
		expect(await broker.call("nodes.get", { id: "gone" })).toMatchObject({ status: "ready" });
	});
});
