// AudioWorklet: the microphone at the context's rate → 16 kHz mono PCM16 little-endian,
// posted to the page in frames of 100 ms (1,600 samples = 3,200 bytes) or less.
class Pcm16Capture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.step = sampleRate / 16000;
    this.phase = 0;
    this.acc = 0;
    this.count = 0;
    this.frame = new DataView(new ArrayBuffer(3200));
    this.bytes = 0;
    this.peak = 0;
    this.port.onmessage = (e) => {
      if (e.data === 'flush') this.flush();
    };
  }

  flush() {
    if (this.bytes === 0) return;
    const out = this.frame.buffer.slice(0, this.bytes);
    this.port.postMessage({ pcm: out, peak: this.peak }, [out]);
    this.bytes = 0;
    this.peak = 0;
  }

  process(inputs) {
    const ch = inputs[0] && inputs[0][0];
    if (!ch) return true;
    for (let i = 0; i < ch.length; i++) {
      // Box filter + decimation: averages the samples that fall into one output sample.
      this.acc += ch[i];
      this.count++;
      this.phase += 1;
      if (this.phase >= this.step) {
        this.phase -= this.step;
        const v = Math.max(-1, Math.min(1, this.acc / this.count));
        this.acc = 0;
        this.count = 0;
        this.peak = Math.max(this.peak, Math.abs(v));
        this.frame.setInt16(this.bytes, v < 0 ? v * 0x8000 : v * 0x7fff, true);
        this.bytes += 2;
        if (this.bytes === 3200) this.flush();
      }
    }
    return true;
  }
}
registerProcessor('pcm16-capture', Pcm16Capture);
