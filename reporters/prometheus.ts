/**
 * Moleculer's Prometheus reporter always opens a listener of its own, on 0.0.0.0:3030 unless told
 * otherwise; several nodes on one machine then collide, and it is reachable off the machine.
 * This subclass opens that listener only when a port is configured (METRICS_PORT, bound to HOST)
 * and otherwise only renders the text, which the gateway serves on /metrics.
 */
import { MetricReporters, MetricRegistry } from "moleculer";

const PrometheusBase = MetricReporters.Prometheus as unknown as {
	new (opts: Record<string, unknown>): PrometheusLike;
};
const BaseReporter = MetricReporters.Base as unknown as {
	prototype: { init(r: MetricRegistry): void };
};

interface PrometheusLike {
	opts: { port?: number | null; host?: string };
	init(registry: MetricRegistry): void;
	stop(): Promise<void>;
	generatePrometheusResponse(): string;
}

export class IsaPrometheusReporter extends PrometheusBase {
	constructor(opts: { port: number | null; host: string }) {
		super({ port: opts.port ?? undefined, host: opts.host });
		this.opts.port = opts.port;
	}

	init(registry: MetricRegistry): void {
		if (this.opts.port != null) return super.init(registry);
		BaseReporter.prototype.init.call(this, registry);
	}

	async stop(): Promise<void> {
		if (this.opts.port != null) await super.stop();
	}
}
