// Speech in and out for the kiosk.
//  - Playback: `bot.audio {turn_id, sample_rate}` then binary PCM16 LE mono frames, then
//    `bot.audio_end`; frames are scheduled back to back on one AudioContext and pass an
//    AnalyserNode whose loudness moves the avatar's mouth. `bot.stop` stops at once.
//  - Capture: getUserMedia → AudioWorklet (mic-worklet.js) → 16 kHz PCM16 LE frames of
//    ≤ 100 ms (3,200 bytes), handed to `onFrame`.

export class Voice {
  constructor() {
    this.ctx = null;
    this.analyser = null;
    this.sources = [];
    this.turn = null; // {id, rate, next, interruptible}
    this.data = null;
    this.mic = null; // {stream, node, source}
    this.onFrame = () => {};
    this.onPlaying = () => {};
    this.micLevel = 0;
    this.framesPlayed = 0; // diagnostics: speech frames scheduled so far
  }

  context() {
    if (!this.ctx) {
      const C = window.AudioContext || window.webkitAudioContext;
      if (!C) return null;
      this.ctx = new C();
      this.analyser = this.ctx.createAnalyser();
      this.analyser.fftSize = 512;
      this.analyser.connect(this.ctx.destination);
      this.data = new Uint8Array(this.analyser.fftSize);
    }
    if (this.ctx.state === 'suspended') this.ctx.resume().catch(() => {});
    return this.ctx;
  }

  static canPlay() {
    return !!(window.AudioContext || window.webkitAudioContext);
  }

  static canCapture() {
    return !!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia && window.AudioWorkletNode);
  }

  /** Loudness of what is playing now, 0..1. */
  level() {
    if (!this.analyser || this.sources.length === 0) return 0;
    this.analyser.getByteTimeDomainData(this.data);
    let sum = 0;
    for (let i = 0; i < this.data.length; i++) {
      const v = (this.data[i] - 128) / 128;
      sum += v * v;
    }
    return Math.min(1, Math.sqrt(sum / this.data.length) * 4);
  }

  playing() {
    return this.sources.length > 0;
  }

  begin(turnId, rate, interruptible) {
    const ctx = this.context();
    if (!ctx) return;
    this.stop();
    this.turn = { id: turnId, rate: rate || 16000, next: ctx.currentTime + 0.08, interruptible: interruptible !== false };
  }

  /** One binary frame of the current turn's speech. */
  frame(buf) {
    if (!this.turn || !this.ctx) return;
    const n = Math.floor(buf.byteLength / 2);
    if (n === 0) return;
    const view = new DataView(buf);
    const audio = this.ctx.createBuffer(1, n, this.turn.rate);
    const ch = audio.getChannelData(0);
    for (let i = 0; i < n; i++) ch[i] = view.getInt16(i * 2, true) / 32768;
    const src = this.ctx.createBufferSource();
    src.buffer = audio;
    src.connect(this.analyser);
    const at = Math.max(this.turn.next, this.ctx.currentTime + 0.02);
    src.start(at);
    this.turn.next = at + audio.duration;
    this.sources.push(src);
    this.framesPlayed += 1;
    if (this.sources.length === 1) this.onPlaying(true);
    src.onended = () => {
      this.sources = this.sources.filter((s) => s !== src);
      if (this.sources.length === 0) this.onPlaying(false);
    };
  }

  end() {
    // Nothing to do: the scheduled frames play out; onPlaying(false) follows the last one.
  }

  /** Stops the bot's speech now (barge-in). `force` also stops a non-interruptible clip. */
  stop(turnId, force = true) {
    if (turnId && this.turn && this.turn.id !== turnId) return;
    if (!force && this.turn && !this.turn.interruptible) return;
    for (const s of this.sources) {
      try {
        s.onended = null;
        s.stop();
      } catch (_) { /* already stopped */ }
    }
    const was = this.sources.length > 0;
    this.sources = [];
    if (was) this.onPlaying(false);
  }

  /** Opens the microphone; rejects with the browser's error (NotAllowedError when denied). */
  async startCapture() {
    if (!Voice.canCapture()) {
      const e = new Error('no microphone API');
      e.name = 'NotSupportedError';
      throw e;
    }
    if (this.mic) return;
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
    const ctx = this.context();
    await ctx.audioWorklet.addModule('/assets/mic-worklet.js');
    const source = ctx.createMediaStreamSource(stream);
    const node = new AudioWorkletNode(ctx, 'pcm16-capture');
    const mute = ctx.createGain();
    mute.gain.value = 0;
    source.connect(node);
    node.connect(mute);
    mute.connect(ctx.destination);
    node.port.onmessage = (e) => {
      this.micLevel = e.data.peak;
      this.onFrame(e.data.pcm);
    };
    this.mic = { stream, node, source, mute };
  }

  /** Flushes the last partial frame and closes the microphone. */
  async stopCapture() {
    const mic = this.mic;
    if (!mic) return;
    this.mic = null;
    mic.node.port.postMessage('flush');
    // Let the flushed frame arrive before we disconnect.
    await new Promise((r) => setTimeout(r, 30));
    mic.source.disconnect();
    mic.node.disconnect();
    mic.mute.disconnect();
    for (const t of mic.stream.getTracks()) t.stop();
    this.micLevel = 0;
  }
}
