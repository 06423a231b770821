/**
 * Recovery: replicas move off a lost or drained node, placements a workload no longer names go
 * back, and the periodic reconcile repairs what the rest left behind: it catches up with other
 * schedulers, audits the reservations against the workloads (assign.ts: a crash between a
 * reservation and its workload's write), places what waits and re-tells every live node its
 * replicas.
 */
import type { LoggerInstance } from "moleculer";
import type { RecordChange } from "../audit/system";
import type { AgentSync } from "./agent-sync";
import { applyReleases, audit, type Placed, placedReplicas } from "./assign";
import { nextTurn, type WorkloadRepository } from "./repository";
import type { Reserver } from "./reservations";
import { CONFLICT, retryOnConflict } from "./retry";
import type { PlacementRounds } from "./rounds";
import type { SerialQueue } from "./serial-queue";
import type { Workload } from "./workload";

export interface RecoverySettings {
	/** ms between two audits of the reservations against the workloads (see assign.ts). */
	auditInterval: number;
	/**
	 * A reservation no replica names is given back only when older than this (ms): a placement
	 * round writes its workloads well within it.
	 */
	auditGrace: number;
}

export class Recovery {
	/** When the last audit ran (0: never, so the first reconcile audits). */
	private auditedAt = 0;
	/** Every node's allocation was announced once, after the first reconcile. */
	private announcedAll = false;
	/**
	 * Lost nodes whose replicas wait for their workload's `disconnect.replaceAfter`, by node:
	 * the timers that move them, cancelled when the node is back (nodeUp).
	 */
	private readonly deferred = new Map<string, Set<NodeJS.Timeout>>();

	constructor(
		private readonly workloads: WorkloadRepository,
		private readonly reserver: Reserver,
		private readonly queue: SerialQueue,
		private readonly rounds: PlacementRounds,
		private readonly agents: AgentSync,
		private readonly settings: RecoverySettings,
		private readonly logger: LoggerInstance,
		/** Audits what moves (actor `system:scheduler`); never fails the move. */
		private readonly record: RecordChange = () => undefined
	) {}

	/**
	 * Moves every replica off a lost or drained node; each moves once (versions decide). A
	 * drained node is told to stop them; a lost one hears it when it returns (node.up).
	 */
	async evacuate(
		nodeID: string,
		reason: string,
		lost: boolean,
		only?: Set<string>
	): Promise<void> {
		await this.queue.run(async () => {
			const docs = await this.workloads.all();
			const touched = new Set<string>(lost ? [] : [nodeID]);
			for (const d of docs) {
				if (only && !only.has(d.id)) continue;
				const wait = lost && !only ? (d.value.disconnect?.replaceAfterMs ?? 0) : 0;
				if (wait > 0 && d.value.replicas.some(r => r.node === nodeID)) {
					this.deferReplacement(nodeID, d.value, wait, reason);
					continue;
				}
				const on = d.value.replicas.filter(r => r.node === nodeID).map(r => r.index);
				if (on.length) {
					this.logger.info(
						`Moving ${on.length} replica(s) of '${d.value.name}' off ${nodeID}: ${reason}.`
					);
					// What is still on the node when the workload is written: a replica that
					// moved meanwhile stays where it went.
					const still = (w: Workload) =>
						placedReplicas(w, on).filter(p => p.node === nodeID);
					const gone = await this.releaseReplicas(d.value, still, reason, true);
					for (const n of gone) touched.add(n);
					if (gone.size)
						this.record({
							actor: "system:scheduler",
							action: lost ? "scheduler.reschedule" : "scheduler.evict",
							target: d.value.id,
							tenant: d.value.tenant,
							detail: `replicas ${on.join(", ")} of '${d.value.name}' left ${nodeID}: ${reason}`
						});
				}
			}
			for (const n of (await this.rounds.placePending([...this.rounds.waiting])).keys())
				touched.add(n);
			await this.agents.syncNodes(touched);
		});
	}

	/**
	 * A lost node's replicas of a workload with `disconnect.replaceAfter` stay placed there for
	 * that long: a node back within it (nodeUp) keeps them running, untouched.
	 */
	private deferReplacement(nodeID: string, w: Workload, wait: number, reason: string): void {
		this.logger.info(
			`Replicas of '${w.name}' on ${nodeID} are replaced in ${wait} ms unless it returns (disconnect.replaceAfter).`
		);
		const timers = this.deferred.get(nodeID) ?? new Set();
		this.deferred.set(nodeID, timers);
		const timer = setTimeout(() => {
			timers.delete(timer);
			if (timers.size === 0) this.deferred.delete(nodeID);
			this.evacuate(
				nodeID,
				`${reason} for ${wait} ms (disconnect.replaceAfter)`,
				true,
				new Set([w.id])
			).catch((err: Error) =>
				this.logger.warn(`Replacing the replicas of '${w.name}' failed:`, err.message)
			);
		}, wait);
		timer.unref();
		timers.add(timer);
	}

	/** The node is back: replicas waiting for their replaceAfter stay where they run. */
	nodeUp(nodeID: string): void {
		for (const timer of this.deferred.get(nodeID) ?? []) clearTimeout(timer);
		this.deferred.delete(nodeID);
	}

	/** Cancels every waiting replacement, as the service stops. */
	stop(): void {
		for (const id of [...this.deferred.keys()]) this.nodeUp(id);
	}

	/**
	 * Takes the placements `pick` chooses (from the workload as it is at each try) off their
	 * nodes; with `pend`, they wait to be placed again. The workload forgets them first and
	 * their reservations go after (see assign.ts). Resolves to the nodes that lost replicas.
	 * A workload that keeps changing keeps its placements (the next reconcile tries again).
	 */
	async releaseReplicas(
		w0: Workload,
		pick: (w: Workload) => Placed[],
		reason: string,
		pend: boolean
	): Promise<Set<string>> {
		let gone: Placed[] = [];
		await retryOnConflict(async () => {
			const doc = await this.workloads.get(w0.id);
			if (!doc) return;
			const w: Workload = doc.value;
			const picked = pick(w);
			if (!applyReleases(w, picked, reason, pend, Date.now())) return;
			if (!(await this.workloads.write(w, doc.version))) return CONFLICT;
			if (pend) this.rounds.waiting.add(w.id);
			gone = picked;
		});
		await this.releaseForgotten(gone);
		return new Set(gone.map(p => p.node));
	}

	/** Gives back the reservations of replicas their workload no longer names. */
	async releaseForgotten(placed: Placed[]): Promise<void> {
		await Promise.all(placed.map(p => this.reserver.release(p.key)));
	}

	/**
	 * The periodic safety net: catch up with other schedulers, repair what a crash between a
	 * reservation and its workload's write left, place what waits, and check that every live
	 * node runs its replicas.
	 *
	 * It reads and audits outside the queue: with tens of thousands of workloads that takes
	 * 100 ms and more, and every create would wait for it there. What it found is confirmed in
	 * the queue before anything is changed (see the lost replicas below).
	 */
	async reconcile(): Promise<void> {
		// Workloads before placements: see audit(). Read from the repository's copies, of
		// which only those whose version moved are read again: the reconcile's cost follows
		// what changed, not how many workloads there are. Nothing here changes them.
		const docs = await this.workloads.allCached();
		// A turn of the event loop between phases: the reconcile is a safety net, and the
		// requests waiting meanwhile go first.
		await nextTurn();
		// Reading every placement costs what the audit is worth only now and then.
		const auditNow = Date.now() - this.auditedAt >= this.settings.auditInterval;
		await this.reserver.refresh({ placements: auditNow });
		await nextTurn();
		const { lost, orphans } = auditNow
			? await audit(
					docs.map(d => d.value),
					this.reserver.placementEntries(),
					Date.now(),
					this.settings.auditGrace,
					nextTurn
				)
			: { lost: [], orphans: [] };
		if (auditNow) this.auditedAt = Date.now();
		const synced = await this.queue.run(async () => {
			// The syncs below go to the nodes the inventory has now.
			await this.rounds.loadInventory();
			if (orphans.length) {
				this.logger.warn(
					`Releasing ${orphans.length} reservation(s) that no replica holds.`
				);
				await Promise.all(orphans.map(key => this.reserver.release(key)));
			}
			const touched = new Set<string>();
			for (const id of new Set(lost.map(l => l.workloadId)))
				for (const n of await this.replaceLost(
					id,
					lost.filter(l => l.workloadId === id)
				))
					touched.add(n);
			const waiting = this.rounds.waiting;
			waiting.clear();
			for (const d of docs)
				if (d.value.replicas.some(r => r.state === "pending")) waiting.add(d.id);
			for (const l of lost) waiting.add(l.workloadId);
			await nextTurn();
			// Their nodes hear of the workloads placed now (as after any round), not their
			// complete lists: under a flood of creates every reconcile finds some pending.
			this.agents.syncSoon(await this.rounds.placePending([...waiting]));
			await nextTurn();
			await this.agents.syncNodes(touched);
			// The inventory may have started before this scheduler: it hears every
			// allocation once, then only their changes.
			if (!this.announcedAll) {
				this.announcedAll = true;
				for (const n of this.reserver.index.values())
					this.rounds.announceAllocation(n.id, n.allocated);
			}
			return touched;
		});
		// Every other live node, the idle ones too, is checked: one may still run what a lost
		// sync should have stopped. A task of its own, so that the creates queued meanwhile go
		// first, and in the queue, so that no round is halfway through its writes (their
		// changes are in the copies before they are in toSync).
		const others = [...this.reserver.index.values()].filter(
			n => n.status !== "down" && !synced.has(n.id)
		);
		await this.queue.run(() => this.agents.checkNodes(others.map(n => n.id)));
	}

	/**
	 * Places the audit's lost replicas of a workload again; resolves to the nodes that lost
	 * them. The audit ran outside the queue, so a replica it found lost may have been released
	 * since, by a delete or a scale (the workload stops naming it, then its reservation goes):
	 * only those the workload still names, at the same fence and node, are lost. Fences are
	 * never reused, so one still named now was named all along, and its reservation is gone.
	 */
	private async replaceLost(id: string, found: Placed[]): Promise<Set<string>> {
		const still = (w: Workload) =>
			found.filter(l => {
				const r = w.replicas[l.index];
				return r?.fence === l.fence && r.node === l.node;
			});
		const doc = await this.workloads.get(id);
		const gone = doc ? still(doc.value) : [];
		if (gone.length === 0) return new Set();
		this.logger.warn(
			`Placing ${gone.length} replica(s) of '${doc!.value.name}' again: their reservation is gone.`
		);
		// Exactly the placements found lost: one placed anew meanwhile is left alone.
		return this.releaseReplicas(doc!.value, still, "its reservation was lost", true);
	}
}
