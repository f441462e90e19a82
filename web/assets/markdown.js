// A small Markdown renderer that builds DOM nodes. Text is only ever inserted with
// text nodes, so `<script>` or `<img onerror=…>` in an article shows up as literal text.
// Supported: # headings, paragraphs, - / * / 1. lists, > quotes, ``` code, **bold**,
// *italic*, `code`, [text](url) (shown as text with the address, never as a live link).

import { h } from './dom.js';

function inline(text) {
  const out = [];
  const re = /(\*\*([^*]+)\*\*|__([^_]+)__|`([^`]+)`|\*([^*\s][^*]*)\*|\[([^\]]+)\]\(([^)\s]+)\))/g;
  let last = 0;
  let m;
  while ((m = re.exec(text))) {
    if (m.index > last) out.push(text.slice(last, m.index));
    if (m[2] || m[3]) out.push(h('strong', m[2] || m[3]));
    else if (m[4]) out.push(h('code', m[4]));
    else if (m[5]) out.push(h('em', m[5]));
    else if (m[6]) out.push(h('span.md-link', m[6], h('span.md-url', ` (${m[7]})`)));
    last = re.lastIndex;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}

/** Markdown text → a DocumentFragment of safe nodes. */
export function renderMarkdown(src) {
  const frag = document.createDocumentFragment();
  const lines = String(src || '').replace(/\r\n?/g, '\n').split('\n');
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (/^\s*$/.test(line)) {
      i++;
      continue;
    }
    if (/^```/.test(line)) {
      const code = [];
      i++;
      while (i < lines.length && !/^```/.test(lines[i])) code.push(lines[i++]);
      i++;
      frag.appendChild(h('pre', h('code', code.join('\n'))));
      continue;
    }
    const head = /^(#{1,6})\s+(.*)$/.exec(line);
    if (head) {
      const level = Math.min(head[1].length + 1, 6);
      frag.appendChild(h(`h${level}`, inline(head[2])));
      i++;
      continue;
    }
    if (/^\s*([-*+]|\d+[.、)])\s+/.test(line)) {
      const ordered = /^\s*\d/.test(line);
      const list = h(ordered ? 'ol' : 'ul');
      while (i < lines.length && /^\s*([-*+]|\d+[.、)])\s+/.test(lines[i])) {
        list.appendChild(h('li', inline(lines[i].replace(/^\s*([-*+]|\d+[.、)])\s+/, ''))));
        i++;
      }
      frag.appendChild(list);
      continue;
    }
    if (/^>\s?/.test(line)) {
      const q = [];
      while (i < lines.length && /^>\s?/.test(lines[i])) q.push(lines[i++].replace(/^>\s?/, ''));
      frag.appendChild(h('blockquote', inline(q.join(' '))));
      continue;
    }
    const para = [];
    while (i < lines.length && !/^\s*$/.test(lines[i]) && !/^(#{1,6}\s|```|>|\s*([-*+]|\d+[.、)])\s+)/.test(lines[i])) {
      para.push(lines[i++].trim());
    }
    if (para.length === 0) {
      // A line that looks like a block start but did not match one: keep it as text.
      para.push(lines[i++]);
    }
    frag.appendChild(h('p', inline(para.join('\n'))));
  }
  return frag;
}
