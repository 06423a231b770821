import {
	Api,
	ApiError,
	Fetch,
	refusal,
	RequestOptions
} from "../../../../services/gateway/dashboard/api";

/** A fetch that records its calls and answers `status` with `body` (text, or JSON). */
function fakeFetch(status: number, body: unknown) {
	const calls: { input: string; init: RequestOptions }[] = [];
	const fetch: Fetch = async (input, init) => {
		calls.push({ input, init });
		const text = typeof body === "string" ? body : JSON.stringify(body);
		return new Response(text, { status });
	};
	return { fetch, calls };
}

async function failure(promise: Promise<unknown>): Promise<ApiError> {
	try {
		await promise;
	} catch (err) {
		expect(err).toBeInstanceOf(ApiError);
		return err as ApiError;
	}
	throw new Error("expected a rejection");
}

describe("dashboard Api", () => {
	it("sends the current token and answers the JSON body", async () => {
		const { fetch, calls } = fakeFetch(200, { items: [], total: 0 });
		let token = "t1";
		const api = new Api(() => token, fetch);
		await expect(api.nodes(1)).resolves.toEqual({ items: [], total: 0 });
		token = "t2";
		await api.workloads();
		expect(calls.map(c => c.input)).toEqual([
			"api/v1/nodes?limit=1",
			"api/v1/workloads?limit=1000"
		]);
		expect(calls[1].init.headers).toMatchObject({ Authorization: "Bearer t2" });
		expect(calls[1].init.cache).toBe("no-store");
	});

	it("asks the monitor for a window of series and answers their items", async () => {
		const items = [{ metric: "cluster.cpu.used", labels: {}, points: [[0, 1]] }];
		const { fetch, calls } = fakeFetch(200, { items, total: 1, since: 5, step: 10_000 });
		const api = new Api(() => "t", fetch);
		await expect(api.stats({ metric: "node.gpu.utilization", step: "1m" }, 5)).resolves.toEqual(
			items
		);
		expect(calls[0].input).toBe("api/v1/stats?since=5&metric=node.gpu.utilization&step=1m");
	});

	it("fails with moleculer-web's error body, and says why a token was refused", async () => {
		const body = {
			name: "UnAuthorizedError",
			message: "Unauthorized",
			code: 401,
			type: "INVALID_TOKEN",
			data: { reason: "bad signature" }
		};
		const err = await failure(new Api(() => "t", fakeFetch(401, body).fetch).nodes());
		expect(err).toMatchObject({ status: 401, body, message: "Unauthorized" });
		expect(refusal(err)).toBe("The token was refused: bad signature");
		expect(refusal(new ApiError(401, null))).toBe("The token was refused.");
	});

	it("fails with the status when the answer is no JSON, and with 0 when nothing answers", async () => {
		const proxy = await failure(new Api(() => "t", fakeFetch(502, "<html>").fetch).alerts());
		expect(proxy).toMatchObject({ status: 502, body: null, message: "HTTP 502" });
		const down = await failure(
			new Api(
				() => "t",
				async () => {
					throw new TypeError("fetch failed");
				}
			).services()
		);
		expect(down).toMatchObject({ status: 0, message: "The gateway cannot be reached." });
	});
});
