/** What a synchronous call threw, for assertions on its class, code, type and data. */
export function thrown<E = Error>(fn: () => unknown): E {
	try {
		fn();
	} catch (err) {
		return err as E;
	}
	throw new Error("did not throw");
}
