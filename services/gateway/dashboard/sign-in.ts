/**
 * The sign-in form (#signin): a pasted token is tried against the gateway before it is kept,
 * so that a refused one is explained here rather than after the page has switched over.
 */
import { ApiError, refusal } from "./api";
import { byId } from "./dom";
import { cleanToken } from "./token";

/** What to say when the gateway did not take a token. */
function signInError(err: ApiError): string {
	if (err.status === 401) return refusal(err);
	if (err.status === 0) return "Cannot reach the gateway. Is it running?";
	return `The gateway answered: ${err.message}`;
}

/**
 * Wires the form. `tryToken` asks the gateway with the token (an ApiError when it refuses);
 * `signedIn` gets a token that worked.
 */
export function bindSignIn(
	tryToken: (token: string) => Promise<void>,
	signedIn: (token: string) => void
): void {
	const input = byId<HTMLTextAreaElement>("token");
	const error = byId("signin-error");
	const button = byId<HTMLButtonElement>("signin-btn");
	const submit = async () => {
		const token = cleanToken(input.value);
		if (!token) {
			error.textContent = "That is not a token: a JWT has three parts separated by dots.";
			return;
		}
		button.disabled = true;
		error.textContent = "";
		try {
			await tryToken(token);
		} catch (err) {
			error.textContent =
				err instanceof ApiError ? signInError(err) : `Sign-in failed: ${String(err)}`;
			return;
		} finally {
			button.disabled = false;
		}
		signedIn(token);
	};
	byId("signin-form").addEventListener("submit", e => {
		e.preventDefault();
		void submit();
	});
	// Enter signs in (a token is one line); Shift+Enter is left to the textarea.
	input.addEventListener("keydown", e => {
		if (e.key === "Enter" && !e.shiftKey) {
			e.preventDefault();
			void submit();
		}
	});
}

/** The form instead of the dashboard, empty, saying `message` (why the token went). */
export function showSignIn(message: string): void {
	byId("main").hidden = true;
	byId("tiles").hidden = true;
	byId("signout").hidden = true;
	byId("signin").hidden = false;
	byId("signin-error").textContent = message;
	const input = byId<HTMLTextAreaElement>("token");
	input.value = "";
	input.focus();
}

/** The dashboard instead of the form. */
export function showDashboard(): void {
	byId("signin").hidden = true;
	byId("main").hidden = false;
	byId("signout").hidden = false;
}
