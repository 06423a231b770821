/**
 * Jest's setup for every spec: the gateways that specs start, in-process or as processes
 * (startNode hands its environment on), get rate limits far above what any spec sends, and do
 * not hold back a tenant for a busy event loop. Specs send requests as fast as one process can,
 * as one tenant and from 127.0.0.1, past the default 50 reads/s and 20 failed tokens a minute,
 * on a machine whose two cores run other specs too, and test something else. The limits and
 * the holding back are tested with their own values (test/integration/rate-limits.spec.ts and
 * the noisy-neighbour benchmark set them explicitly, and the unit tests of
 * services/gateway/rate-limits.ts, overload.ts and env.ts).
 */
for (const name of ["ISA_RATE_READS", "ISA_RATE_WRITES", "ISA_RATE_AUTH_FAILURES"])
	process.env[name] ??= "1000000";
process.env.ISA_SHED_BUSY ??= "0";
