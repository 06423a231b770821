/**
 * Every store read and write of the scheduler's own collections: workloads, their names and
 * Idempotency-Keys, the Moleculer service names their tenants claim, and the tenants' usage (the node allocations are the Reserver's, see
 * reservations.ts; this reads them only as stored). Other services do not read these
 * collections: they ask the scheduler's actions (usage, placedOn, allocations, states).
 *
 * Writes are checked at the version read, and answer false (or null) when another scheduler
 * wrote first: the caller decides whether to try again (retry.ts).
 */
import { NotFoundError } from "../shared/errors";
import { COLLECTIONS } from "../shared/collections";
import { canSeeTenant, type Principal } from "../shared/principal";
import type { DocWrite, Store, StoredDoc, VersionCheck, Versioned } from "../shared/store";
import type { Allocation } from "./placement";
import { addUsage, emptyUsage, type Quota, type TenantUsage } from "./quota";
import { totalRequest, type Workload } from "./workload";
import { DigestSum, type ReplicaRef } from "../shared/replica-digest";

/** Documents read between two turns of the event loop (allCached). */
const READ_BATCH = 250;

/** A turn of the event loop: what waits for it (requests, replies) runs before we go on. */
export const nextTurn = (): Promise<void> => new Promise(resolve => setImmediate(resolve));

/**
 * Reads again the documents whose listed version is not the one a cache knows, READ_BATCH at
 * a time with a turn of the event loop between batches, and hands each to `keep` (null: gone).
 * Thousands of documents parsed and checked in one go held the event loop for tens of ms.
 */
export async function readMoved<T>(
	versions: ReadonlyMap<string, number>,
	known: (id: string) => number | undefined,
	read: (id: string) => Promise<Versioned<T> | null>,
	keep: (id: string, doc: Versioned<T> | null) => void
): Promise<void> {
	const stale: string[] = [];
	for (const [id, version] of versions) if (known(id) !== version) stale.push(id);
	for (let i = 0; i < stale.length; i += READ_BATCH) {
		if (i > 0) await nextTurn();
		const batch = stale.slice(i, i + READ_BATCH);
		const docs = await Promise.all(batch.map(read));
		for (const [j, doc] of docs.entries()) keep(batch[j], doc);
	}
}

/** A tenant's quota, and its usage with the changes planned so far (`next`). */
export interface TenantState {
	quota?: Quota;
	/** The usage document's version as read (0: none yet). */
	version: number;
	next: TenantUsage;
}

/** A workload to create, with its Idempotency-Key and the version that key's record must have. */
export interface Made {
	w: Workload;
	key?: string;
	keyVersion: number;
}

/**
 * A Moleculer service name taken by one tenant's service workloads: no other tenant's may run a
 * service of that name (its calls would reach either tenant's replicas). Released with the
 * tenant's last workload of that name.
 */
export interface ServiceClaim {
	tenant: string;
	workloadIds: string[];
}

/** The Moleculer service name a workload claims, if it is a service workload that has one. */
export function claimedName(w: Workload): string | undefined {
	return w.kind === "service" ? w.service?.name : undefined;
}

/** A workload as read, and what to write in its place (null: delete it). */
export interface WorkloadChange {
	doc: Versioned<Workload>;
	next: Workload | null;
}

export class WorkloadRepository {
	/**
	 * What readCached and allCached read last, by workload id; handed out for reading only
	 * (never changed by the callers, which read a workload again to change it).
	 */
	private readonly cache = new Map<string, Versioned<Workload>>();
	/**
	 * Workloads this scheduler has just created, as written: their first placement round takes
	 * them from here instead of reading them back (a version check still guards the write).
	 */
	private readonly created = new Map<string, Versioned<Workload>>();

	/** Per node, the digest of the replicas the copies place there (nodeDigest). */
	private readonly digests = new NodeDigests();

	constructor(private readonly store: Store) {}

	/** A workload as the store has it now (null: none). */
	get(id: string): Promise<Versioned<Workload> | null> {
		return this.store.get<Workload>(COLLECTIONS.workloads, id);
	}

	/** A workload the caller may see: 404 for another tenant's, as for a missing one. */
	async load(id: string, user: Principal | undefined): Promise<Versioned<Workload>> {
		const doc = await this.get(id);
		if (!doc || (user && !canSeeTenant(user, doc.value.tenant)))
			throw new NotFoundError("Workload", id);
		return doc;
	}

	/** Every workload as stored, in id order. */
	all(): Promise<StoredDoc<Workload>[]> {
		return this.store.list<Workload>(COLLECTIONS.workloads);
	}

	/** The workloads of one tenant (undefined: of all), first created first. */
	async list(tenant: string | undefined): Promise<Workload[]> {
		return (await this.all())
			.map(d => d.value)
			.filter(w => !tenant || w.tenant === tenant)
			.sort((a, b) => a.seq - b.seq);
	}

	/**
	 * Writes a workload if it is still at `version`: the new version, or null when it moved.
	 * What is written is kept as the cached copy (see written): the caller must not change it.
	 */
	async write(w: Workload, version: number): Promise<number | null> {
		const next = await this.store.cas(COLLECTIONS.workloads, w.id, w, version);
		if (next !== null) this.written(w.id, w, next);
		return next;
	}

	/**
	 * Keeps what this scheduler wrote as the copy readCached and allCached answer, so that
	 * they read again only what others wrote: after a flood of creates the reconcile reads
	 * none of them back. Its writers hand over a workload they no longer change.
	 */
	private written(id: string, w: Workload | null, version: number): void {
		this.setCopy(id, w ? { value: w, version } : null);
	}

	/**
	 * A workload for its placement round: as this scheduler just created it (taken from the
	 * hand-off, once), else as stored. Not a promise when handed off, so that a round of new
	 * workloads reads nothing.
	 */
	forRound(id: string): Versioned<Workload> | Promise<Versioned<Workload> | null> {
		const doc = this.created.get(id);
		this.created.delete(id);
		return doc ?? this.get(id);
	}

	/** Drops a created workload's hand-off once its first round is done (or failed). */
	handedOff(id: string): void {
		this.created.delete(id);
	}

	/**
	 * Workloads by id (null: gone) as the store has them now, for reading only: a document
	 * is read again only when its version moved. A busy node holds replicas of many
	 * workloads, and every sync of it needs them all.
	 */
	async readCached(ids: string[]): Promise<Array<Workload | null>> {
		const versions = await this.store.versions(COLLECTIONS.workloads, ids);
		const stale = ids.filter((id, i) => this.cache.get(id)?.version !== versions[i]);
		const read = await Promise.all(stale.map(id => this.get(id)));
		for (const [i, doc] of read.entries()) this.keep(stale[i], doc);
		return ids.map((id, i) => (versions[i] ? (this.cache.get(id)?.value ?? null) : null));
	}

	/**
	 * Every workload as stored, in id order, for reading only (callers must not change what it
	 * answers: the copies are kept for the next read). The versions are listed first and only
	 * the documents whose version moved are read, parsed and checked again, a batch at a time
	 * with a turn of the event loop between batches: the reconcile reads every workload every
	 * few seconds, and after a flood of creates that is thousands of which few changed. Each
	 * document is as the store had it at some moment during the call (no one snapshot of all),
	 * which is what its readers need: each decides per workload (audit(), the node lists).
	 */
	async allCached(): Promise<StoredDoc<Workload>[]> {
		// Forgotten: the copies of before the listing that it does not name. One this
		// scheduler writes while the store pages through its list is new, not gone.
		const before = [...this.cache.keys()];
		const versions = await this.store.listVersions(COLLECTIONS.workloads);
		for (const id of before) if (!versions.has(id)) this.setCopy(id, null);
		await readMoved(
			versions,
			id => this.cache.get(id)?.version,
			id => this.get(id),
			(id, doc) => this.keep(id, doc)
		);
		const docs: StoredDoc<Workload>[] = [];
		for (const id of versions.keys()) {
			const doc = this.cache.get(id);
			if (doc) docs.push({ id, value: doc.value, version: doc.version });
		}
		return docs;
	}

	/**
	 * The copy readCached or allCached keeps of a workload when it is still the stored version
	 * (for reading only), else null; reads the version alone.
	 */
	async cachedCopy(id: string): Promise<Workload | null> {
		const kept = this.cache.get(id);
		if (!kept) return null;
		const [version] = await this.store.versions(COLLECTIONS.workloads, [id]);
		return version === kept.version ? kept.value : null;
	}

	/**
	 * Keeps a document as read (null: gone), unless the copy is newer: the reads run beside
	 * the queue, and a round may have written the workload after it was read and before the
	 * read is kept.
	 */
	private keep(id: string, doc: Versioned<Workload> | null): void {
		if (!doc) this.setCopy(id, null);
		else if ((this.cache.get(id)?.version ?? 0) < doc.version) this.setCopy(id, doc);
	}

	/** Every change of the copies: the node digests follow them. */
	private setCopy(id: string, doc: Versioned<Workload> | null): void {
		const old = this.cache.get(id);
		if (old) this.digests.change(old.value, -1);
		if (doc) {
			this.cache.set(id, doc);
			this.digests.change(doc.value, 1);
		} else this.cache.delete(id);
	}

	/**
	 * The digest of the replicas the copies place on a node (services/shared/replica-digest.ts),
	 * less those of the workloads in `skip`: kept as the copies change, so a check costs the
	 * nodes and the changes, not every workload.
	 */
	nodeDigest(nodeID: string, skip: Iterable<string>): string {
		const sum = this.digests.of(nodeID).copy();
		for (const id of skip) {
			const w = this.cache.get(id)?.value;
			if (w) for (const r of w.replicas) if (r.node === nodeID) sum.add(refOf(w, r), -1);
		}
		return sum.toString();
	}

	/** Forgets the cached copies of workloads that are no longer listed. */
	uncache(listed: Set<string>): void {
		for (const id of [...this.cache.keys()]) if (!listed.has(id)) this.setCopy(id, null);
	}

	/** The tenant holding a Moleculer service name, or null when none does. */
	async serviceClaim(name: string): Promise<string | null> {
		return (
			(await this.store.get<ServiceClaim>(COLLECTIONS.serviceClaims, name))?.value.tenant ??
			null
		);
	}

	/**
	 * Adds (or, `remove`, takes away) the claims of these workloads to a transaction, each claim
	 * checked at the version read: false when a claim to add is another tenant's (the caller
	 * tries again, and its check of serviceClaim answers 409 then).
	 */
	private async addClaimWrites(
		workloads: Workload[],
		remove: boolean,
		checks: VersionCheck[],
		writes: DocWrite[]
	): Promise<boolean> {
		const byName = new Map<string, Workload[]>();
		for (const w of workloads) {
			const name = claimedName(w);
			if (name) byName.set(name, [...(byName.get(name) ?? []), w]);
		}
		for (const [name, ws] of byName) {
			const doc = await this.store.get<ServiceClaim>(COLLECTIONS.serviceClaims, name);
			const ids = new Set(doc?.value.workloadIds ?? []);
			const tenant = doc?.value.tenant ?? ws[0].tenant;
			if (remove) {
				// Workloads made before claims existed hold none to release.
				if (!ws.some(w => ids.has(w.id))) continue;
				for (const w of ws) ids.delete(w.id);
			} else {
				if (ws.some(w => w.tenant !== tenant)) return false;
				for (const w of ws) ids.add(w.id);
			}
			checks.push({
				collection: COLLECTIONS.serviceClaims,
				id: name,
				version: doc?.version ?? 0
			});
			writes.push({
				collection: COLLECTIONS.serviceClaims,
				id: name,
				value: ids.size ? { tenant, workloadIds: [...ids].sort() } : null
			});
		}
		return true;
	}

	/** Whether a workload of the tenant has this name. */
	async nameTaken(tenant: string, name: string): Promise<boolean> {
		return Boolean(await this.store.get(COLLECTIONS.names, `${tenant}/${name}`));
	}

	/**
	 * The workload an earlier create with this Idempotency-Key made, if it is still there,
	 * and the version of the key's record (0: none). A key whose workload was deleted since
	 * is taken again by the next create with it (checked at that version).
	 */
	async byIdempotencyKey(
		tenant: string,
		key?: string
	): Promise<{ earlier: Workload | null; keyVersion: number }> {
		if (!key) return { earlier: null, keyVersion: 0 };
		const seen = await this.store.get<{ id: string }>(
			COLLECTIONS.idempotency,
			`${tenant}/${key}`
		);
		const existing = seen && (await this.get(seen.value.id));
		return { earlier: existing ? existing.value : null, keyVersion: seen?.version ?? 0 };
	}

	/** A tenant's quota and usage as the store has them now. */
	async tenantState(tenant: string): Promise<TenantState> {
		const [usage, doc] = await Promise.all([
			this.store.get<TenantUsage>(COLLECTIONS.usage, tenant),
			this.store.get<{ quota?: Quota }>(COLLECTIONS.tenants, tenant)
		]);
		return {
			quota: doc?.value.quota,
			version: usage?.version ?? 0,
			next: usage?.value ?? emptyUsage()
		};
	}

	/** A tenant's quota use (none yet: zero). */
	async usage(tenant: string): Promise<TenantUsage> {
		return (
			(await this.store.get<TenantUsage>(COLLECTIONS.usage, tenant))?.value ?? emptyUsage()
		);
	}

	/**
	 * Writes workloads (null: deletes one, and frees its name and its part of its service name
	 * claim) and their tenants' usage in one transaction, each checked at the version read:
	 * false when any changed meanwhile.
	 */
	async commitWorkloads(
		changes: WorkloadChange[],
		tenants: Map<string, TenantState>
	): Promise<boolean> {
		const checks: VersionCheck[] = [];
		const writes: DocWrite[] = [];
		for (const { doc, next } of changes) {
			const w = doc.value;
			checks.push({ collection: COLLECTIONS.workloads, id: w.id, version: doc.version });
			writes.push({ collection: COLLECTIONS.workloads, id: w.id, value: next });
			if (!next)
				writes.push({
					collection: COLLECTIONS.names,
					id: `${w.tenant}/${w.name}`,
					value: null
				});
		}
		const removed = changes.filter(c => !c.next).map(c => c.doc.value);
		if (!(await this.addClaimWrites(removed, true, checks, writes))) return false;
		addUsageWrites(tenants, checks, writes);
		if (!(await this.store.transact(checks, writes))) return false;
		for (const { doc, next } of changes) this.written(doc.value.id, next, doc.version + 1);
		return true;
	}

	/**
	 * Writes new workloads with their names (and idempotency keys, and their Moleculer service
	 * name claims) and their tenants' usage in one transaction: false when a name, key or claim
	 * was taken, or a usage changed, meanwhile.
	 * What it wrote is handed to the workloads' first placement round (see forRound).
	 */
	async commitCreates(made: Made[], tenants: Map<string, TenantState>): Promise<boolean> {
		const checks: VersionCheck[] = [];
		const writes: DocWrite[] = [];
		for (const { w, key, keyVersion } of made) {
			const name = `${w.tenant}/${w.name}`;
			checks.push({ collection: COLLECTIONS.names, id: name, version: 0 });
			writes.push(
				{ collection: COLLECTIONS.workloads, id: w.id, value: w },
				{ collection: COLLECTIONS.names, id: name, value: { id: w.id } }
			);
			if (key) {
				const id = `${w.tenant}/${key}`;
				checks.push({ collection: COLLECTIONS.idempotency, id, version: keyVersion });
				writes.push({ collection: COLLECTIONS.idempotency, id, value: { id: w.id } });
			}
		}
		if (
			!(await this.addClaimWrites(
				made.map(m => m.w),
				false,
				checks,
				writes
			))
		)
			return false;
		addUsageWrites(tenants, checks, writes);
		if (!(await this.store.transact(checks, writes))) return false;
		for (const { w } of made) this.created.set(w.id, { value: w, version: 1 });
		return true;
	}

	/** Deletes workloads and refunds their tenants, in one transaction (commitWorkloads). */
	async commitRemoves(docs: Versioned<Workload>[]): Promise<boolean> {
		const tenants = new Map<string, TenantState>();
		for (const { value: w } of docs) {
			const t = tenants.get(w.tenant) ?? (await this.tenantState(w.tenant));
			tenants.set(w.tenant, t);
			t.next = addUsage(t.next, totalRequest(w.resources, w.replicas.length), -1, -1);
		}
		return this.commitWorkloads(
			docs.map(doc => ({ doc, next: null })),
			tenants
		);
	}

	/** A node's allocation as the Reserver committed it (null: nothing yet). */
	async allocation(nodeID: string): Promise<Allocation | null> {
		return (await this.store.get<Allocation>(COLLECTIONS.allocations, nodeID))?.value ?? null;
	}

	/** Every node's allocation as committed. */
	allocations(): Promise<StoredDoc<Allocation>[]> {
		return this.store.list<Allocation>(COLLECTIONS.allocations);
	}
}

/** Each tenant's usage as planned, checked at the version read, into a transaction. */
function addUsageWrites(
	tenants: Map<string, TenantState>,
	checks: VersionCheck[],
	writes: DocWrite[]
): void {
	for (const [tenant, t] of tenants) {
		checks.push({ collection: COLLECTIONS.usage, id: tenant, version: t.version });
		writes.push({ collection: COLLECTIONS.usage, id: tenant, value: t.next });
	}
}

function refOf(w: Workload, r: Workload["replicas"][number]): ReplicaRef {
	return { workloadId: w.id, replica: r.index, fence: r.fence };
}

/** Per node, the running sum of its replicas' digest. */
class NodeDigests {
	private readonly sums = new Map<string, DigestSum>();

	of(nodeID: string): DigestSum {
		return this.sums.get(nodeID) ?? new DigestSum();
	}

	/** Adds (1) or takes away (-1) every placed replica of a workload. */
	change(w: Workload, sign: 1 | -1): void {
		for (const r of w.replicas) {
			if (!r.node) continue;
			let sum = this.sums.get(r.node);
			if (!sum) this.sums.set(r.node, (sum = new DigestSum()));
			sum.add(refOf(w, r), sign);
		}
	}
}
