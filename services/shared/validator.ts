/**
 * The broker's parameter validator: Moleculer's fastest-validator with messages that read
 * well. fastest-validator's own enum message puts the allowed values where the value belongs
 * ("The 'kind' field value 'service, process' does not match any of the allowed values."), so
 * a client sent `kind: "vm"` was told its value was the list; here it gets the list and its
 * value.
 */
import { Validators } from "moleculer";

/** fastest-validator message templates that replace its defaults ({field}, {expected}, {actual}). */
export const VALIDATION_MESSAGES = {
	enumValue: "The '{field}' field must be one of: {expected}; got '{actual}'."
};

/** The validator every broker of the cluster uses (moleculer.config.ts). */
export function createValidator(): Validators.Fastest {
	// Moleculer's typings omit the options its constructor takes (and hands to fastest-validator).
	const Fastest = Validators.Fastest as unknown as new (opts: object) => Validators.Fastest;
	return new Fastest({ messages: VALIDATION_MESSAGES });
}
