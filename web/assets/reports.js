// The branch dashboard (/reports): this minute (GET /v1/reports/now), the chosen days at a
// glance and as a trend (GET /v1/reports/summary, drawn with the vendored uPlot), how each
// journey went and where customers left it (GET /v1/reports/journeys), and why people were
// asked for (GET /v1/reports/handoffs). Staff of one branch see their branch; CSV exports
// are fetched with the login's token and saved as files.

import uPlot from './vendor/uplot/uPlot.esm.js';
import { h, $, replace } from './dom.js';
import { wall, isDate } from './locale.js';
import { get, auth, setupLogin, needLogin, logout, toast } from './api.js';

const REASON = {
  customer_asked: '客户要求', fraud_suspected: '疑似诈骗', step_failed: '步骤失败', flow: '业务需要',
  retry_limit: '多次未听懂', device_error: '设备故障',
};
const pct = (v) => (v === null || v === undefined ? '—' : `${(v * 100).toFixed(1)}%`);
const num = (v) => (v === null || v === undefined ? '—' : String(v));
const p2 = (n) => String(n).padStart(2, '0');

function today() {
  const w = wall(Date.now());
  return `${w.year}-${p2(w.month)}-${p2(w.day)}`;
}

function daysBefore(day, n) {
  const d = new Date(`${day}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() - n);
  return d.toISOString().slice(0, 10);
}

function windowQuery() {
  const q = new URLSearchParams({ from: $('#from').value, to: $('#to').value, group_by: $('#group-by').value });
  const b = $('#branch').value.trim();
  if (b) q.set('branch', b);
  return q.toString();
}

const tile = (id, label, value, hint = '') => h(`div.tile#${id}`,
  h('div.tile-value', value), h('div.tile-label', label), hint ? h('div.tile-hint', hint) : null);

let chart = null;

function drawTrend(buckets) {
  const el = $('#trend');
  if (chart) {
    chart.destroy();
    chart = null;
  }
  if (!buckets.length) {
    replace(el, h('p.empty', '这段时间没有数据'));
    return;
  }
  replace(el);
  const labels = buckets.map((b) => b.bucket);
  const xs = buckets.map((_, i) => i);
  const opts = {
    width: Math.max(320, el.clientWidth || 900),
    height: 260,
    scales: { x: { time: false } },
    axes: [
      { values: (u, vals) => vals.map((v) => (Number.isInteger(v) && labels[v] ? labels[v].slice(5) : '')) },
      {},
    ],
    series: [
      { label: '时段', value: (u, v) => (v === null ? '' : labels[v] || '') },
      { label: '会话', stroke: '#1f5fa8', width: 2 },
      { label: '自助完成', stroke: '#2e8b57', width: 2 },
      { label: '转人工', stroke: '#c0392b', width: 2 },
    ],
  };
  chart = new uPlot(opts, [xs, buckets.map((b) => b.sessions), buckets.map((b) => b.contained), buckets.map((b) => b.handed_off)], el);
}

function funnel(j) {
  const top = Math.max(1, j.started, ...j.funnel.map((f) => f.reached));
  return h('div.funnel', j.funnel.map((f) => {
    const fill = h('span.funnel-fill');
    // Through the CSSOM: the page's policy forbids style attributes.
    fill.style.width = `${Math.round((f.reached / top) * 100)}%`;
    return h('div.funnel-step', h('span.funnel-name', f.step), h('span.funnel-bar', fill), h('span.funnel-n', String(f.reached)));
  }));
}

function renderJourneys(list) {
  if (!list.length) {
    replace($('#journeys'), h('p.empty', '这段时间没有办理业务'));
    return;
  }
  const head = ['业务', '开始', '完成', '取消', '转人工', '多次未听懂', '中途离开', '未完成', '完成率', '各步骤到达人数'];
  replace($('#journeys'), h('table.record-table.journeys',
    h('thead', h('tr', head.map((c) => h('th', c)))),
    h('tbody', list.map((j) => h('tr',
      h('td', j.label ? `${j.label}（${j.flow}）` : j.flow),
      h('td', String(j.started)), h('td', String(j.completed)), h('td', String(j.cancelled)),
      h('td', String(j.handed_off)), h('td', String(j.retry_limit)), h('td', String(j.abandoned)),
      h('td', String(j.unfinished)), h('td', pct(j.completion)), h('td', funnel(j)))))));
}

function renderHandoffs(r) {
  const rows = Object.entries(r.by_reason || {}).sort((a, b) => b[1] - a[1]);
  replace($('#handoffs'), rows.length
    ? h('ul.reasons', rows.map(([k, n]) => h('li', h('span', REASON[k] || k), h('b', String(n)))))
    : h('p.empty', '这段时间没有转人工'));
}

async function show() {
  // Dates are typed as the branch writes them (年-月-日), never a browser's own picker format.
  for (const id of ['#from', '#to']) {
    if (!isDate($(id).value.trim())) {
      toast('日期请写成 年-月-日，例如 2026-12-01。', 'bad');
      $(id).focus();
      return;
    }
  }
  try {
    const q = windowQuery();
    const branch = $('#branch').value.trim();
    const [now, summary, journeys, handoffs] = await Promise.all([
      get(`/v1/reports/now${branch ? `?branch=${encodeURIComponent(branch)}` : ''}`),
      get(`/v1/reports/summary?${q}`),
      get(`/v1/reports/journeys?${q}`),
      get(`/v1/reports/handoffs?${q}`),
    ]);
    replace($('#now'),
      tile('now-queue', '排队等候', num(now.queue_waiting), '今天已取号未叫号'),
      tile('now-handoffs', '待接入转人工', num(now.handoffs_waiting)),
      tile('now-risk', '工单时限预警', num(now.sla_at_risk), '已用去 75% 时限'),
      tile('now-breached', '工单已超时', num(now.sla_breached)));
    const t = summary.totals;
    const w = summary.window;
    $('#window-label').textContent = `${w.from} 至 ${w.to}${w.branch ? ` · ${w.branch}` : ' · 全部网点'}`;
    replace($('#tiles'),
      tile('t-sessions', '会话', num(t.sessions), `对话轮次 ${num(t.turns)}`),
      tile('t-containment', '自助完成率', pct(t.containment), `无需人工 ${num(t.contained)} / 结束 ${num(t.sessions_ended)}`),
      tile('t-handoffs', '转人工', num(t.handoffs), `转人工率 ${pct(t.handoff_rate)}`),
      tile('t-journeys', '业务完成率', pct(t.journey_completion), `完成 ${num(t.journeys_completed)} / 开始 ${num(t.journeys_started)}`),
      tile('t-queue', '平均排队', t.queue_wait_minutes === null ? '—' : `${t.queue_wait_minutes} 分钟`, `取号 ${num(t.queue_issued)} · 叫号 ${num(t.queue_called)}`),
      tile('t-sla', '首次响应达标', pct(t.sla_first_response), `解决达标 ${pct(t.sla_resolution)}`));
    drawTrend(summary.buckets || []);
    renderJourneys(journeys.journeys || []);
    renderHandoffs(handoffs);
  } catch (e) {
    toast(`读取报表失败：${e.message}`, 'bad');
  }
}

async function downloadCsv(name) {
  const res = await fetch(`/v1/reports/${name}?${windowQuery()}&format=csv`, { headers: { authorization: `Bearer ${auth.token()}` } });
  if (res.status === 401) {
    await needLogin('登录已过期，请重新登录。');
    return;
  }
  if (!res.ok) {
    toast('导出失败，请稍后再试。', 'bad');
    return;
  }
  const url = URL.createObjectURL(await res.blob());
  const a = h('a', { href: url, download: `${name}-${$('#from').value}-${$('#to').value}.csv` });
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

function start(user) {
  $('#who').textContent = user ? user.name : '';
  if (user && user.branch) {
    $('#branch').value = user.branch;
    $('#branch').disabled = true;
  }
  show();
}

const day = today();
$('#to').value = day;
$('#from').value = daysBefore(day, 6);
$('#window-form').addEventListener('submit', (e) => {
  e.preventDefault();
  show();
});
$('#csv-summary').addEventListener('click', () => downloadCsv('summary'));
$('#csv-journeys').addEventListener('click', () => downloadCsv('journeys'));
$('#btn-logout').addEventListener('click', async () => {
  await logout();
  needLogin('');
});
setupLogin('运营报表', '自助完成率 · 业务漏斗 · 转人工原因', start);
if (auth.token() && auth.user()) start(auth.user());
else needLogin('');
