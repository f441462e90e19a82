// The digital human 小安: blinking, a mouth driven by the loudness of the speech being
// played (or, without audio, a gentle "talking" motion while a line is shown), and gestures
// (greet, think, point). Idle breathing and sway are CSS animations (kiosk.css).

export class Avatar {
  constructor(svg) {
    this.svg = svg;
    this.mouth = svg.querySelector('#av-mouth');
    this.smile = svg.querySelector('#av-smile');
    this.open = 0;
    this.peak = 0;
    this.level = () => 0; // loudness of the speech being played, 0..1
    this.fakeUntil = 0;
    this.gestureTimer = null;
    this.current = '';
    this.scheduleBlink();
    requestAnimationFrame((t) => this.frame(t));
  }

  scheduleBlink() {
    const next = 2200 + Math.random() * 3800;
    setTimeout(() => {
      this.svg.classList.add('blink');
      setTimeout(() => this.svg.classList.remove('blink'), 130);
      this.scheduleBlink();
    }, next);
  }

  /** Talk without audio for about as long as reading `text` aloud would take. */
  mime(text) {
    const ms = Math.min(12000, 260 * Array.from(text || '').length);
    this.fakeUntil = performance.now() + ms;
  }

  stopTalking() {
    this.fakeUntil = 0;
  }

  frame(t) {
    let target = this.level();
    const fromAudio = target >= 0.02;
    if (target < 0.02 && t < this.fakeUntil) {
      target = 0.35 + 0.3 * Math.sin(t / 70) * Math.sin(t / 170);
    }
    target = Math.max(0, Math.min(1, target));
    // Open fast, close a little slower: looks like speech, not flicker.
    this.open += (target - this.open) * (target > this.open ? 0.6 : 0.3);
    const ry = 2 + this.open * 13;
    if (fromAudio && this.open > this.peak) {
      this.peak = this.open;
      this.svg.dataset.speechMouth = this.peak.toFixed(2); // diagnostics: speech opened the mouth this far
    }
    this.mouth.setAttribute('ry', ry.toFixed(2));
    this.mouth.setAttribute('rx', (15 - this.open * 3).toFixed(2));
    this.smile.setAttribute('opacity', this.open > 0.12 ? '0' : '1');
    requestAnimationFrame((n) => this.frame(n));
  }

  /** Shows a gesture: 'greet', 'think', 'point', or '' for none; `ms` ends it by itself. */
  gesture(name, ms = 0) {
    clearTimeout(this.gestureTimer);
    for (const g of ['greet', 'think', 'point']) this.svg.classList.toggle(g, g === name);
    this.current = name;
    if (ms > 0) this.gestureTimer = setTimeout(() => this.gesture(''), ms);
  }
}
