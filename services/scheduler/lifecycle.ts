/**
 * A workload's life as its owners change it: created (its tenant's quota charged, its name and
 * Idempotency-Key taken), scaled, retried (its failed replicas placed anew), its replicas' states
 * as their agents report them, and removed (the quota refunded, the name freed). Creates and removes that arrive together are made in one
 * store transaction per group (gather.ts); a request the group cannot take, or a group that
 * lost a race, is made alone after it, trying again while other schedulers change the same
 * documents (retry.ts). Creates are bounded per tenant and in all (fair-queue.ts `Admission`:
 * 503 OVERLOADED past that) and taken into groups round-robin by tenant. A light tenant's
 * create (LIGHT_CREATES) is made and placed in the queue's urgent lane (serial-queue.ts), ahead
 * of a flooding tenant's groups and rounds.
 */
import crypto from "crypto";
import type { LoggerInstance } from "moleculer";
import { ConflictError } from "../shared/errors";
import type { Principal } from "../shared/principal";
import type { Versioned } from "../shared/store";
import type { ReplicaStatus } from "../shared/types";
import type { AgentSync } from "./agent-sync";
import { type Placed, placedReplicas } from "./assign";
import { Admission, type AdmissionLimits } from "../shared/admission";
import { RecentCounts } from "../shared/recent-counts";
import { type Gathered, Gatherer } from "./gather";
import { addUsage, checkQuota } from "./quota";
import type { Recovery } from "./recovery";
import { CONTROL_SERVICES } from "../registry/proxy";
import { claimedName, type Made, type TenantState, type WorkloadRepository } from "./repository";
import { CONFLICT, retryOnConflict } from "./retry";
import type { PlacementRounds } from "./rounds";
import type { Lane, SerialQueue } from "./serial-queue";
import {
	addEvent,
	failedReplicas,
	lastFence,
	newWorkload,
	pendingReplica,
	type Replica,
	totalRequest,
	type Workload,
	type WorkloadInput,
	workloadStatus
} from "./workload";

/**
 * A tenant is light, and its creates take the urgent lane, while it has LIGHT_CREATES creates
 * in the scheduler or fewer (the new one counted; a client that waits for each answer has one
 * at a time) and sent at most 1/LIGHT_SHARE of the creates another tenant sent lately. While
 * no tenant is that much busier, every create takes the normal lane, and tenants alike in load
 * are served round-robin. A burst stays in the lane its first create took (laneOf).
 */
export const LIGHT_CREATES = 2;
export const LIGHT_SHARE = 4;
/**
 * Creates of one tenant in the scheduler past which a burst that began in the urgent lane goes
 * on in the normal one: an urgent group stays a few creates, not a light tenant's thousands.
 */
export const URGENT_BURST = 16;

export interface CreateRequest {
	input: WorkloadInput;
	user: Principal;
	/** The request's Idempotency-Key. */
	key?: string;
}

export interface RemoveRequest {
	id: string;
	/** Who asks: another tenant's workload is not found. */
	user?: Principal;
}

/** A deleted workload, its placements to take off their nodes, and their release. */
export interface Removed {
	w: Workload;
	gone: Placed[];
	released: Promise<void>;
}

export class WorkloadLifecycle {
	/** Creates waiting to be made together (createTogether), per lane of the queue. */
	private readonly creates: Record<Lane, Gatherer<CreateRequest, Workload>>;
	/** Deletes waiting to be made together (removeTogether). */
	private readonly removes: Gatherer<RemoveRequest, Removed>;
	/** Creates in this scheduler now, per tenant: past the limits a create is refused. */
	private readonly admission: Admission;
	/** Creates per tenant lately (see LIGHT_SHARE). */
	private readonly recent = new RecentCounts();
	/** The last seq handed out (see nextSeq). */
	private lastSeq = 0;

	constructor(
		private readonly workloads: WorkloadRepository,
		private readonly queue: SerialQueue,
		private readonly rounds: PlacementRounds,
		private readonly recovery: Recovery,
		private readonly agents: AgentSync,
		private readonly logger: LoggerInstance,
		limits: AdmissionLimits = { total: Infinity, perTenant: Infinity }
	) {
		this.admission = new Admission("the scheduler's creates", limits);
		const creates = (lane: Lane) =>
			new Gatherer<CreateRequest, Workload>(
				task => queue.run(task, lane),
				group => this.createTogether(group),
				req => this.createOne(req),
				undefined,
				req => req.user.tenant
			);
		this.creates = { urgent: creates("urgent"), normal: creates("normal") };
		this.removes = new Gatherer(
			task => queue.run(task),
			group => this.removeTogether(group),
			req => this.removeOne(req)
		);
	}

	/**
	 * Creates a workload and places its replicas now where they fit; 503 OVERLOADED, before
	 * anything is done, while its tenant (or all tenants) has as many creates in here as allowed.
	 */
	async create(input: WorkloadInput, user: Principal, key?: string): Promise<Workload> {
		const leave = this.admission.enter(user.tenant);
		try {
			const lane = this.laneOf(user.tenant);
			const created = await this.creates[lane].add({ input, user, key });
			// Nothing else changed, so only the new workload can have become placeable. What the
			// round wrote of it is what the store holds (another round may have written it).
			const written = await this.rounds.placeQuietly(created.id, lane);
			// Its round took it, unless the round failed first.
			this.workloads.handedOff(created.id);
			if (written) return written;
			return (await this.workloads.get(created.id))?.value ?? created;
		} finally {
			leave();
		}
	}

	/**
	 * The lane of a create: that of its tenant's creates waiting for a group, so that what
	 * comes at once is made together (in the urgent lane up to URGENT_BURST); else urgent while
	 * the tenant is light (LIGHT_SHARE).
	 */
	private laneOf(tenant: string): Lane {
		this.recent.add(tenant);
		const inside = this.admission.inside(tenant);
		if (this.creates.urgent.hasWaiting(tenant) && inside <= URGENT_BURST) return "urgent";
		if (this.creates.normal.hasWaiting(tenant)) return "normal";
		const light =
			inside <= LIGHT_CREATES &&
			this.recent.count(tenant) * LIGHT_SHARE <= this.recent.busiestOther(tenant);
		return light ? "urgent" : "normal";
	}

	/**
	 * Creates a group of workloads (see gather.ts) in one transaction. A request that needs
	 * more than that (a twin in the group by name or key, a taken name) and every request
	 * of a group whose transaction lost a race are left to createOne, after it.
	 */
	async createTogether(
		group: Gathered<CreateRequest, Workload>[]
	): Promise<Gathered<CreateRequest, Workload>[]> {
		const now = Date.now();
		const later: Gathered<CreateRequest, Workload>[] = [];
		const seen = new Set<string>();
		/** Tenants as read; `tenants`: those the group creates for, to commit. */
		const read = new Map<string, TenantState>();
		const tenants = new Map<string, TenantState>();
		const plan: Array<{ g: Gathered<CreateRequest, Workload>; made: Made }> = [];
		for (const g of group) {
			const { input, user, key } = g.item;
			const tenant = user.tenant;
			const name = `${tenant}/${input.name}`;
			const idem = key && `key:${tenant}/${key}`;
			if (seen.has(name) || (idem && seen.has(idem))) {
				later.push(g);
				continue;
			}
			seen.add(name);
			if (idem) seen.add(idem);
			try {
				const { earlier, keyVersion } = await this.workloads.byIdempotencyKey(tenant, key);
				if (earlier) {
					g.resolve(earlier);
					continue;
				}
				if (await this.workloads.nameTaken(tenant, input.name)) {
					later.push(g);
					continue;
				}
				const t = read.get(tenant) ?? (await this.workloads.tenantState(tenant));
				read.set(tenant, t);
				const w = this.draftWorkload(input, user, now);
				await this.checkServiceName(w);
				const charge = totalRequest(w.resources, w.replicas.length);
				try {
					checkQuota(tenant, t.quota, t.next, charge, 1);
				} catch (err) {
					// Over quota only with the group's own creates, which may not commit: asked
					// again after them.
					if (tenants.has(tenant)) {
						later.push(g);
						continue;
					}
					throw err;
				}
				t.next = addUsage(t.next, charge, 1, 1);
				tenants.set(tenant, t);
				plan.push({ g, made: { w, key, keyVersion } });
			} catch (err) {
				g.reject(err);
			}
		}
		if (plan.length === 0) return later;
		const batch = plan.map(p => p.made);
		if (!(await this.workloads.commitCreates(batch, tenants)))
			return [...plan.map(p => p.g), ...later].sort((a, b) => a.index - b.index);
		this.logCreated(batch);
		for (const { g, made } of plan) g.resolve(made.w);
		return later;
	}

	/** Creates one workload, trying again while other schedulers change its tenant's usage. */
	createOne({ input, user, key }: CreateRequest): Promise<Workload> {
		const tenant = user.tenant;
		return retryOnConflict(
			async () => {
				const { earlier, keyVersion } = await this.workloads.byIdempotencyKey(tenant, key);
				if (earlier) return earlier;
				const now = Date.now();
				const w = this.draftWorkload(input, user, now);
				if (await this.workloads.nameTaken(tenant, w.name)) {
					// A twin request with this key (sent to another scheduler) may have just made it.
					const twin = (await this.workloads.byIdempotencyKey(tenant, key)).earlier;
					if (twin) return twin;
					throw new ConflictError(`A workload named '${w.name}' exists already.`, {
						name: w.name
					});
				}
				await this.checkServiceName(w);
				const t = await this.workloads.tenantState(tenant);
				const charge = totalRequest(w.resources, w.replicas.length);
				checkQuota(tenant, t.quota, t.next, charge, 1);
				t.next = addUsage(t.next, charge, 1, 1);
				const made = [{ w, key, keyVersion }];
				// Another scheduler wrote the tenant's usage first: try again.
				if (!(await this.workloads.commitCreates(made, new Map([[tenant, t]]))))
					return CONFLICT;
				this.logCreated(made);
				return w;
			},
			() =>
				new ConflictError("Too many concurrent changes for this tenant; try again.", {
					tenant
				})
		);
	}

	private logCreated(made: Made[]): void {
		for (const { w } of made)
			this.logger.info(`Workload '${w.name}' (${w.id}) of tenant '${w.tenant}' created.`);
	}

	/**
	 * 409 when a service workload's Moleculer service name is taken: by another tenant's
	 * workloads (whose calls it would share; the other tenant is not named), or by one of the
	 * cluster's own services. The tenant's own workloads may share a name.
	 */
	private async checkServiceName(w: Workload): Promise<void> {
		const name = claimedName(w);
		if (!name) return;
		if (CONTROL_SERVICES.has(name))
			throw new ConflictError(
				`Moleculer service '${name}' is one of the cluster's own services; choose another service name.`,
				{ service: name }
			);
		const holder = await this.workloads.serviceClaim(name);
		if (holder !== null && holder !== w.tenant)
			throw new ConflictError(
				`Moleculer service '${name}' is already run by another tenant; choose another service name.`,
				{ service: name }
			);
	}

	/** A new workload of the user's tenant, after every other in FIFO order. */
	private draftWorkload(input: WorkloadInput, user: Principal, now: number): Workload {
		return newWorkload(input, {
			id: crypto.randomUUID(),
			tenant: user.tenant,
			createdBy: user.sub,
			seq: this.nextSeq(now),
			now
		});
	}

	/** A workload's place in the FIFO order: the clock in µs, and never the same twice. */
	private nextSeq(now: number): number {
		this.lastSeq = Math.max(this.lastSeq + 1, now * 1000);
		return this.lastSeq;
	}

	/**
	 * Changes the number of replicas, charging or refunding the quota; the replicas scaled
	 * away leave their nodes, the new ones are placed. Resolves to the workload as it is then.
	 */
	async scale(id: string, replicas: number, user: Principal | undefined): Promise<Workload> {
		await this.workloads.load(id, user);
		await this.queue.runBounded(() =>
			retryOnConflict(
				async () => {
					const doc = await this.workloads.load(id, user);
					const from = doc.value.replicas.length;
					const to = replicas;
					if (from === to) return;
					const now = Date.now();
					let gone: Placed[] = [];
					const tenant = doc.value.tenant;
					const t = await this.workloads.tenantState(tenant);
					if (to < from) {
						gone = placedReplicas(doc.value, range(to, from));
						doc.value.fence = lastFence(doc.value);
						doc.value.replicas = doc.value.replicas.slice(0, to);
					} else {
						const more = totalRequest(doc.value.resources, to - from);
						checkQuota(tenant, t.quota, t.next, more, 0);
						for (let i = from; i < to; i++)
							doc.value.replicas.push(pendingReplica(i, lastFence(doc.value), now));
					}
					addEvent(doc.value, {
						at: now,
						type: "scaled",
						message: `Scaled from ${from} to ${to} replicas.`
					});
					const change = to > from ? 1 : -1;
					const charge = totalRequest(doc.value.resources, Math.abs(to - from));
					t.next = addUsage(t.next, charge, change, 0);
					const changes = [{ doc, next: doc.value }];
					if (!(await this.workloads.commitWorkloads(changes, new Map([[tenant, t]]))))
						return CONFLICT;
					await this.recovery.releaseForgotten(gone);
					await this.agents.syncNodes(gone.map(p => p.node));
				},
				() => new ConflictError("The workload kept changing; try again.", { id })
			)
		);
		await this.rounds.placeQuietly(id);
		return (await this.workloads.load(id, user)).value;
	}

	/**
	 * Starts the failed replicas again (POST /workloads/:id/retry): each leaves its node and is
	 * placed anew, with a new fence and no restarts counted, so that an agent that keeps a
	 * failed placement (node-agent/runner/index.ts) starts the new one. 409 when no replica
	 * failed. Resolves to the workload as it is then.
	 */
	async retry(id: string, user: Principal | undefined): Promise<Workload> {
		const w = (await this.workloads.load(id, user)).value;
		if (failedReplicas(w).length === 0)
			throw new ConflictError(
				`Workload '${w.name}' has no failed replica to retry; it is ${workloadStatus(w)}.`,
				{ id, status: workloadStatus(w) }
			);
		await this.queue.run(async () => {
			const gone = await this.recovery.releaseReplicas(
				w,
				now => placedReplicas(now, failedReplicas(now)),
				`retried by ${user?.sub ?? "the system"}`,
				true
			);
			// Their nodes forget the failed placements; the round below tells the new ones.
			await this.agents.syncNodes(gone);
		});
		await this.rounds.placeQuietly(id);
		return (await this.workloads.load(id, user)).value;
	}

	/**
	 * Stops every replica, gives back their resources and the quota, and forgets the workload.
	 * Resolves to the workload as it was.
	 */
	async remove(id: string, user: Principal | undefined): Promise<Workload> {
		const { w, gone, released } = await this.removes.add({ id, user });
		// Deleted already: a release that fails is left to the audit, not answered as an error.
		await released.catch((err: Error) =>
			this.logger.warn(
				`Workload '${w.name}' deleted; its reservations go back at the next audit:`,
				err.message
			)
		);
		// Its nodes stop its replicas, and freed capacity may fit what waits: both in the
		// next round, with whatever else comes meanwhile.
		this.rounds
			.requestPlacement(undefined, gone)
			.catch((err: Error) => this.logger.warn("Placing what waits failed:", err.message));
		return w;
	}

	/** Deletes a group of workloads in one transaction, as createTogether creates. */
	async removeTogether(
		group: Gathered<RemoveRequest, Removed>[]
	): Promise<Gathered<RemoveRequest, Removed>[]> {
		const later: Gathered<RemoveRequest, Removed>[] = [];
		const seen = new Set<string>();
		const plan: Array<{ g: Gathered<RemoveRequest, Removed>; doc: Versioned<Workload> }> = [];
		for (const g of group) {
			// A second delete of one workload answers after the first: 404.
			if (seen.has(g.item.id)) {
				later.push(g);
				continue;
			}
			seen.add(g.item.id);
			try {
				plan.push({ g, doc: await this.workloads.load(g.item.id, g.item.user) });
			} catch (err) {
				g.reject(err);
			}
		}
		if (plan.length === 0) return later;
		if (!(await this.workloads.commitRemoves(plan.map(p => p.doc))))
			return [...plan.map(p => p.g), ...later].sort((a, b) => a.index - b.index);
		for (const { g, doc } of plan) g.resolve(this.forget(doc.value));
		return later;
	}

	/** Deletes one workload, trying again while it or its tenant's usage changes. */
	removeOne({ id, user }: RemoveRequest): Promise<Removed> {
		return retryOnConflict(
			async () => {
				const doc = await this.workloads.load(id, user);
				if (await this.workloads.commitRemoves([doc])) return this.forget(doc.value);
				return CONFLICT;
			},
			() => new ConflictError("The workload kept changing; try again.", { id })
		);
	}

	/** After a workload's delete: its replicas to take off their nodes, and their release. */
	private forget(w: Workload): Removed {
		const gone = placedReplicas(w, range(0, w.replicas.length));
		this.rounds.waiting.delete(w.id);
		// Not awaited in the queue: the releases of the deletes that follow join the same
		// group commit.
		return { w, gone, released: this.recovery.releaseForgotten(gone) };
	}

	/**
	 * Records a replica's state as its agent reports it. News of an older placement, or from a
	 * node the replica has left, is ignored; a workload that keeps changing misses it (the
	 * agent reports again when the state changes next).
	 */
	async recordState(s: ReplicaStatus): Promise<void> {
		// Most reports confirm what the workload says already (an agent confirms each replica
		// it adopted as it starts; a node list can bring thousands): decided on the
		// repository's copy when it is the stored version, for the cost of reading a version.
		const known = await this.workloads.cachedCopy(s.workloadId);
		if (known && !reportApplies(known, s)) return;
		await retryOnConflict(async () => {
			const doc = await this.workloads.get(s.workloadId);
			if (!doc || !reportApplies(doc.value, s)) return;
			applyReplicaStatus(doc.value, doc.value.replicas[s.replica], s);
			if ((await this.workloads.write(doc.value, doc.version)) === null) return CONFLICT;
		});
	}
}

/**
 * Whether a reported state would change the workload: the replica is still the one placed on
 * the reporting node (its fence) and the report says something new about it.
 */
export function reportApplies(w: Workload, s: ReplicaStatus): boolean {
	const r = w.replicas[s.replica];
	return Boolean(r && r.fence === s.fence && r.node === s.nodeID && !sameStatus(r, s));
}

function sameStatus(r: Replica, s: ReplicaStatus): boolean {
	return (
		r.state === s.state &&
		r.restarts === s.restarts &&
		r.reason === s.reason &&
		r.lastError === s.lastError
	);
}

/**
 * Puts a reported state on a workload's replica, with an event when the state changed to one
 * worth telling: false when the report says nothing new.
 */
export function applyReplicaStatus(w: Workload, r: Replica, s: ReplicaStatus): boolean {
	if (sameStatus(r, s)) return false;
	const changed = r.state !== s.state;
	Object.assign(r, { state: s.state, restarts: s.restarts, since: s.at });
	if (s.reason) r.reason = s.reason;
	else delete r.reason;
	if (s.lastError) r.lastError = s.lastError;
	else delete r.lastError;
	if (changed) {
		const type =
			s.state === "running"
				? "started"
				: s.state === "failed"
					? "failed"
					: s.state === "stopped"
						? "stopped"
						: null;
		if (type)
			addEvent(w, {
				at: s.at,
				type,
				replica: s.replica,
				node: s.nodeID,
				message: `Replica ${s.replica} ${s.state} on ${s.nodeID}${s.reason ? `: ${s.reason}` : ""}.`
			});
	}
	return true;
}

function range(from: number, to: number): number[] {
	return Array.from({ length: Math.max(0, to - from) }, (_, i) => from + i);
}
