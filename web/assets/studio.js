// The content studio: articles and their versions — write (autosaved on this device),
// submit, review with a diff, approve / reject, publish, roll back, retire — plus the
// synonym dictionary, hit-testing, the golden questions, and the questions customers asked
// that nobody answered (待补充: a new article from them, or their wordings added to one). Markdown is previewed as DOM
// built from text (markdown.js), never as HTML.

import { h, $, $$, replace, show, highlight, when } from './dom.js';
import { renderMarkdown } from './markdown.js';
import { isDate, fromWall, longWhen, TIME_ZONE } from './locale.js';
import { get, post, put, auth, setupLogin, needLogin, logout, toast } from './api.js';

const STATE = {
  draft: '草稿', in_review: '待审核', scheduled: '待发布', published: '已发布', superseded: '已被替换', retired: '已下线',
};
const DRAFT_PREFIX = 'concierge.studio.draft.';

let articles = [];
let current = null; // {id, head, live, history} from GET /articles/{id}; null: a new article
let baseVersion = null; // what the editor started from (conflict detection)
let synRevision = null;

const f = {
  id: $('#ed-id'), title: $('#ed-title'), audience: $('#ed-audience'), questions: $('#ed-questions'),
  summary: $('#ed-summary'), body: $('#ed-body'), tags: $('#ed-tags'), branches: $('#ed-branches'),
  from: $('#ed-from'), to: $('#ed-to'),
};

function status(text, kind = '') {
  const s = $('#ed-status');
  s.textContent = text;
  s.className = `ed-status ${kind}`;
}

// ---- list -----------------------------------------------------------------------------------

async function loadList() {
  const state = $('#filter-state').value;
  try {
    const data = await get(`/v1/knowledge/articles${state ? `?state=${state}` : ''}`);
    articles = data.articles || [];
    renderList();
  } catch (e) {
    toast(e.message, 'bad');
  }
}

function renderList() {
  const q = $('#filter-text').value.trim().toLowerCase();
  const list = articles
    .filter((a) => !q || a.title.toLowerCase().includes(q) || a.id.includes(q))
    .sort((a, b) => b.updated_at - a.updated_at);
  replace($('#articles'), list.length ? list.map((a) => h('button.article-row', {
    type: 'button',
    class: `article-row${current && current.id === a.id ? ' selected' : ''}`,
    onclick: () => openArticle(a.id),
  },
  h('div.row-title', a.title),
  h('div.row-meta', h('span', a.id), h(`span.state.s-${a.head_state}`, STATE[a.head_state] || a.head_state), h('span', `v${a.head_version}`), a.live_version ? h('span.live-tag', `线上 v${a.live_version}`) : null, a.audience === 'staff' ? h('span', '内部') : null)))
    : h('p.empty', '没有文章'));
}

// ---- editor ---------------------------------------------------------------------------------

function formDraft() {
  const lines = (s) => s.split('\n').map((x) => x.trim()).filter(Boolean);
  const list = (s) => s.split(/[,，\n]/).map((x) => x.trim()).filter(Boolean);
  return {
    title: f.title.value.trim(),
    body: f.body.value,
    summary: f.summary.value.trim() || null,
    questions: lines(f.questions.value),
    tags: list(f.tags.value),
    audience: f.audience.value,
    branches: list(f.branches.value),
    effective_from: f.from.value.trim() || null,
    effective_to: f.to.value.trim() || null,
  };
}

function fillForm(d, id) {
  f.id.value = id || '';
  f.title.value = d.title || '';
  f.audience.value = d.audience || 'customer';
  f.questions.value = (d.questions || []).join('\n');
  f.summary.value = d.summary || '';
  f.body.value = d.body || '';
  f.tags.value = (d.tags || []).join('，');
  f.branches.value = (d.branches || []).join(', ');
  f.from.value = d.effective_from || '';
  f.to.value = d.effective_to || '';
  preview();
}

function preview() {
  replace($('#ed-preview'), h('h2', f.title.value || '（标题）'), renderMarkdown(f.body.value));
}

const draftKey = () => DRAFT_PREFIX + (current ? current.id : 'new');

function autosave() {
  localStorage.setItem(draftKey(), JSON.stringify({ id: f.id.value, draft: formDraft(), base: baseVersion, at: Date.now() }));
}

function restoreDraft(serverDraft) {
  const box = $('#restored');
  show(box, false);
  let saved = null;
  try {
    saved = JSON.parse(localStorage.getItem(draftKey()) || 'null');
  } catch (_) { /* ignore */ }
  if (!saved) return;
  const same = serverDraft && JSON.stringify(saved.draft) === JSON.stringify(normalise(serverDraft));
  if (same) {
    localStorage.removeItem(draftKey());
    return;
  }
  fillForm(saved.draft, saved.id);
  replace(box, `已恢复本机上 ${when(saved.at)} 未保存的修改。`,
    h('button.btn.secondary', {
      type: 'button',
      onclick: () => {
        localStorage.removeItem(draftKey());
        if (current) fillForm(current.head, current.id);
        else fillForm({}, '');
        show(box, false);
      },
    }, '放弃这些修改'));
  show(box, true);
}

function normalise(v) {
  return {
    title: v.title || '', body: v.body || '', summary: v.summary || null, questions: v.questions || [], tags: v.tags || [],
    audience: v.audience || 'customer', branches: v.branches || [], effective_from: v.effective_from || null, effective_to: v.effective_to || null,
  };
}

function newArticle() {
  current = null;
  baseVersion = null;
  f.id.disabled = false;
  fillForm({}, '');
  $('#ed-title-bar').textContent = '新文章';
  status('');
  restoreDraft(null);
  tab('pane-edit');
  renderList();
  f.id.focus();
}

async function openArticle(id) {
  try {
    current = await get(`/v1/knowledge/articles/${encodeURIComponent(id)}`);
  } catch (e) {
    toast(e.message, 'bad');
    return;
  }
  baseVersion = current.head.version;
  f.id.disabled = true;
  fillForm(current.head, current.id);
  restoreDraft(current.head);
  $('#ed-title-bar').textContent = `${current.head.title} · v${current.head.version} ${STATE[current.head.state] || current.head.state}`;
  status(current.live ? `线上版本 v${current.live.version}` : '尚未发布');
  renderList();
  const pane = $$('.pane').find((p) => !p.hidden);
  if (pane && pane.id === 'pane-review') renderReview();
  if (pane && pane.id === 'pane-history') renderHistory();
}

async function save() {
  const draft = formDraft();
  const id = current ? current.id : f.id.value.trim();
  if (!id || !/^[a-z0-9-]+$/.test(id)) {
    status('编号只能用小写字母、数字和连字符。', 'bad');
    return null;
  }
  if (!draft.title) {
    status('请填写标题。', 'bad');
    return null;
  }
  for (const [label, value] of [['生效日期', draft.effective_from], ['失效日期', draft.effective_to]]) {
    if (value && !isDate(value)) {
      status(`${label}请按“年-月-日”填写，例如 2026-12-31。`, 'bad');
      return null;
    }
  }
  try {
    const saved = current
      ? await put(`/v1/knowledge/articles/${encodeURIComponent(id)}`, { base_version: baseVersion, ...draft })
      : await post('/v1/knowledge/articles', { id, ...draft });
    localStorage.removeItem(draftKey());
    await openArticle(saved.id);
    status(saved.created ? `已保存（第 ${saved.version} 版，草稿）` : '已保存（内容没有变化）', 'ok');
    loadList();
    return saved;
  } catch (e) {
    if (e.code === 'version_conflict') {
      autosave();
      status(`保存冲突：${e.message}`, 'bad');
      replace($('#restored'), '有人在您之后保存了新版本。您的修改仍在编辑框里（也已存在本机）。',
        h('button.btn.secondary', {
          type: 'button',
          onclick: async () => {
            const latest = await get(`/v1/knowledge/articles/${encodeURIComponent(id)}`);
            baseVersion = latest.head.version;
            current = latest;
            show($('#restored'), false);
            status(`已改为基于 v${baseVersion}，确认无误后再保存。`);
          },
        }, '以最新版本为基础继续'));
      show($('#restored'), true);
    } else {
      status(`保存失败：${e.message}`, 'bad');
    }
    return null;
  }
}

async function submitForReview() {
  if (!current) {
    const saved = await save();
    if (!saved) return;
  }
  const v = current.head.version;
  try {
    await post(`/v1/knowledge/articles/${current.id}/versions/${v}/submit`, {});
    await openArticle(current.id);
    status(`已提交审核（v${v}）`, 'ok');
    loadList();
  } catch (e) {
    status(`提交失败：${e.message}`, 'bad');
  }
}

// ---- review ---------------------------------------------------------------------------------

async function renderReview() {
  const root = $('#review');
  if (!current) {
    replace(root, h('p.empty', '请先在左侧选择一篇文章。'));
    return;
  }
  const head = current.head;
  const live = current.live;
  const parts = [h('div.review-head', h('strong', `v${head.version}`), ` ${STATE[head.state] || head.state} · 作者 ${head.author} · ${when(head.created_at)}`)];
  if (live && live.version !== head.version) {
    try {
      const d = await get(`/v1/knowledge/articles/${current.id}/diff?from=${live.version}&to=${head.version}`);
      parts.push(h('div.diff-label', `与线上 v${live.version} 的差异：${(d.changed || []).join('、') || '无'}`));
      parts.push(h('pre.diff', d.unified.split('\n').map((l) => h(`span.${l.startsWith('+') ? 'add' : l.startsWith('-') ? 'del' : 'ctx'}`, `${l}\n`))));
    } catch (e) {
      parts.push(h('p.bad', e.message));
    }
  } else {
    parts.push(h('div.diff-label', live ? '这就是线上版本。' : '新文章，尚无线上版本：全文如下。'));
  }
  parts.push(h('div.review-preview.md', h('h2', head.title), renderMarkdown(head.body)));
  if ((head.questions || []).length) parts.push(h('div.qs', h('strong', '问法：'), head.questions.join(' / ')));
  replace(root, parts);
  if (head.state !== 'in_review') append_hint(root, '只有“待审核”的版本可以审核：请先在编辑页提交审核。');
  const can = head.state === 'in_review' && auth.has('content_reviewer') && head.author !== (auth.user() || {}).name;
  $('#btn-approve').disabled = !can;
  $('#btn-reject').disabled = !can;
  if (head.state === 'in_review' && head.author === (auth.user() || {}).name) {
    append_hint(root, '这是您写的版本，需要另一位审核人审核。');
  }
}

function append_hint(root, text) {
  root.appendChild(h('p.hint', text));
}

/**
 * The scheduled publication time typed in (branch time, YYYY-MM-DD and HH:mm): UTC
 * milliseconds, null when none, false (with a message) when it is not a valid date-time.
 */
function scheduled() {
  const date = $('#review-at-date').value.trim();
  const time = $('#review-at-time').value.trim();
  if (!date && !time) return null;
  const ms = fromWall(date, time);
  if (ms === null) {
    status('定时发布：请按“年-月-日”和 24 小时制“时:分”填写，例如 2026-12-31 和 09:30。', 'bad');
    return false;
  }
  return ms;
}

/** Repeats the typed schedule in full (2026年12月31日 09:30), or says what is wrong. */
function showScheduled() {
  const date = $('#review-at-date').value.trim();
  const time = $('#review-at-time').value.trim();
  const ms = date || time ? fromWall(date, time) : null;
  $('#review-at-show').textContent = ms === null
    ? (date || time ? '格式：YYYY-MM-DD 与 HH:mm' : '')
    : `${longWhen(ms)}（${TIME_ZONE}）`;
}
$('#review-at-date').addEventListener('input', showScheduled);
$('#review-at-time').addEventListener('input', showScheduled);

async function decide(approve) {
  if (!current) return;
  const v = current.head.version;
  const body = { comment: $('#review-comment').value.trim() };
  const at = approve ? scheduled() : null;
  if (at === false) return;
  if (at) body.publish_at = new Date(at).toISOString();
  try {
    const r = await post(`/v1/knowledge/articles/${current.id}/versions/${v}/${approve ? 'approve' : 'reject'}`, body);
    $('#review-comment').value = '';
    $('#review-at-date').value = '';
    $('#review-at-time').value = '';
    showScheduled();
    await openArticle(current.id);
    status(approve ? (r.state === 'scheduled' ? `已通过，将于 ${longWhen(at)} 发布` : `已发布（v${v}）`) : `已退回修改（v${v}）`, 'ok');
    renderReview();
    loadList();
  } catch (e) {
    const msg = e.code === 'self_review' ? '不能审核自己写的版本。' : e.code === 'golden_regression' ? `发布会让黄金问题失败：${e.message}` : e.message;
    status(msg, 'bad');
  }
}

// ---- versions, publish, rollback, retire ------------------------------------------------------

async function renderHistory() {
  const root = $('#history');
  if (!current) {
    replace(root, h('p.empty', '请先在左侧选择一篇文章。'));
    return;
  }
  try {
    const [vs, hist] = await Promise.all([
      get(`/v1/knowledge/articles/${current.id}/versions`),
      get(`/v1/knowledge/articles/${current.id}/history`),
    ]);
    const reviewer = auth.has('content_reviewer');
    replace(root,
      h('h3', '版本'),
      h('table.table', h('thead', h('tr', h('th', '版本'), h('th', '状态'), h('th', '作者'), h('th', '审核'), h('th', '时间'), h('th', ''))),
        h('tbody', (vs.versions || []).map((v) => h('tr',
          h('td', `v${v.version}`), h('td', h(`span.state.s-${v.state}`, STATE[v.state] || v.state)), h('td', v.author), h('td', v.reviewer || '—'), h('td', when(v.created_at)),
          h('td',
            reviewer && ['superseded', 'retired'].includes(v.state) ? h('button.btn.secondary', { type: 'button', onclick: () => rollback(v.version) }, '回滚到此版') : null,
            reviewer && v.state === 'published' ? h('button.btn.danger', { type: 'button', onclick: retire }, '下线') : null))))),
      h('h3', '流转记录'),
      h('ol.history', (hist.history || []).map((t) => h('li', h('span.when', when(t.at)), ` v${t.version} ${STATE[t.from] || t.from || '新建'} → ${STATE[t.to] || t.to} · ${t.actor}`, t.comment ? h('div.comment', t.comment) : null, t.override_reason ? h('div.comment', `强制发布理由：${t.override_reason}`) : null))));
  } catch (e) {
    replace(root, h('p.bad', e.message));
  }
}

async function rollback(version) {
  try {
    await post(`/v1/knowledge/articles/${current.id}/rollback`, { version, comment: '' });
    await openArticle(current.id);
    status(`已回滚，线上为 v${version}`, 'ok');
    renderHistory();
    loadList();
  } catch (e) {
    status(e.message, 'bad');
  }
}

async function retire() {
  try {
    await post(`/v1/knowledge/articles/${current.id}/retire`, {});
    await openArticle(current.id);
    status('已下线', 'ok');
    renderHistory();
    loadList();
  } catch (e) {
    status(e.message, 'bad');
  }
}

// ---- synonyms, hit-testing, golden ----------------------------------------------------------

async function loadSynonyms() {
  try {
    const d = await get('/v1/knowledge/synonyms');
    $('#syn-text').value = d.text;
    synRevision = d.revision;
  } catch (e) {
    toast(e.message, 'bad');
  }
}

$('#btn-syn-save').addEventListener('click', async () => {
  try {
    const r = await put('/v1/knowledge/synonyms', { text: $('#syn-text').value, base_revision: synRevision });
    synRevision = r.revision;
    $('#syn-status').textContent = '已保存，索引已重建。';
  } catch (e) {
    $('#syn-status').textContent = `保存失败：${e.message}`;
  }
});

$('#hit-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const q = $('#hit-q').value.trim();
  if (!q) return;
  const branch = $('#hit-branch').value.trim();
  try {
    const d = await get(`/v1/knowledge/hit-test?q=${encodeURIComponent(q)}&audience=${$('#hit-audience').value}${branch ? `&branch=${encodeURIComponent(branch)}` : ''}`);
    const does = d.kiosk || {};
    const verdict = does.does === 'answer' ? `终端会用 ${does.article} 回答` : does.does === 'clarify' ? `终端会反问：${(does.between || []).join(' 还是 ')}` : '终端会说不知道，并提供人工服务';
    replace($('#hit-result'),
      h('div.verdict', verdict),
      h('div.hint', `分词：${(d.words || []).join(' / ')}`),
      (d.hits || []).map((hit, i) => h('div.hit',
        h('div.hit-title', `${i + 1}. ${hit.title}`, h('span.hint', ` ${hit.id} v${hit.version} · BM25 ${hit.bm25.toFixed(2)} · 语义 ${hit.dense == null ? '—' : hit.dense.toFixed(3)} · 融合 ${hit.fused.toFixed(4)} · 覆盖 ${Math.round(hit.coverage * 100)}%`)),
        h('div.hit-text', highlight(hit.highlight)),
        h('div.matched', (hit.matched || []).map((m) => h('span.tag', m.as_word && m.as_word !== m.word ? `${m.word}→${m.as_word}` : m.word, (m.fields || []).length ? ` · ${m.fields.join('/')}` : ''))))));
  } catch (err) {
    toast(err.message, 'bad');
  }
});

async function loadGolden() {
  try {
    const d = await get('/v1/knowledge/golden');
    const results = d.results || [];
    replace($('#golden'),
      h('div.verdict', `通过 ${d.passing} / ${results.length}`),
      h('table.table', h('thead', h('tr', h('th', '问题'), h('th', '应答文章'), h('th', '实际第一'), h('th', '结果'))),
        h('tbody', results.map((r) => h(`tr.${r.pass ? 'pass' : 'fail'}`, h('td', r.question), h('td', r.expect), h('td', r.got || '—'), h('td', r.pass ? '通过' : '未通过'))))));
  } catch (e) {
    replace($('#golden'), h('p.bad', e.message));
  }
}

// ---- questions nobody answered (待补充) -------------------------------------------------------

const MISS = { dont_know: '答不上来', not_understood: '没听懂', out_of_scope: '不在服务范围', clarified: '只能反问' };

/** Starts a new article from a group: its wording as the title, its samples as questions. */
function draftFrom(g) {
  newArticle();
  f.title.value = g.text;
  f.questions.value = g.samples.join('\n');
  preview();
  autosave();
  status('已根据客户的问法新建草稿：请写正文并保存，然后提交审核。');
  f.id.focus();
}

/** Adds a group's wordings to the open article's questions (saved as a new version). */
function addToCurrent(g) {
  if (!current) {
    toast('请先在左侧打开要补充问法的文章。', 'bad');
    return;
  }
  const have = new Set(f.questions.value.split('\n').map((x) => x.trim()).filter(Boolean));
  const added = g.samples.filter((q) => !have.has(q));
  f.questions.value = [...have, ...added].join('\n');
  tab('pane-edit');
  preview();
  autosave();
  status(`已加入 ${added.length} 个问法：保存后提交审核即可生效。`);
}

async function loadUnanswered() {
  const to = new Date();
  const from = new Date(to.getTime() - 13 * 86_400_000);
  const day = (d) => d.toISOString().slice(0, 10);
  try {
    const r = await get(`/v1/reports/unanswered?from=${day(from)}&to=${day(to)}`);
    const groups = r.groups || [];
    replace($('#unanswered'),
      h('p.verdict', `近两周 ${r.lines} 句客户的话没有得到回答，按问法归为 ${groups.length} 组`),
      groups.length
        ? h('table.table.unanswered', h('thead', h('tr', h('th', '客户的问法'), h('th', '次数'), h('th', '原因'), h('th', '最近'), h('th', ''))),
          h('tbody', groups.map((g) => h('tr',
            h('td', h('div', g.text), g.samples.length > 1 ? h('div.qs', g.samples.slice(1).join(' / ')) : null),
            h('td', `${g.count}（${g.sessions} 位客户）`),
            h('td', Object.entries(g.kinds).map(([k, n]) => `${MISS[k] || k} ${n}`).join('、')),
            h('td', when(g.last_at)),
            h('td.actions',
              h('button.btn.secondary', { type: 'button', onclick: () => draftFrom(g) }, '新建文章'),
              h('button.btn.secondary', { type: 'button', onclick: () => addToCurrent(g) }, '加为问法'))))))
        : h('p.empty', '没有未回答的问题。'));
  } catch (e) {
    replace($('#unanswered'), h('p.bad', e.message));
  }
}

// ---- wiring ---------------------------------------------------------------------------------

function tab(paneId) {
  for (const t of $$('.tab')) t.classList.toggle('active', t.dataset.pane === paneId);
  for (const p of $$('.pane')) show(p, p.id === paneId);
  if (paneId === 'pane-review') renderReview();
  if (paneId === 'pane-history') renderHistory();
  if (paneId === 'pane-synonyms') loadSynonyms();
  if (paneId === 'pane-golden') loadGolden();
  if (paneId === 'pane-unanswered') loadUnanswered();
}

for (const t of $$('.tab')) t.addEventListener('click', () => tab(t.dataset.pane));
for (const input of Object.values(f)) {
  input.addEventListener('input', () => {
    preview();
    autosave();
  });
  input.addEventListener('change', autosave);
}
$('#editor').addEventListener('submit', (e) => {
  e.preventDefault();
  save();
});
$('#btn-submit').addEventListener('click', submitForReview);
$('#btn-approve').addEventListener('click', () => decide(true));
$('#btn-reject').addEventListener('click', () => decide(false));
$('#btn-new').addEventListener('click', newArticle);
$('#filter-state').addEventListener('change', loadList);
$('#filter-text').addEventListener('input', renderList);
$('#btn-logout').addEventListener('click', async () => {
  await logout();
  started = false;
  current = null;
  $('#who').textContent = '';
  needLogin('');
});

let started = false;

function start(user) {
  // Also called after logging in again (an expired token): keep what is on screen.
  $('#who').textContent = `${user.name}（${(user.roles || []).map((r) => ({ content_editor: '编辑', content_reviewer: '审核', admin: '管理员', teller: '柜员', remote_expert: '专家' })[r] || r).join('、')}）`;
  loadList();
  if (!started) newArticle();
  started = true;
}

setupLogin('内容工作室', '知识文章 · 审核发布 · 命中测试', start);
if (auth.token() && auth.user()) start(auth.user());
else needLogin('');
