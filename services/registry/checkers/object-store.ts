import { CheckTarget, nonEmpty } from "./base";
import { HttpChecker } from "./http";

/** S3/MinIO: MinIO's liveness endpoint, or config.healthPath for other S3 servers. */
export class ObjectStoreChecker extends HttpChecker {
	protected readonly healthyBelow = 300;

	protected path(target: CheckTarget): string {
		return nonEmpty(target.config.healthPath) ?? "/minio/health/live";
	}
}
