import type { ServiceSchema } from "moleculer";
import AuditService from "../../services/audit.service";

/**
 * A service schema with some settings replaced, as a test hands it to `createService`
 * (a store in a temp dir, port 0…). The schema's own `this` type does not survive the
 * spread, hence the cast.
 */
export function withSettings(
	schema: ServiceSchema<any, any>,
	settings: Record<string, unknown>
): ServiceSchema {
	return { ...schema, settings: { ...schema.settings, ...settings } } as unknown as ServiceSchema;
}

/**
 * The audit service on a test's store. A gateway refuses every mutation without one (it fails
 * closed, services/gateway/audit-hooks.ts), so every suite that sends mutations through a
 * gateway starts it beside.
 */
export function auditService(store: string): ServiceSchema {
	return withSettings(AuditService, { store, auditKey: "test-audit-key" });
}
