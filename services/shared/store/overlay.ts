/**
 * A store seen through a wrapper: the wrapper's own methods where it has them, the inner
 * store's (bound to it) for everything else, so that a wrapper names only what it changes and
 * a method added to the Store interface passes through every wrapper untouched.
 */
import type { Store } from "./store";

export function overlay(store: Store, overrides: Partial<Store>): Store {
	return new Proxy(store, {
		get(target, prop, receiver) {
			if (Object.prototype.hasOwnProperty.call(overrides, prop))
				return overrides[prop as keyof Store];
			const value = Reflect.get(target, prop, receiver);
			return typeof value === "function" ? value.bind(target) : value;
		}
	});
}
