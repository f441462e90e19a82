// The teller console: the live queue of handoffs and tickets (staff WebSocket), the case
// packet, the chat relay with a kiosk customer, ticket moves and comments, the knowledge
// helper, queue calling and today's appointments.

import { h, $, replace, show, highlight, when } from './dom.js';
import { api, get, post, auth, setupLogin, needLogin, logout, toast } from './api.js';
import { CHOICE } from './labels.js';

const KIND = { handoff: '转人工', handoff_remote: '远程专家' };
const STATE = {
  new: '待接入', assigned: '已接入', in_progress: '处理中', pending_customer: '等客户',
  resolved: '已解决', closed: '已关闭', cancelled: '已取消',
};
const NEXT = {
  new: ['cancelled'],
  assigned: ['in_progress', 'new', 'cancelled'],
  in_progress: ['pending_customer', 'resolved', 'cancelled'],
  pending_customer: ['in_progress', 'resolved', 'cancelled'],
  resolved: ['closed', 'in_progress'],
  closed: [],
  cancelled: [],
};
const REASON = {
  customer_asked: '客户要求人工服务', fraud_suspected: '疑似电信诈骗', flow: '办理中需要人工协助',
};
const PRIORITY = { urgent: '紧急', high: '优先', normal: '普通', low: '低' };
const OPEN = (t) => !['resolved', 'closed', 'cancelled'].includes(t.state);
const EVENT = {
  created: '创建', claimed: '接入', assigned: '分配', state_changed: '状态变更', transition: '状态变更',
  comment: '备注', relay_customer: '客户', relay_staff: '工作人员', released: '交还小安',
  state: '状态', sla_warning: 'SLA 预警', sla_escalated: 'SLA 升级', customer_left: '客户已离开', reassigned: '转派',
};

const tickets = new Map();
const unread = new Set();
let selected = null; // {ticket, events}
let ws = null;
let wsBackoff = 0;
let stopped = false;

const branch = () => $('#branch').value.trim() || 'B001';
const me = () => (auth.user() || {}).name;
const isHandoff = (t) => t.kind === 'handoff' || t.kind === 'handoff_remote';

// ---- live channel ------------------------------------------------------------------------

function connectLive() {
  if (stopped || !auth.token()) return;
  if (ws && (ws.readyState === WebSocket.CONNECTING || ws.readyState === WebSocket.OPEN)) return;
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/v1/staff/ws?token=${encodeURIComponent(auth.token())}`;
  const sock = new WebSocket(url);
  ws = sock;
  let opened = false;
  sock.onopen = () => {
    opened = true;
    wsBackoff = 0;
    setLive(true);
    loadTickets();
  };
  sock.onmessage = (ev) => {
    let m;
    try {
      m = JSON.parse(ev.data);
    } catch (_) {
      return;
    }
    onLive(m);
  };
  sock.onclose = async () => {
    if (sock !== ws) return;
    ws = null;
    setLive(false);
    if (stopped) return;
    if (!opened) {
      // Maybe the token expired: /me answers 401 and brings up the login form.
      try {
        await get('/v1/auth/me');
      } catch (_) { /* retried below */ }
    }
    const delay = Math.min(10000, 500 * 2 ** wsBackoff++);
    setTimeout(connectLive, delay);
  };
}

function setLive(on) {
  const l = $('#live');
  l.textContent = on ? '实时连接' : '重新连接中…';
  l.className = `live ${on ? 'on' : 'off'}`;
}

function sendLive(msg) {
  if (ws && ws.readyState === WebSocket.OPEN) {
    ws.send(JSON.stringify(msg));
    return true;
  }
  toast('实时连接已断开，正在重连，请稍后再试。', 'bad');
  return false;
}

function onLive(m) {
  if (m.type === 'ticket.event') {
    tickets.set(m.ticket.id, { ...(tickets.get(m.ticket.id) || {}), ...m.ticket });
    if (selected && selected.ticket.id === m.ticket.id) {
      Object.assign(selected.ticket, m.ticket);
      if (!selected.events.some((e) => e.event_id === m.event.event_id)) selected.events.push(m.event);
      renderCase();
    } else if (m.event.kind === 'relay_customer') {
      unread.add(m.ticket.id);
    }
    if (m.event.kind === 'created' && isHandoff(m.ticket)) toast(`新的转人工：${m.ticket.number}`);
    renderQueue();
  } else if (m.type === 'ok') {
    if (m.for === 'accept' && m.ticket) openTicket(m.ticket);
    if (m.for === 'release') toast('已交还小安。');
  } else if (m.type === 'error') {
    toast(m.message || m.code, 'bad');
  }
}

// ---- queue -------------------------------------------------------------------------------

async function loadTickets() {
  try {
    const data = await get(`/v1/tickets?limit=200`);
    tickets.clear();
    for (const t of data.tickets) tickets.set(t.id, t);
    renderQueue();
  } catch (e) {
    toast(`工单加载失败：${e.message}`, 'bad');
  }
}

function renderQueue() {
  const filter = $('#queue-filter').value;
  let list = Array.from(tickets.values());
  if (filter === 'open') list = list.filter(OPEN);
  if (filter === 'mine') list = list.filter((t) => t.assignee === me() && OPEN(t));
  const rank = (t) => (t.state === 'new' && isHandoff(t) ? 0 : t.assignee === me() && OPEN(t) ? 1 : t.state === 'new' ? 2 : 3);
  list.sort((a, b) => rank(a) - rank(b) || String(b.number).localeCompare(String(a.number)));
  const q = $('#queue');
  if (!list.length) {
    replace(q, h('p.empty', '暂无工单'));
    return;
  }
  replace(q, list.map((t) => h('button.ticket', {
    type: 'button',
    class: `ticket${selected && selected.ticket.id === t.id ? ' selected' : ''}${t.state === 'new' && isHandoff(t) ? ' waiting' : ''}`,
    onclick: () => openTicket(t.id),
  },
  h('div.ticket-top', h('span.ticket-no', t.number), unread.has(t.id) ? h('span.badge.bad', '新消息') : null, t.priority && t.priority !== 'normal' ? h('span.badge.warn', PRIORITY[t.priority] || t.priority) : null),
  h('div.ticket-meta', h('span', KIND[t.kind] || t.kind), h('span', STATE[t.state] || t.state), h('span', t.assignee ? `处理人 ${t.assignee}` : '未分配')))));
}

// ---- one ticket ----------------------------------------------------------------------------

async function openTicket(id) {
  try {
    const data = await get(`/v1/tickets/${encodeURIComponent(id)}`);
    selected = { ticket: data.ticket, events: data.events || [] };
    unread.delete(data.ticket.id);
    tickets.set(data.ticket.id, { ...(tickets.get(data.ticket.id) || {}), ...data.ticket });
    renderCase();
    renderQueue();
  } catch (e) {
    toast(`打开工单失败：${e.message}`, 'bad');
  }
}

function renderCase() {
  const t = selected.ticket;
  const c = t.case || {};
  const mine = t.assignee === me();
  const live = isHandoff(t) && mine && OPEN(t);
  const actions = [];
  if (t.state === 'new') {
    actions.push(h('button.btn.ok', { type: 'button', onclick: () => accept(t) }, isHandoff(t) ? '接入' : '认领'));
  }
  if (live) actions.push(h('button.btn.secondary', { type: 'button', onclick: () => sendLive({ type: 'release', ticket: t.id }) }, '交还小安'));
  // The session's compliance record, in a tab of its own (it keeps this tab's login).
  if (t.session_id) actions.push(h('a.btn.secondary#record-link', { href: `/record?session=${encodeURIComponent(t.session_id)}`, target: '_blank', rel: 'opener' }, '合规记录'));

  const moves = NEXT[t.state] || [];
  const moveSel = h('select#move-to', moves.map((s) => h('option', { value: s }, STATE[s] || s)));
  const moveComment = h('input#move-comment', { placeholder: '说明（可选）', maxlength: 500 });
  const moveForm = moves.length && (mine || auth.has('admin'))
    ? h('form.inline-form.move', {
      onsubmit: async (e) => {
        e.preventDefault();
        try {
          await post(`/v1/tickets/${t.id}/transition`, { to: moveSel.value, comment: moveComment.value });
          toast('状态已更新。');
          openTicket(t.id);
        } catch (err) {
          toast(err.message, 'bad');
        }
      },
    }, h('span.label', '改为'), moveSel, moveComment, h('button.btn.secondary', { type: 'submit' }, '更新状态'))
    : null;

  const chatLines = [];
  for (const line of c.transcript || []) {
    chatLines.push(h(`div.msg.${line.speaker === 'customer' ? 'customer' : line.speaker === 'staff' ? 'staff' : 'bot'}`,
      h('span.msg-who', line.speaker === 'customer' ? (line.kind === 'choice' ? '客户（点选）' : '客户') : line.speaker === 'staff' ? '工作人员' : '小安'),
      line.kind === 'choice' ? (CHOICE[line.text] || line.text) : line.text));
  }
  for (const e of selected.events) {
    if (e.kind === 'relay_customer') chatLines.push(h('div.msg.customer', h('span.msg-who', '客户'), e.comment));
    if (e.kind === 'relay_staff') chatLines.push(h('div.msg.staff', h('span.msg-who', e.actor), e.comment));
    if (e.kind === 'released') chatLines.push(h('div.msg.system', '已交还小安'));
    if (e.kind === 'customer_left') chatLines.push(h('div.msg.system', '客户已离开'));
  }
  const chat = h('div.chat#chat', chatLines.length ? chatLines : h('p.empty', '还没有对话'));
  const chatInput = h('input#chat-input', { placeholder: live ? '对客户说…（回车发送）' : '接入后可以和客户对话', maxlength: 500, disabled: !live });
  const chatForm = h('form.inline-form.chat-form', {
    onsubmit: (e) => {
      e.preventDefault();
      const text = chatInput.value.trim();
      if (!text) return;
      if (sendLive({ type: 'say', ticket: t.id, text })) chatInput.value = '';
    },
  }, chatInput, h('button.btn#chat-send', { type: 'submit', disabled: !live }, '发送'));

  const slots = Object.entries(c.slots || {});
  const commentBox = h('textarea#comment-text', { rows: 2, maxlength: 2000, placeholder: '内部备注（客户看不到）' });
  const history = selected.events.filter((e) => !['relay_customer', 'relay_staff'].includes(e.kind));

  replace($('#case'),
    h('div.case-head',
      h('div', h('h2', t.number), h('div.case-sub', KIND[t.kind] || t.kind, ' · ', STATE[t.state] || t.state, ' · ', PRIORITY[t.priority] || t.priority, t.assignee ? ` · 处理人 ${t.assignee}` : '')),
      h('div.case-actions', actions)),
    t.resolution_due || t.first_response_due
      ? h('div.sla', t.first_response_due ? `首次响应时限 ${when(t.first_response_due)}` : '', t.resolution_due ? `　解决时限 ${when(t.resolution_due)}` : '')
      : null,
    h('div.case-body',
      h('div.case-main',
        h('h3', '与客户对话'),
        chat,
        chatForm,
        moveForm),
      h('div.case-packet',
        h('h3', '案件信息'),
        h('dl.kv',
          h('dt', '原因'), h('dd', REASON[c.reason] || c.reason || c.note || '—'),
          h('dt', '意图'), h('dd', c.intent || '—'),
          h('dt', '风险'), h('dd', (c.risk || []).length ? h('span.badge.bad', c.risk.join('、')) : '无'),
          h('dt', '网点/终端'), h('dd', `${t.branch_id || ''} ${t.kiosk_id || ''}`.trim() || '—'),
          t.customer_ref ? [h('dt', '客户'), h('dd', t.customer_ref)] : null),
        slots.length ? [h('h3', '已收集信息（已脱敏）'), h('dl.kv', slots.map(([k, v]) => [h('dt', k), h('dd', v)]))] : null,
        h('h3', '处理记录'),
        h('ol.history', history.map((e) => h('li', h('span.when', when(e.at)), ' ', h('strong', EVENT[e.kind] || e.kind), e.from || e.to ? ` ${STATE[e.from] || e.from || ''} → ${STATE[e.to] || e.to || ''}` : '', ' · ', e.actor, e.comment ? h('div.comment', e.comment) : null))),
        h('form.comment-form', {
          onsubmit: async (e) => {
            e.preventDefault();
            const text = commentBox.value.trim();
            if (!text) return;
            try {
              await post(`/v1/tickets/${t.id}/comments`, { text });
              commentBox.value = '';
              openTicket(t.id);
            } catch (err) {
              toast(err.message, 'bad');
            }
          },
        }, commentBox, h('button.btn.secondary', { type: 'submit' }, '添加备注')))));
  chat.scrollTop = chat.scrollHeight;
}

async function accept(t) {
  if (isHandoff(t)) {
    sendLive({ type: 'accept', ticket: t.id });
    return;
  }
  try {
    await post(`/v1/tickets/${t.id}/claim`);
    openTicket(t.id);
  } catch (e) {
    toast(e.code === 'already_claimed' ? '这张工单已被同事认领。' : e.message, 'bad');
  }
}

// ---- helpers: knowledge, queue calling, appointments --------------------------------------

$('#kb-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const q = $('#kb-q').value.trim();
  if (!q) return;
  try {
    const data = await get(`/v1/knowledge/search?audience=staff&limit=5&branch=${encodeURIComponent(branch())}&q=${encodeURIComponent(q)}`);
    const hits = data.hits || [];
    replace($('#kb-hits'), hits.length
      ? hits.map((hit) => h('div.hit',
        h('div.hit-title', hit.title, hit.audience === 'staff' ? h('span.badge', '内部') : null),
        h('div.hit-text', highlight(hit.highlight)),
        h('div.hit-cite', `引用：${hit.id} 第 ${hit.version} 版`)))
      : h('p.empty', '没有找到相关内容，换个说法试试。'));
  } catch (err) {
    toast(err.message, 'bad');
  }
});

async function loadBoard() {
  try {
    const b = await get(`/v1/queue?branch=${encodeURIComponent(branch())}&line=${$('#call-line').value}`);
    const last = (b.called || []).slice(-1)[0];
    replace($('#board'),
      h('div.board-row', h('span', '等候'), h('strong', String((b.waiting || []).length)), h('span', '人')),
      h('div.board-row', h('span', '最近叫号'), h('strong', last ? `${last.ticket} → ${last.counter || ''}` : '—')),
      h('div.board-row', h('span', '每位约'), h('strong', `${Math.round(b.minutes_per_customer || 0)} 分钟`)));
  } catch (err) {
    replace($('#board'), h('p.empty', err.message));
  }
}

$('#call-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  try {
    const r = await post('/v1/queue/call-next', { branch: branch(), line: $('#call-line').value, counter: $('#call-counter').value.trim() });
    toast(r.called ? `请 ${r.called.ticket} 号到 ${r.called.counter}` : '这个队列没有人在等候。');
    loadBoard();
  } catch (err) {
    toast(err.message, 'bad');
  }
});
$('#call-line').addEventListener('change', loadBoard);

async function loadAppointments() {
  try {
    const data = await get(`/v1/appointments?branch=${encodeURIComponent(branch())}`);
    const list = data.appointments || [];
    replace($('#appointments'), list.length
      ? h('table.table', h('thead', h('tr', h('th', '时间'), h('th', '业务'), h('th', '手机'), h('th', '状态'))),
        h('tbody', list.map((a) => h('tr', h('td', a.slot), h('td', a.service), h('td', a.phone_masked), h('td', a.status)))))
      : h('p.empty', '今天没有预约'));
  } catch (err) {
    replace($('#appointments'), h('p.empty', err.message));
  }
}

$('#queue-filter').addEventListener('change', renderQueue);
$('#branch').addEventListener('change', () => {
  loadBoard();
  loadAppointments();
});
$('#btn-logout').addEventListener('click', async () => {
  stopped = true;
  if (ws) ws.close();
  await logout();
  location.reload();
});

function start(user) {
  // Also called after logging in again (an expired token): keep the open ticket and typing.
  stopped = false;
  $('#who').textContent = `${user.name}`;
  if (user.branch) $('#branch').value = user.branch;
  if (!ws) connectLive();
  loadBoard();
  loadAppointments();
}

setupLogin('柜员工作台', '转人工接待 · 工单 · 知识助手', start);
if (auth.token() && auth.user()) start(auth.user());
else needLogin('');
