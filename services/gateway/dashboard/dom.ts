/** Small DOM helpers shared by the render modules. */

/** The element of index.html with this id; a missing one is a bug in the page, not a state. */
export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
	const e = document.getElementById(id);
	if (!e) throw new Error(`index.html has no #${id}.`);
	return e as T;
}

export function el<K extends keyof HTMLElementTagNameMap>(
	tag: K,
	cls?: string | null,
	text?: string
): HTMLElementTagNameMap[K] {
	const e = document.createElement(tag);
	if (cls) e.className = cls;
	if (text !== undefined) e.textContent = text;
	return e;
}

/** The coloured status dot: app.css colours `.dot.<status>`. */
export function dot(status: string): HTMLSpanElement {
	const d = el("span", `dot ${status}`);
	d.title = status;
	return d;
}

/** Writes only what changed: 200 cards every 2 s should not touch the DOM needlessly. */
export function setText(e: HTMLElement, text: string): void {
	if (e.textContent !== text) e.textContent = text;
}

export function setStyle(
	e: HTMLElement,
	prop: "transform" | "opacity" | "left",
	value: string
): void {
	if (e.style[prop] !== value) e.style[prop] = value;
}
