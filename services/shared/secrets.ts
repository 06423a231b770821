/**
 * Resource credentials are stored as given (the health checks need them) but never leave the
 * registry in clear: API answers, logs and health errors go through these functions first.
 *
 * What counts as a secret: the password of a URL's `user:password@`, the value of a query
 * parameter or config key whose name matches SECRET_KEY, and anything under such a key. A URL
 * user name alone (`postgres://postgres@db`) is kept: it is usually an account name that an
 * operator needs to see, not a secret.
 */

/** Names of keys and query parameters whose values are secrets. */
export const SECRET_KEY = /pass(word)?|secret|token|key|credential/i;

export const MASK = "***";

/** `scheme://user:password@` at the start of a URL; the authority ends at its last `@`. */
const URL_USERINFO = /^([a-z][a-z\d+.-]*:\/\/)([^/?#]*)@/i;
/** The same inside free text: an error message that quotes a URL. */
const TEXT_USERINFO = /\b([a-z][a-z\d+.-]*:\/\/)([^\s/?#@:]*):([^\s/?#@]*)@/gi;
/** `name=value` pairs of a query string (or of a fragment, which some clients use alike). */
const QUERY_PARAM = /([?&#])([^=&#\s]*)=([^&#\s]*)/g;

function maskUserinfo(userinfo: string): string {
	const colon = userinfo.indexOf(":");
	return colon < 0 ? userinfo : `${userinfo.slice(0, colon)}:${MASK}`;
}

function maskQuery(text: string): string {
	return text.replace(QUERY_PARAM, (whole, sep: string, name: string) =>
		SECRET_KEY.test(decodeSafe(name)) ? `${sep}${name}=${MASK}` : whole
	);
}

function decodeSafe(text: string): string {
	try {
		return decodeURIComponent(text);
	} catch {
		return text;
	}
}

/**
 * `postgres://app:s3cret@db:5432/x?sslpassword=p` → `postgres://app:***@db:5432/x?sslpassword=***`.
 * Anything else of the URL is kept byte for byte, so the result still reads as what was entered;
 * a string that is not a URL comes back unchanged except for secret `name=value` pairs.
 */
export function redactUrl(url: string): string {
	const masked = url.replace(
		URL_USERINFO,
		(_whole, scheme: string, userinfo: string) => `${scheme}${maskUserinfo(userinfo)}@`
	);
	const query = masked.search(/[?#]/);
	return query < 0 ? masked : masked.slice(0, query) + maskQuery(masked.slice(query));
}

/**
 * A deep copy of `value` with every value under a secret key replaced by "***" (whatever its
 * type: a `credentials` object goes as a whole) and every other string passed through
 * `redactUrl`, since config often carries URLs (`url`, `replicas: [...]`).
 */
export function redactConfig<T>(value: T): T {
	if (typeof value === "string") return redactUrl(value) as T;
	if (Array.isArray(value)) return value.map(item => redactConfig(item)) as T;
	if (value === null || typeof value !== "object") return value;
	const out: Record<string, unknown> = {};
	for (const [key, item] of Object.entries(value)) {
		out[key] = SECRET_KEY.test(key) ? MASK : redactConfig(item);
	}
	return out as T;
}

/**
 * The secret values an endpoint and its config carry, for `redactText`: the URL's password, the
 * values of secret query parameters and every string under a secret config key, both as written
 * and decoded, since a library may quote either.
 */
export function collectSecrets(endpoint: string, config: Record<string, unknown> = {}): string[] {
	const found = new Set<string>();
	const add = (raw: string) => {
		for (const s of [raw, decodeSafe(raw)]) if (s) found.add(s);
	};
	const userinfo = URL_USERINFO.exec(endpoint)?.[2];
	const colon = userinfo?.indexOf(":") ?? -1;
	if (userinfo !== undefined && colon >= 0) add(userinfo.slice(colon + 1));
	const query = endpoint.search(/[?#]/);
	if (query >= 0) {
		for (const [, , name, val] of endpoint.slice(query).matchAll(QUERY_PARAM)) {
			if (SECRET_KEY.test(decodeSafe(name))) add(val);
		}
	}
	const walk = (value: unknown, secret: boolean) => {
		if (typeof value === "string") {
			if (secret) add(value);
			else for (const s of collectSecrets(value)) found.add(s);
		} else if (Array.isArray(value)) {
			for (const item of value) walk(item, secret);
		} else if (value !== null && typeof value === "object") {
			for (const [key, item] of Object.entries(value))
				walk(item, secret || SECRET_KEY.test(key));
		}
	};
	walk(config, false);
	return [...found];
}

/**
 * `text` with each of `secrets` (longest first, so that a secret containing another is masked
 * whole) and the password of any URL in it replaced by "***": for error messages of drivers,
 * which sometimes echo the connection string they were given.
 */
export function redactText(text: string, secrets: readonly string[] = []): string {
	let out = text;
	for (const secret of [...secrets].filter(Boolean).sort((a, b) => b.length - a.length)) {
		out = out.split(secret).join(MASK);
	}
	return maskQuery(
		out.replace(
			TEXT_USERINFO,
			(_whole, scheme: string, user: string) => `${scheme}${user}:${MASK}@`
		)
	);
}
