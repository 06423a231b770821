/**
 * The bounds of every number a client sends, in one place (the README's "Limits" table lists
 * them). A number out of bounds is refused with 422 and the field's allowed range, so that no
 * request can store a quantity that nothing can satisfy (`gpuMemory: 1e30`), that breaks the
 * arithmetic around it (`quota: 1e308` overflows to Infinity once summed), or that asks for
 * nothing (`cpu: 0`). The maxima are far above any machine or cluster of today, and low
 * enough that sums of them stay exact in a double.
 */

/** A closed range, or one open at 0 (`positive`: the value must be above 0). */
export interface Bounds {
	/** Smallest accepted value (default 0). */
	min?: number;
	/** The value must be above 0, not merely 0 or more. */
	positive?: boolean;
	/** Largest accepted value. */
	max: number;
}

const GiB = 1024 ** 3;
const TiB = 1024 ** 4;
const PiB = 1024 ** 5;

/** What one workload replica, or one registered service, may ask for. */
export const RESOURCE_LIMITS = {
	/** Cores (fractions allowed). */
	cpu: { positive: true, max: 1024 },
	/** Bytes. */
	memory: { positive: true, max: 64 * TiB },
	/** Whole GPUs. */
	gpu: { max: 64 },
	/** Bytes on one shared GPU. */
	gpuMemory: { max: 1 * TiB },
	/** Bytes of storage a registered service needs. */
	storage: { max: 1 * PiB }
} satisfies Record<string, Bounds>;

/** Replicas of one workload. */
export const MAX_REPLICAS = 1000;

/** A tenant's quota, summed over all its workloads. */
export const QUOTA_LIMITS = {
	cpu: { max: 1024 * 1024 },
	memory: { max: 4 * PiB },
	gpu: { max: 65_536 },
	workloads: { max: 1_000_000 }
} satisfies Record<string, Bounds>;

/** Health checks of resources and services (ms). */
export const HEALTH_CHECK_LIMITS = {
	/** Longer than a day and nobody would call it a health check; also below setTimeout's 2^31. */
	interval: { min: 500, max: 24 * 3600 * 1000 },
	timeout: { min: 1, max: 5 * 60 * 1000 }
} satisfies Record<string, Bounds>;

/** |threshold| of an alert rule: beyond any byte count or rate a metric reports. */
export const MAX_ALERT_THRESHOLD = 1e15;

/** ms a `services/call` may wait for its callee. */
export const MAX_CALL_TIMEOUT = 120_000;

/** A size for limits' messages. */
export { GiB, TiB, PiB };
