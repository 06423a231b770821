import type { ServiceSchema } from "moleculer";

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
