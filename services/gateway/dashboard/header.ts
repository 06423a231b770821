/** The header's live indicator and signed-in user, and the banner under it. */
import type { Principal } from "../../shared/principal";
import { byId, el } from "./dom";

/** app.css colours #conn by this state. */
export type ConnState = "connecting" | "live" | "reconnecting" | "offline";

export function setConn(state: ConnState, text: string = state): void {
	byId("conn").dataset.state = state;
	byId("conn-text").textContent = text;
}

/** A message across the page: a warning (`warn`) or an error (plain). */
export function showBanner(message: string, kind?: "warn"): void {
	const b = byId("banner");
	b.textContent = message;
	b.className = kind ? `banner ${kind}` : "banner";
	b.hidden = false;
}

export function hideBanner(): void {
	byId("banner").hidden = true;
}

/** "alice · ops · admin", with the token's expiry as its tooltip; empty when signed out. */
export function renderWho(who: Partial<Principal> | null): void {
	const e = byId("who");
	e.replaceChildren();
	e.title = "";
	if (!who?.sub) return;
	e.append(
		el("b", null, who.sub),
		document.createTextNode(` · ${who.tenant ?? ""} · ${(who.roles ?? []).join(", ")}`)
	);
	if (who.exp) e.title = `Token valid until ${new Date(who.exp * 1000).toLocaleString()}`;
}
