// The printable compliance record of one session (/record?session=ID): GET
// /v1/sessions/{id}/record (the server writes the view down before it answers) shown as
// one document — session, transcript, actions and citations, device calls, handoffs and
// risk flags, tickets with their audit links, earlier views. Everything is masked as
// stored; nothing here unmasks.

import { h, $, replace } from './dom.js';
import { when } from './locale.js';
import { get, auth, setupLogin, needLogin, ApiError } from './api.js';
import { CHOICE } from './labels.js';

const SPEAKER = { customer: '客户', bot: '小安', staff: '工作人员', system: '系统' };
const TARGET = { teller: '柜员', remote_expert: '远程专家' };

const table = (head, rows) => (rows.length
  ? h('table.record-table', h('thead', h('tr', head.map((c) => h('th', c)))),
    h('tbody', rows.map((r) => h('tr', r.map((c) => h('td', c ?? ''))))))
  : h('p.empty', '无'));

const section = (id, title, ...body) => h(`section.record-part#${id}`, h('h2', title), ...body);

function render(r) {
  const s = r.session;
  const head = h('div.record-head',
    h('h1', `会话 ${s.id}`),
    h('dl.record-facts',
      h('dt', '网点'), h('dd', s.branch_id),
      h('dt', '终端'), h('dd', s.kiosk_id),
      h('dt', '开始'), h('dd', when(s.created_at)),
      h('dt', '结束'), h('dd', s.ended_at ? `${when(s.ended_at)}（${s.end_reason || '—'}）` : '进行中'),
      h('dt', '轮次'), h('dd', String(s.turns)),
      h('dt', '风险标记'), h('dd', r.risk_flags.length ? r.risk_flags.join('、') : '无'),
      h('dt', '生成'), h('dd', `${when(r.generated_at)} · ${r.generated_for}`)));
  replace($('#record'),
    head,
    section('part-transcript', '对话记录（已脱敏）',
      table(['序号', '时间', '说话方', '内容'],
        r.transcript.map((l) => [String(l.seq), when(l.at), SPEAKER[l.speaker] || l.speaker,
          l.kind === 'choice' ? `点选：${CHOICE[l.text] || l.text}` : l.text]))),
    section('part-steps', '业务操作',
      table(['序号', '时间', '操作'], r.steps.map((st) => [String(st.seq), when(st.at), st.text]))),
    section('part-citations', '知识引用',
      table(['时间', '文章', '版本'], r.citations.map((c) => [when(c.at), c.article, `第${c.version}版`]))),
    section('part-devices', '设备调用',
      table(['时间', '设备', '动作', '结果', '耗时'],
        r.device_calls.map((d) => [when(d.at), d.device, d.action, d.ok ? '成功' : `未成功（${d.code || '—'}）`, `${d.duration_ms} ms`]))),
    section('part-handoffs', '转人工',
      table(['时间', '转交', '原因', '意图', '风险'],
        r.handoffs.map((x) => [when(x.at), TARGET[x.target] || x.target, x.reason, x.intent || '', x.risk.join('、')]))),
    section('part-tickets', '工单与审计链',
      r.tickets.length
        ? r.tickets.map((t) => h('div.record-ticket',
          h('h3', `${t.ticket.number} · ${t.ticket.kind} · ${t.ticket.state}`),
          table(['时间', '事件', '操作人', '说明', '审计链序号', '哈希'],
            t.events.map((e) => [when(e.at), e.kind, e.actor, e.comment, String(e.chain_seq), h('code', e.hash.slice(0, 16))]))))
        : h('p.empty', '无')),
    section('part-views', '查阅记录',
      table(['时间', '查阅人'], r.views.map((v) => [when(v.at), v.staff]))));
}

async function start(user) {
  $('#who').textContent = user ? user.name : '';
  const id = new URLSearchParams(location.search).get('session') || '';
  if (!id) {
    replace($('#record'), h('p.empty', '缺少会话编号。'));
    return;
  }
  try {
    render(await get(`/v1/sessions/${encodeURIComponent(id)}/record`));
  } catch (e) {
    const text = e instanceof ApiError && e.status === 404 ? '没有这个会话，或您无权查看。'
      : e instanceof ApiError && e.status === 403 ? '您的角色不能查看会话记录。'
        : `读取失败：${e.message}`;
    replace($('#record'), h('p.empty.bad', text));
  }
}

$('#btn-print').addEventListener('click', () => window.print());
setupLogin('会话合规记录', '事后追溯 · 每次查阅都会留痕', start);
if (auth.token() && auth.user()) start(auth.user());
else needLogin('');
