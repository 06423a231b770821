/**
 * The baseline of the gateway benchmark: moleculer-web with its defaults and one route to an
 * action that returns a constant, no auth, no validation. BENCH_ROLE picks what this process
 * runs: "all" (gateway and action), "gateway" or "action" (the two halves over TRANSPORTER).
 * BENCH_BODY is the JSON the constant is: the suite passes the body IsA's route returns, since
 * on loopback the response size alone moves throughput by a quarter. With BENCH_TLS_CERT and
 * BENCH_TLS_KEY it serves HTTPS as moleculer-web does by itself (its `https` setting).
 */
import fs from "fs";
import { ServiceBroker } from "moleculer";
import ApiGateway from "moleculer-web";

const body = JSON.parse(process.env.BENCH_BODY || '{"items":[],"total":0}');

const role = process.env.BENCH_ROLE ?? "all";
const { BENCH_TLS_CERT: cert, BENCH_TLS_KEY: key } = process.env;
const https = cert && key ? { cert: fs.readFileSync(cert), key: fs.readFileSync(key) } : undefined;
const broker = new ServiceBroker({
	nodeID: `bare-${role}-${process.pid}`,
	transporter: process.env.TRANSPORTER || undefined,
	logger: false
});

if (role !== "gateway") broker.createService({ name: "bench", actions: { constant: () => body } });
if (role !== "action")
	broker.createService({
		name: "api",
		mixins: [ApiGateway],
		settings: {
			port: Number(process.env.PORT),
			ip: "127.0.0.1",
			https,
			routes: [{ path: "/", aliases: { "GET constant": "bench.constant" } }]
		}
	});

void broker.start().then(() => process.send?.("ready"));
process.on("SIGTERM", () => void broker.stop().then(() => process.exit(0)));
