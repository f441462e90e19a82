// The kiosk screen: one customer conversation over the kiosk WebSocket (docs/protocol.md).
// The customer talks (push-to-talk or hands-free), taps choices or types; 小安 answers with
// captions, speech, choices, forms, device prompts, articles and sensitive screens.

import { h, $, replace, show } from './dom.js';
import { clock } from './locale.js';
import { renderMarkdown } from './markdown.js';
import { Avatar } from './avatar.js';
import { Voice } from './voice.js';

const IDENTITY_KEY = 'concierge.kiosk';
const SENSITIVE_MS = 30000;
const MAX_LINES = 40;

const el = {
  captions: $('#captions'),
  heard: $('#heard'),
  choices: $('#choices'),
  fields: $('#fields'),
  sensitive: $('#sensitive'),
  article: $('#article'),
  device: $('#device'),
  handoff: $('#handoff'),
  keypad: $('#keypad'),
  banner: $('#banner'),
  notice: $('#notice'),
  overlay: $('#overlay'),
  status: $('#status-chip'),
  mic: $('#btn-mic'),
  handsfree: $('#btn-handsfree'),
  elder: $('#btn-elder'),
  contrast: $('#btn-contrast'),
  end: $('#btn-end'),
  form: $('#text-form'),
  input: $('#text-input'),
  keypadToggle: $('#btn-keypad'),
  clock: $('#clock'),
};

const avatar = new Avatar($('#avatar'));
const voice = new Voice();
avatar.level = () => voice.level();

const state = {
  identity: null,
  ws: null,
  backoff: 0,
  reconnectTimer: null,
  heartbeat: null,
  lastSeen: 0,
  halted: false, // replaced elsewhere, or the identity was refused: do not reconnect by ourselves
  connected: false,
  busy: false,
  seen: new Set(), // turn_id|text of bot lines already shown (a resume repeats the last one)
  sensitiveTimer: null,
  sensitiveTick: null,
  handoff: null,
  voiceOff: false, // the server has no speech recognition, or the microphone was refused
  capturing: false, // the customer holds the mic (or hands-free is on)
  streaming: false, // audio.start was sent; binary frames follow until audio.end
  handsFree: false,
  endTimer: null,
  lastBotText: '',
  renders: 0, // how many replies were drawn (a tap clears its choices only if none came yet)
};

// ---------------------------------------------------------------------------------------
// Identity: ?kiosk=K&token=T once (stored, then stripped from the address), else a form.

function readIdentity() {
  const params = new URLSearchParams(location.search);
  const id = params.get('kiosk');
  const token = params.get('token');
  if (id && token) {
    localStorage.setItem(IDENTITY_KEY, JSON.stringify({ id, token }));
    params.delete('kiosk');
    params.delete('token');
    const rest = params.toString();
    history.replaceState(null, '', location.pathname + (rest ? `?${rest}` : '') + location.hash);
  }
  try {
    const v = JSON.parse(localStorage.getItem(IDENTITY_KEY) || 'null');
    if (v && typeof v.id === 'string' && typeof v.token === 'string') return v;
  } catch (_) { /* fall through to the form */ }
  return null;
}

const sessionKey = () => `concierge.session.${state.identity.id}`;
const sessionId = () => localStorage.getItem(sessionKey()) || undefined;

function setupForm(message) {
  const idInput = h('input#setup-id', { name: 'kiosk', required: true, placeholder: '例如 K001', value: state.identity ? state.identity.id : '' });
  const tokenInput = h('input#setup-token', { name: 'token', required: true, placeholder: 'concierge kiosk register 打印的令牌' });
  const form = h('form.dialog', {
    onsubmit: (e) => {
      e.preventDefault();
      const id = idInput.value.trim();
      const token = tokenInput.value.trim();
      if (!id || !token) return;
      state.identity = { id, token };
      localStorage.setItem(IDENTITY_KEY, JSON.stringify(state.identity));
      state.halted = false;
      show(el.overlay, false);
      connect();
    },
  },
  h('h2', '设置这台自助终端'),
  message ? h('p.error-text', message) : h('p', '请输入工作人员提供的终端编号和令牌。'),
  h('label.field', h('span', '终端编号'), idInput),
  h('label.field', h('span', '令牌'), tokenInput),
  h('button.btn', { type: 'submit' }, '保存并连接'));
  replace(el.overlay, form);
  show(el.overlay, true);
}

// ---------------------------------------------------------------------------------------
// The connection: hello/welcome, resume, reconnect with backoff, heartbeat.

function capabilities() {
  const caps = ['text', 'choices', 'fields', 'article', 'handoff'];
  if (Voice.canCapture() && !state.voiceOff) caps.push('audio');
  if (Voice.canPlay()) caps.push('speaker');
  if (document.body.classList.contains('elder')) caps.push('elder');
  return caps;
}

function connect() {
  clearTimeout(state.reconnectTimer);
  if (!state.identity || state.halted) return;
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/v1/kiosk/ws`;
  let sock;
  try {
    sock = new WebSocket(url);
  } catch (_) {
    scheduleReconnect();
    return;
  }
  sock.binaryType = 'arraybuffer';
  state.ws = sock;
  sock.onopen = () => {
    if (sock !== state.ws) return;
    const hello = { type: 'hello', kiosk_id: state.identity.id, token: state.identity.token, role: 'screen', capabilities: capabilities() };
    const sid = sessionId();
    if (sid) hello.session_id = sid;
    sock.send(JSON.stringify(hello));
  };
  sock.onmessage = (ev) => {
    if (sock !== state.ws) return;
    state.lastSeen = Date.now();
    if (typeof ev.data === 'string') {
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch (_) {
        return;
      }
      onMessage(msg);
    } else {
      voice.frame(ev.data);
    }
  };
  sock.onclose = () => {
    if (sock !== state.ws) return;
    state.ws = null;
    state.connected = false;
    stopHeartbeat();
    if (state.capturing) endUtterance(false);
    if (state.halted) return;
    banner('网络中断，正在重新连接…');
    setStatus('连接中断');
    scheduleReconnect();
  };
}

function scheduleReconnect() {
  clearTimeout(state.reconnectTimer);
  const base = Math.min(10000, 500 * 2 ** state.backoff);
  state.backoff = Math.min(state.backoff + 1, 8);
  state.reconnectTimer = setTimeout(connect, base * (0.8 + Math.random() * 0.4));
}

function reconnectNow() {
  // Used when the capabilities change (elder mode): resume the same session on a new socket.
  if (state.capturing) endUtterance(false); // an utterance never spans two sockets
  const old = state.ws;
  state.ws = null;
  if (old) old.close(1000, 'capabilities changed');
  state.backoff = 0;
  connect();
}

function startHeartbeat() {
  stopHeartbeat();
  state.lastSeen = Date.now();
  state.heartbeat = setInterval(() => {
    if (!state.ws || state.ws.readyState !== WebSocket.OPEN) return;
    if (Date.now() - state.lastSeen > 45000) {
      state.ws.close();
      return;
    }
    send({ type: 'ping', nonce: String(Date.now()) });
  }, 15000);
}

function stopHeartbeat() {
  clearInterval(state.heartbeat);
}

function send(msg) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) {
    state.ws.send(JSON.stringify(msg));
    return true;
  }
  notice('网络中断，请稍候再试。');
  return false;
}

function banner(text) {
  if (text) el.banner.textContent = text;
  show(el.banner, !!text);
}

function notice(text, ms = 8000) {
  el.notice.textContent = text;
  show(el.notice, true);
  clearTimeout(notice.timer);
  if (ms) notice.timer = setTimeout(() => show(el.notice, false), ms);
}

function setStatus(text, cls = '') {
  el.status.textContent = text;
  el.status.className = `status-chip ${cls}`;
}

// ---------------------------------------------------------------------------------------
// Server messages.

function onMessage(m) {
  switch (m.type) {
    case 'welcome':
      state.connected = true;
      state.backoff = 0;
      banner('');
      show(el.overlay, false);
      startHeartbeat();
      if (m.session_id) localStorage.setItem(sessionKey(), m.session_id);
      setStatus(state.handsFree ? '正在聆听' : '您好，请说或点选', state.handsFree ? 'listening' : '');
      state.resuming = !!m.resumed;
      if (!m.resumed) {
        resetScreen();
        avatar.gesture('greet', 3200);
      }
      if (state.handsFree) beginUtterance();
      break;
    case 'bot.say':
      onBotSay(m);
      break;
    case 'ui.show':
      renderUi(m, '');
      break;
    case 'bot.audio':
      voice.begin(m.turn_id, m.sample_rate, m.interruptible);
      avatar.stopTalking();
      break;
    case 'bot.audio_end':
      voice.end(m.turn_id);
      break;
    case 'bot.stop':
      voice.stop(m.turn_id);
      avatar.stopTalking();
      break;
    case 'asr.partial':
      heard(m.text, false);
      break;
    case 'asr.final':
      heard(m.text, true);
      break;
    case 'agent.say':
      busy(false);
      line('agent', m.text, '工作人员');
      break;
    case 'handoff':
      busy(false);
      renderHandoff(m);
      break;
    case 'session.end':
      onSessionEnd(m.reason);
      break;
    case 'error':
      onError(m);
      break;
    default:
      break; // pong and anything newer
  }
}

function onBotSay(m) {
  const key = `${m.turn_id}|${m.text}`;
  const repeat = state.seen.has(key) || (state.resuming && m.text === state.lastBotText);
  state.resuming = false;
  state.seen.add(key);
  busy(false);
  if (repeat) {
    // A resume sends the last reply again: its choices and screens, not a second caption.
    renderUi(m.ui || {}, m.text);
    return;
  }
  line('bot', m.text, '小安');
  state.lastBotText = m.text;
  if (!voice.playing()) avatar.mime(m.speak || m.text);
  renderUi(m.ui || {}, m.text);
}

function onError(m) {
  busy(false);
  switch (m.code) {
    case 'asr_unavailable':
      state.voiceOff = true;
      endUtterance(false);
      stopHandsFree();
      el.mic.disabled = true;
      el.handsfree.disabled = true;
      notice('语音识别暂不可用，请点选或输入', 0);
      break;
    case 'unauthorized':
    case 'unknown_kiosk':
      state.halted = true;
      setupForm(m.code === 'unknown_kiosk' ? '这台终端没有登记或已停用，请联系工作人员。' : '令牌无效或已吊销，请重新输入。');
      break;
    case 'session_forbidden':
      localStorage.removeItem(sessionKey());
      break;
    case 'rate_limited':
      notice('操作太快了，请稍等一下。');
      break;
    case 'audio_too_long':
      notice('这句话太长了，请分几次说。');
      break;
    case 'invalid_text':
      notice('请输入要说的话（不超过 500 字）。');
      break;
    default:
      if (m.message) notice(m.message);
  }
}

function onSessionEnd(reason) {
  voice.stop();
  hideSensitive();
  endUtterance(false);
  if (reason === 'shutdown') {
    banner('系统正在维护重启，马上回来…');
    return; // the socket closes; we reconnect and resume
  }
  if (reason === 'replaced') {
    state.halted = true;
    stopHandsFree();
    const again = h('button.btn', { type: 'button', onclick: () => { state.halted = false; show(el.overlay, false); connect(); } }, '在此窗口继续');
    replace(el.overlay, h('div.dialog#replaced', h('h2', '此会话已在其他窗口打开'), h('p', '为避免重复操作，这个窗口已暂停。'), again));
    show(el.overlay, true);
    return;
  }
  // completed / closed: thank the customer, then a fresh session for the next one.
  localStorage.removeItem(sessionKey());
  stopHandsFree();
  const start = () => {
    clearTimeout(state.endTimer);
    show(el.overlay, false);
    resetModes();
    state.halted = false;
    reconnectNow();
  };
  state.halted = true; // the server closes the socket; do not resume the ended session
  replace(el.overlay, h('div.dialog#ended', h('h2', '感谢您的光临，再见！'), h('p', '请带好您的随身物品。'), h('button.btn', { type: 'button', onclick: start }, '开始新的服务')));
  show(el.overlay, true);
  clearTimeout(state.endTimer);
  state.endTimer = setTimeout(start, 15000);
}

// ---------------------------------------------------------------------------------------
// The screen.

function resetScreen() {
  el.captions.replaceChildren();
  state.seen.clear();
  clearPanels();
  show(el.handoff, false);
  state.handoff = null;
  show(el.heard, false);
}

function clearPanels() {
  show(el.choices, false);
  show(el.fields, false);
  show(el.article, false);
  show(el.device, false);
  show(el.keypad, false);
  el.keypadToggle.setAttribute('aria-pressed', 'false');
}

function line(kind, text, who) {
  for (const old of el.captions.querySelectorAll('.line.latest')) old.classList.remove('latest');
  const node = h(`div.line.${kind}`, who && kind !== 'bot' ? h('span.who', who) : null, text);
  if (kind === 'bot') node.classList.add('latest');
  el.captions.appendChild(node);
  while (el.captions.children.length > MAX_LINES) el.captions.firstChild.remove();
  el.captions.scrollTop = el.captions.scrollHeight;
}

function heard(text, final) {
  replace(el.heard, h('span.label', final ? '我听到：' : '正在听：'), text || '…');
  show(el.heard, true);
  if (final) {
    show(el.heard, false);
    if (text) line('user', text);
    busy(true);
  }
}

function busy(on) {
  state.busy = on;
  if (on) {
    avatar.gesture('think');
    setStatus('小安正在思考…', 'thinking');
  } else {
    if (avatar.current === 'think') avatar.gesture('');
    setStatus(state.capturing ? '正在聆听' : '请说或点选', state.capturing ? 'listening' : '');
  }
}

/** What the customer gives: a tap, a line of text, a form. */
function userText(text) {
  const t = text.trim();
  if (!t) return;
  if (send({ type: 'user.text', text: t })) {
    voice.stop(undefined, false);
    line('user', t);
    busy(true);
    clearPanels();
  }
}

function userChoice(choice, button) {
  if (send({ type: 'user.choice', value: choice.value })) {
    voice.stop(undefined, false);
    for (const b of el.choices.querySelectorAll('button')) b.disabled = true;
    button.classList.add('picked');
    line('user', choice.label);
    busy(true);
    // Clear the old choices shortly after the tap shows, unless the reply already replaced them.
    const shown = state.renders;
    setTimeout(() => {
      if (state.renders === shown) clearPanels();
    }, 150);
  }
}

const DEVICES = [
  { kind: 'id_card', re: /身份证.{0,12}(读卡区|放在|放到|平放)|(读卡区|放在).{0,6}身份证/, img: 'id_card.svg', text: '请把身份证放在下方读卡区', hint: '证件平放，不要移动，读取完成会有提示' },
  { kind: 'pin_pad', re: /密码键盘/, img: 'pin_pad.svg', text: '请在下方密码键盘上输入密码', hint: '输完按确认键，请用手遮挡，注意密码安全' },
  { kind: 'card_reader', re: /(插入|插卡|放入|刷).{0,6}(银行卡|卡)|读卡口/, img: 'card_reader.svg', text: '请将银行卡插入下方读卡口', hint: '芯片朝上，向里插到底' },
  { kind: 'receipt_printer', re: /请.{0,4}(取走|收好).{0,6}(回执|凭条|号票)|(回执|号票|凭条).{0,8}(打印好|已经打印|正在打印)/, img: 'printer.svg', text: '请从下方出纸口取走凭条', hint: '' },
  { kind: 'camera', re: /摄像头|拍照|人脸/, img: 'camera.svg', text: '请看向屏幕上方的摄像头', hint: '保持正脸，不要戴帽子和墨镜' },
];
const SCREEN_ALIASES = { queue_printer: 'receipt_printer', printer: 'receipt_printer', id_card_reader: 'id_card', card: 'card_reader' };

function deviceFor(screen, text) {
  if (screen) {
    const kind = SCREEN_ALIASES[screen] || screen;
    const d = DEVICES.find((x) => x.kind === kind);
    if (d) return d;
  }
  return DEVICES.find((d) => d.re.test(text || ''));
}

const NUMERIC_ASK = /手机号|后四位|卡号|金额|多少钱|验证码|身份证号|号码|几位/;

function renderUi(ui, text) {
  state.renders += 1;
  clearPanels();
  const device = deviceFor(ui.screen, text);
  if (device) {
    replace(el.device,
      h('img', { src: `/assets/img/${device.img}`, alt: '' }),
      h('div', h('div.device-text', device.text, ' ', h('span.arrow', { 'aria-hidden': 'true' }, '↓')), device.hint ? h('div.device-hint', device.hint) : null));
    el.device.dataset.device = device.kind;
    show(el.device, true);
    avatar.gesture('point', 4000);
    setStatus('请按屏幕提示操作', 'thinking');
  }
  const fields = ui.fields || [];
  if (ui.sensitive && fields.length) {
    showSensitive(fields);
  } else if (fields.length) {
    renderForm(fields);
  }
  if (ui.article) renderArticle(ui.article);
  const choices = ui.choices || [];
  if (choices.length) {
    replace(el.choices, choices.map((c) => {
      const b = h('button.choice', { type: 'button', dataset: { value: c.value } }, c.label);
      b.addEventListener('click', () => userChoice(c, b));
      return b;
    }));
    show(el.choices, true);
  } else if (NUMERIC_ASK.test(text || '') && !fields.length) {
    // Digits alone answer most questions; the last four digits of a card read better with
    // the word the customer would say with them ("尾号6789").
    openKeypad(el.input, /后四位|尾号/.test(text) ? '尾号' : '');
  }
}

function renderForm(fields) {
  const inputs = fields.map((f) => {
    const numeric = /手机|号码|金额|卡号|数字|验证码/.test(f.label);
    const input = h('input', { name: f.name, value: f.value || '', inputmode: numeric ? 'numeric' : 'text', maxlength: 100 });
    if (numeric) input.addEventListener('focus', () => openKeypad(input));
    return h('label.field', h('span', f.label), input);
  });
  replace(el.fields, ...inputs, h('button.btn.big-btn', { type: 'submit' }, '提交'));
  el.fields.onsubmit = (e) => {
    e.preventDefault();
    const parts = fields.map((f) => `${f.label}：${el.fields.elements[f.name].value.trim()}`).filter((s) => !s.endsWith('：'));
    userText(parts.join('，'));
  };
  show(el.fields, true);
}

function showSensitive(fields) {
  hideSensitive();
  let left = Math.round(SENSITIVE_MS / 1000);
  const counter = h('span.countdown', `${left} 秒后自动隐藏`);
  replace(el.sensitive,
    h('div.sens-head', h('span', '仅在屏幕上显示，不会朗读，请注意遮挡'), counter),
    h('dl', fields.map((f) => [h('dt', f.label), h('dd', f.value || '')])),
    h('button.btn.secondary.hide-btn', { type: 'button', onclick: hideSensitive }, '我看好了，隐藏'));
  show(el.sensitive, true);
  state.sensitiveTick = setInterval(() => {
    left -= 1;
    counter.textContent = `${Math.max(0, left)} 秒后自动隐藏`;
  }, 1000);
  state.sensitiveTimer = setTimeout(hideSensitive, SENSITIVE_MS);
}

function hideSensitive() {
  clearTimeout(state.sensitiveTimer);
  clearInterval(state.sensitiveTick);
  el.sensitive.replaceChildren();
  show(el.sensitive, false);
}

function renderArticle(a) {
  const body = h('div.md.article-body');
  body.appendChild(renderMarkdown(a.body || ''));
  replace(el.article,
    h('h2', a.title || '相关说明'),
    body,
    h('div.cite', `来源：知识库 ${a.id}${a.version ? ` · 第 ${a.version} 版` : ''}`));
  show(el.article, true);
}

function renderHandoff(m) {
  state.handoff = m;
  const expert = m.kind === 'remote_expert';
  const who = expert ? '远程专家' : '工作人员';
  let content;
  if (m.status === 'waiting') {
    content = [
      h('h2', h('span.spinner', { 'aria-hidden': 'true' }), expert ? '专家正在接入…' : `正在为您联系${who}…`),
      h('div.hint', '您的服务单号'),
      h('div.ticket-no', m.ticket_number),
      h('div.hint', '请稍候，接通后可以直接对话'),
    ];
  } else if (m.status === 'connected') {
    content = [
      h('h2', `${who}已接入`),
      h('div.hint', `服务单号 ${m.ticket_number}，您说的话会直接转给${who}`),
      m.call_link ? h('div.call-link', '视频通话：', m.call_link) : null,
    ];
  } else if (m.status === 'ended') {
    content = [h('h2', `${who}服务已结束`), h('div.hint', '小安继续为您服务')];
    setTimeout(() => {
      if (state.handoff === m) show(el.handoff, false);
    }, 6000);
  } else {
    content = [h('h2', `${who}服务`), h('div.ticket-no', m.ticket_number)];
  }
  replace(el.handoff, content);
  el.handoff.dataset.status = m.status;
  show(el.handoff, true);
}

// On-screen keypad for numbers (phone, last four digits, amounts).
function openKeypad(target = el.input, prefix = '') {
  const display = h('div.display', target.value || ' ');
  const update = () => {
    display.textContent = target.value || ' ';
  };
  const key = (label, fn, cls = '') => h(`button.key${cls}`, { type: 'button', onclick: () => { fn(); update(); } }, label);
  const keys = ['1', '2', '3', '4', '5', '6', '7', '8', '9'].map((d) => key(d, () => { target.value += d; }));
  replace(el.keypad,
    display,
    keys,
    key('删除', () => { target.value = target.value.slice(0, -1); }, '.fn'),
    key('0', () => { target.value += '0'; }),
    key('确定', () => {
      if (target === el.input) {
        const v = el.input.value.trim();
        el.input.value = '';
        if (v) userText(/^\d+$/.test(v) ? prefix + v : v);
      } else {
        el.fields.requestSubmit();
      }
      show(el.keypad, false);
    }, '.ok'));
  show(el.keypad, true);
  el.keypadToggle.setAttribute('aria-pressed', 'true');
}

function resetModes() {
  document.body.classList.remove('elder', 'contrast');
  el.elder.setAttribute('aria-pressed', 'false');
  el.contrast.setAttribute('aria-pressed', 'false');
}

// ---------------------------------------------------------------------------------------
// Voice: push-to-talk and hands-free.

function voiceRefused(err) {
  state.voiceOff = true;
  el.mic.disabled = true;
  el.handsfree.disabled = true;
  stopHandsFree();
  const denied = err && (err.name === 'NotAllowedError' || err.name === 'SecurityError');
  notice(denied ? '没有获得麦克风权限，已切换为触屏操作，请点选或输入。' : '麦克风无法使用，已切换为触屏操作，请点选或输入。', 0);
  setStatus('请点选或输入');
}

let framesSent = 0;
voice.onFrame = (pcm) => {
  if (state.streaming && state.ws && state.ws.readyState === WebSocket.OPEN) {
    state.ws.send(pcm);
    framesSent += 1;
    el.mic.dataset.frames = String(framesSent); // for diagnostics: frames sent so far
  }
};
voice.onPlaying = (on) => {
  if (!on) avatar.stopTalking();
  // Diagnostics for support staff and tests: is speech coming out, and does the mouth move?
  document.body.dataset.speechFrames = String(voice.framesPlayed);
  if (on) setStatus('小安正在说话', '');
  else if (!state.busy && !state.capturing) setStatus('请说或点选');
};

async function beginUtterance() {
  if (state.voiceOff || state.capturing) return;
  state.capturing = true;
  el.mic.classList.add('active');
  setStatus('正在聆听', 'listening');
  voice.stop(undefined, false); // barge-in: the customer speaks over the bot
  try {
    await voice.startCapture();
  } catch (err) {
    state.capturing = false;
    el.mic.classList.remove('active');
    voiceRefused(err);
    return;
  }
  if (!state.capturing) {
    await voice.stopCapture();
    return;
  }
  send({ type: 'audio.start', sample_rate: 16000 });
  state.streaming = true;
}

async function endUtterance(submit = true) {
  if (!state.capturing) return;
  state.capturing = false;
  el.mic.classList.remove('active');
  await voice.stopCapture();
  if (state.streaming) {
    state.streaming = false;
    if (submit && state.ws && state.ws.readyState === WebSocket.OPEN) {
      state.ws.send(JSON.stringify({ type: 'audio.end' }));
      busy(true);
      return;
    }
  }
  setStatus('请说或点选');
}

function stopHandsFree() {
  if (!state.handsFree) return;
  state.handsFree = false;
  el.handsfree.setAttribute('aria-pressed', 'false');
  endUtterance(true);
}

el.mic.addEventListener('pointerdown', (e) => {
  e.preventDefault();
  if (state.handsFree) return;
  try {
    el.mic.setPointerCapture(e.pointerId); // keep listening if the finger slides off
  } catch (_) { /* not a real pointer */ }
  beginUtterance();
});
for (const ev of ['pointerup', 'pointercancel']) {
  el.mic.addEventListener(ev, () => {
    if (!state.handsFree) endUtterance(true);
  });
}
el.mic.addEventListener('keydown', (e) => {
  if ((e.key === ' ' || e.key === 'Enter') && !e.repeat && !state.handsFree) beginUtterance();
});
el.mic.addEventListener('keyup', (e) => {
  if ((e.key === ' ' || e.key === 'Enter') && !state.handsFree) endUtterance(true);
});
el.handsfree.addEventListener('click', () => {
  if (state.handsFree) {
    stopHandsFree();
    return;
  }
  if (state.voiceOff) {
    notice('语音暂不可用，请点选或输入。');
    return;
  }
  state.handsFree = true;
  el.handsfree.setAttribute('aria-pressed', 'true');
  beginUtterance();
});

// ---------------------------------------------------------------------------------------
// Buttons, text box, clock.

el.form.addEventListener('submit', (e) => {
  e.preventDefault();
  const v = el.input.value;
  el.input.value = '';
  show(el.keypad, false);
  userText(v);
});
el.keypadToggle.addEventListener('click', () => {
  if (el.keypad.hidden) openKeypad();
  else {
    show(el.keypad, false);
    el.keypadToggle.setAttribute('aria-pressed', 'false');
  }
});
el.elder.addEventListener('click', () => {
  const on = document.body.classList.toggle('elder');
  stickToBottom();
  el.elder.setAttribute('aria-pressed', String(on));
  notice(on ? '已开启长辈模式：字更大，说话更慢。' : '已关闭长辈模式。', 4000);
  reconnectNow(); // the server picks the slower voice from the `elder` capability
});
el.contrast.addEventListener('click', () => {
  const on = document.body.classList.toggle('contrast');
  stickToBottom();
  el.contrast.setAttribute('aria-pressed', String(on));
});
el.end.addEventListener('click', () => {
  send({ type: 'session.close', reason: 'customer_left' });
});
window.addEventListener('online', () => {
  if (!state.ws && !state.halted) {
    state.backoff = 0;
    connect();
  }
});
window.addEventListener('pagehide', hideSensitive);
// Keep the newest caption in view when the layout changes (rotation, elder mode, a panel).
const stickToBottom = () => requestAnimationFrame(() => {
  el.captions.scrollTop = el.captions.scrollHeight;
});
window.addEventListener('resize', stickToBottom);
if (window.ResizeObserver) new ResizeObserver(stickToBottom).observe(el.captions);

function tick() {
  el.clock.textContent = clock(Date.now());
}
tick();
setInterval(tick, 10000);

// ---------------------------------------------------------------------------------------
// Start.

if (!Voice.canCapture()) {
  state.voiceOff = true;
  el.mic.disabled = true;
  el.handsfree.disabled = true;
}
state.identity = readIdentity();
if (state.identity) connect();
else setupForm('');
