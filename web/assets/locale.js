// Dates and times as the branch reads them, whatever the browser's own language or zone:
// Chinese formats (2026-12-03 14:05, 12月3日 14:05, 2026年12月3日), a 24-hour clock, in the
// branch's time zone (`[branch] time_zone`, from GET /v1/locale; Asia/Shanghai until it
// answers or when it cannot). Every time a page shows goes through here.

/** The default branch time zone (docs/operations.md). */
export const DEFAULT_TIME_ZONE = 'Asia/Shanghai';

function validZone(zone) {
  if (typeof zone !== 'string' || !zone) return false;
  try {
    new Intl.DateTimeFormat('zh-CN', { timeZone: zone });
    return true;
  } catch (_) {
    return false;
  }
}

/** The branch's IANA time zone. */
export let TIME_ZONE = DEFAULT_TIME_ZONE;
try {
  const r = await fetch('/v1/locale', { signal: AbortSignal.timeout(3000) });
  if (r.ok) {
    const j = await r.json();
    if (validZone(j.time_zone)) TIME_ZONE = j.time_zone;
  }
} catch (_) {
  // Offline or an old server: the default zone.
}

let formatter = null;
let formatterZone = '';
// hourCycle h23 (not hour12: false, which some engines render as 24:05 after midnight).
function fmt() {
  if (formatterZone !== TIME_ZONE) {
    formatter = new Intl.DateTimeFormat('zh-CN', {
      timeZone: TIME_ZONE, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit',
      hour: '2-digit', minute: '2-digit', second: '2-digit',
    });
    formatterZone = TIME_ZONE;
  }
  return formatter;
}

/** The branch's wall clock at `ms` (UTC milliseconds): numbers. */
export function wall(ms) {
  const out = {};
  for (const p of fmt().formatToParts(new Date(ms))) {
    if (p.type !== 'literal') out[p.type] = Number(p.value);
  }
  if (out.hour === 24) out.hour = 0;
  return out;
}

const p2 = (n) => String(n).padStart(2, '0');

/** `YYYY-MM-DD HH:mm` in branch time; empty for no time. */
export function when(ms) {
  if (!ms && ms !== 0) return '';
  const w = wall(ms);
  return `${w.year}-${p2(w.month)}-${p2(w.day)} ${p2(w.hour)}:${p2(w.minute)}`;
}

/** `M月D日 HH:mm` in branch time (the kiosk's clock). */
export function clock(ms) {
  const w = wall(ms);
  return `${w.month}月${w.day}日 ${p2(w.hour)}:${p2(w.minute)}`;
}

/** `YYYY年M月D日 HH:mm` in branch time (a date-time said in full). */
export function longWhen(ms) {
  const w = wall(ms);
  return `${w.year}年${w.month}月${w.day}日 ${p2(w.hour)}:${p2(w.minute)}`;
}

/** Whether `text` is a real date written `YYYY-MM-DD`. */
export function isDate(text) {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text);
  if (!m) return false;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const t = new Date(Date.UTC(y, mo - 1, d));
  return t.getUTCFullYear() === y && t.getUTCMonth() === mo - 1 && t.getUTCDate() === d;
}

/** Whether `text` is a 24-hour time written `HH:mm`. */
export function isTime(text) {
  return /^([01]\d|2[0-3]):[0-5]\d$/.test(text);
}

/**
 * The UTC milliseconds of a branch wall time (`YYYY-MM-DD`, `HH:mm`), or null when either is
 * not well formed.
 */
export function fromWall(date, time) {
  if (!isDate(date) || !isTime(time)) return null;
  const [y, mo, d] = date.split('-').map(Number);
  const [hh, mm] = time.split(':').map(Number);
  const guess = Date.UTC(y, mo - 1, d, hh, mm);
  const offset = (t) => {
    const w = wall(t);
    return Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute, w.second) - Math.floor(t / 1000) * 1000;
  };
  // Twice, so a guess on the other side of a daylight-saving change settles.
  let t = guess - offset(guess);
  t = guess - offset(t);
  return t;
}
