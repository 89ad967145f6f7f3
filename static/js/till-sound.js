// The till's optional sound (off by default): a short high beep for done, a low buzz for refused.
const SOUND_STORE = "treu.till.sound";
let audio = null;

export function soundOn() {
  return localStorage.getItem(SOUND_STORE) === "on";
}

/** Switch the sound on or off; returns whether it is on now. */
export function toggleSound() {
  const on = !soundOn();
  localStorage.setItem(SOUND_STORE, on ? "on" : "off");
  return on;
}

export function beep(ok) {
  if (!soundOn()) return;
  try {
    // Created on first use: browsers allow audio only after a tap, and the toggle is one.
    audio = audio || new AudioContext();
    const tones = ok ? [[1046, 0, 0.09]] : [[220, 0, 0.14], [196, 0.18, 0.2]];
    for (const [frequency, start, length] of tones) {
      const oscillator = audio.createOscillator();
      const gain = audio.createGain();
      oscillator.frequency.value = frequency;
      oscillator.type = ok ? "sine" : "square";
      gain.gain.value = ok ? 0.25 : 0.08;
      oscillator.connect(gain).connect(audio.destination);
      oscillator.start(audio.currentTime + start);
      oscillator.stop(audio.currentTime + start + length);
    }
  } catch {
    /* no audio on this device: the colours say the same */
  }
}
