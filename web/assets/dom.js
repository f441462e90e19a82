// Tiny DOM helpers. Content from the server is only ever put into the page as text
// (textContent / text nodes), never parsed as HTML.

/**
 * Creates an element: h('button.big#ok', {onclick, type: 'button', dataset: {v: 1}}, 'text', child…)
 * Attributes starting with "on" become event listeners; `class` may be a string.
 */
export function h(spec, attrs, ...children) {
  const m = /^([a-z0-9-]+)?((?:[.#][\w-]+)*)$/i.exec(spec);
  const tag = (m && m[1]) || 'div';
  const el = tag === 'svg' || tag === 'path' ? document.createElementNS('http://www.w3.org/2000/svg', tag) : document.createElement(tag);
  if (m && m[2]) {
    for (const part of m[2].match(/[.#][\w-]+/g)) {
      if (part[0] === '.') el.classList.add(part.slice(1));
      else el.id = part.slice(1);
    }
  }
  if (attrs && (typeof attrs !== 'object' || attrs instanceof Node || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = null;
  }
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'class') el.className = v;
    else if (k === 'value') el.value = v;
    else if (k === 'checked' || k === 'disabled' || k === 'selected' || k === 'hidden') el[k] = !!v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

/** Appends children: strings become text nodes, arrays are flattened, null is skipped. */
export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Replaces all children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

/** Shows or hides an element (the `hidden` attribute). */
export function show(el, on = true) {
  el.hidden = !on;
}

/**
 * Renders a search highlight (`<b>word</b>` around matches, the rest HTML-escaped by the
 * server) as text nodes and <mark> elements — the string is never given to the HTML parser.
 */
export function highlight(s) {
  const out = [];
  const unescape = (t) =>
    t.replace(/&(lt|gt|amp|quot|#39|#x27|apos);/g, (_, e) => ({ lt: '<', gt: '>', amp: '&', quot: '"', '#39': "'", '#x27': "'", apos: "'" })[e]);
  const parts = String(s || '').split(/(<b>|<\/b>)/);
  let bold = false;
  for (const p of parts) {
    if (p === '<b>') bold = true;
    else if (p === '</b>') bold = false;
    else if (p) out.push(bold ? h('mark', unescape(p)) : document.createTextNode(unescape(p)));
  }
  return out;
}

// Times are shown in the branch's zone with Chinese formats: see locale.js.
export { when } from './locale.js';
