/** The registry masks secrets with the shared rules (services/shared/secrets.ts), as the audit log does. */
export * from "../shared/secrets";
