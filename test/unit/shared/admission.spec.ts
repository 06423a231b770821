import { Errors } from "moleculer";
import { OverloadedError } from "../../../services/shared/errors";
import { Admission, RETRY_AFTER_S } from "../../../services/shared/admission";

describe("Admission", () => {
	const overloaded = (fn: () => unknown, queue: string, limit: number) => {
		let err: unknown;
		try {
			fn();
		} catch (e) {
			err = e;
		}
		expect(err).toBeInstanceOf(OverloadedError);
		expect(err).toBeInstanceOf(Errors.MoleculerRetryableError);
		expect(err).toMatchObject({
			code: 503,
			type: "OVERLOADED",
			data: { queue, limit, retryAfter: RETRY_AFTER_S }
		});
	};

	it("refuses a tenant past its own bound while another tenant is still let in", () => {
		const a = new Admission("the creates", { total: 10, perTenant: 2 });
		a.enter("flood");
		a.enter("flood");
		overloaded(() => a.enter("flood"), "the creates of tenant 'flood'", 2);
		expect(() => a.enter("flood")).toThrow(
			"Too busy: the creates of tenant 'flood' (at most 2 at once); nothing was done. Try again in 1 s."
		);
		expect(() => a.enter("quiet")).not.toThrow();
		expect(a.inside("flood")).toBe(2);
		expect(a.inside()).toBe(3);
	});

	it("refuses everyone past the total, and lets in again once requests leave", () => {
		const a = new Admission("the creates", { total: 3, perTenant: 2 });
		const leaves = [a.enter("x"), a.enter("x"), a.enter("y")];
		overloaded(() => a.enter("z"), "the creates", 3);
		leaves[0]();
		leaves[0]();
		expect(a.inside("x")).toBe(1);
		expect(a.inside()).toBe(2);
		expect(() => a.enter("z")).not.toThrow();
		for (const leave of leaves) leave();
		expect(a.inside("x")).toBe(0);
		expect(a.inside("y")).toBe(0);
	});
});
