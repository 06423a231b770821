/**
 * The cluster key signs every request between nodes (services/shared/signed-principal.ts).
 * ISA_CLUSTER_KEY sets it: the same on every control node, gateway and REPL of a cluster, and
 * given to no agent that runs tenants' service workloads. Without it, a node that runs control
 * services makes one on first start in the data directory as `cluster-key`, owner-only, the way
 * the JWT secret is made (services/gateway/secret.ts): nodes that share that directory (one host)
 * share the key; nodes apart from each other then refuse each other's calls until they are
 * given one ISA_CLUSTER_KEY.
 */
import crypto from "crypto";
import { ALL_SERVICES, type IsaEnv } from "./env";
import { loadOrCreateSecretFile, type Warn } from "./private-files";

export const CLUSTER_KEY_FILE = "cluster-key";

/**
 * The key this node signs and checks with; null on a node without a transporter (nothing
 * crosses a bus) and on an agent-only node not given one (agents call no control service).
 */
export function clusterKey(
	env: Pick<IsaEnv, "clusterKey" | "transporter" | "services" | "dataDir">,
	warn?: Warn
): Buffer | null {
	if (!env.transporter) return null;
	if (env.clusterKey) return Buffer.from(env.clusterKey);
	const services = env.services ?? ALL_SERVICES;
	if (services.every(name => name === "agent")) return null;
	const { value } = loadOrCreateSecretFile(
		env.dataDir,
		CLUSTER_KEY_FILE,
		() => crypto.randomBytes(32).toString("base64url") + "\n",
		warn
	);
	return Buffer.from(value.toString("utf8").trim());
}
