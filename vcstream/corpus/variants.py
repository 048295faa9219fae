"""New speakers from old: pitch and formant shifts of a rendered voice.

Method (our own DSP, numpy + torch STFT), chosen for being simple and predictable:

1. Pitch: a phase vocoder stretches the signal in time by ``r = 2**(semitones/12)``
   (identity phase locking around spectral peaks keeps partials coherent and reduces the
   "phasiness" of a plain vocoder); resampling it back to the original length multiplies
   every frequency by ``r``. Pitch and formants have now both moved by ``r``.
2. Formants: per STFT frame, the spectral envelopes of the original and of the shifted
   signal are estimated by cepstral smoothing (low-quefrency lifter). The shifted frame is
   multiplied by ``E_orig(f / q) / E_shifted(f)``: its envelope is replaced by the original
   one warped by the formant factor ``q`` (q > 1: shorter vocal tract, brighter voice).

Pitch and timbre are thus set independently. Weaknesses, stated honestly: cepstral envelopes
are smeared for very high voices, the phase vocoder softens transients, and shifts beyond
about +-7 semitones sound processed. The variants widen the range of F0 and timbre the model
sees; they are not new human voices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from vcstream.audio.io import resample

N_FFT = 1024
HOP = 128  # 87.5 % overlap: the phase vocoder needs dense frames
LIFTER = 32  # cepstral bins kept: below the shortest pitch period (~55 samples at 400 Hz)
MAX_GAIN = 100.0  # +-40 dB: enough to move a sharp formant peak into a former valley
ENVELOPE_PASSES = 2


@dataclass(frozen=True)
class Variant:
    name: str
    semitones: float
    formant: float  # frequency scale of the spectral envelope

    @property
    def identity(self) -> bool:
        return self.semitones == 0.0 and self.formant == 1.0


# Per voice: the original plus five shifted speakers. Pitch and formant shifts are partly
# decoupled (f_up, f_down) so the model cannot read one from the other; "cross" moves a male
# voice towards a female range and the reverse.
def default_variants(sex: str) -> list[Variant]:
    cross = Variant("cross", 6.0, 1.12) if sex == "male" else Variant("cross", -6.0, 0.89)
    return [
        Variant("base", 0.0, 1.0),
        Variant("down3", -3.0, 0.94),
        Variant("up3", 3.0, 1.06),
        Variant("fup", 1.0, 1.10),
        Variant("fdown", -1.0, 0.91),
        cross,
    ]


def _stft(x: torch.Tensor) -> torch.Tensor:
    return torch.stft(
        x, N_FFT, HOP, window=torch.hann_window(N_FFT, dtype=x.dtype), return_complex=True
    )


def _istft(spec: torch.Tensor, length: int) -> torch.Tensor:
    return torch.istft(
        spec, N_FFT, HOP, window=torch.hann_window(N_FFT, dtype=torch.float64), length=length
    )


def time_stretch(audio: np.ndarray, rate: float) -> np.ndarray:
    """Phase-vocoder stretch: output is ``rate`` times as long, pitch unchanged."""
    x = torch.from_numpy(np.asarray(audio, dtype=np.float64))
    spec = _stft(x)  # [bins, frames]
    n_bins, n_frames = spec.shape
    mag, phase = spec.abs(), spec.angle()
    steps = torch.arange(0, n_frames - 1, 1.0 / rate, dtype=torch.float64)
    i0 = steps.floor().long()
    frac = steps - i0
    out_mag = (1 - frac) * mag[:, i0] + frac * mag[:, i0 + 1]
    # Phase advance per hop, with the deviation from each bin's expected advance wrapped.
    omega = 2 * np.pi * HOP * torch.arange(n_bins, dtype=torch.float64) / N_FFT
    dphi = phase[:, 1:] - phase[:, :-1] - omega[:, None]
    dphi = dphi - 2 * np.pi * torch.round(dphi / (2 * np.pi))
    advance = omega[:, None] + dphi[:, i0]
    acc = torch.cumsum(torch.cat([phase[:, :1], advance[:, :-1]], dim=1), dim=1)
    acc = _lock_phases(out_mag, acc, phase[:, i0])
    out = torch.polar(out_mag, acc)
    length = round(len(audio) * rate)
    return _istft(out, length).numpy().astype(np.float32)


def _lock_phases(mag: torch.Tensor, acc: torch.Tensor, orig: torch.Tensor) -> torch.Tensor:
    """Identity phase locking: each bin keeps its analysis phase offset to its region's peak."""
    n_bins = mag.shape[0]
    left = torch.cat([mag[:1] - 1, mag[:-1]])
    right = torch.cat([mag[1:], mag[-1:] - 1])
    is_peak = (mag >= left) & (mag > right)
    idx = torch.arange(n_bins).unsqueeze(1).expand_as(mag)
    big = n_bins * 4
    # Nearest peak at or below / at or above each bin (running max / reversed running min).
    below = torch.where(is_peak, idx, torch.full_like(idx, -big)).cummax(dim=0).values
    above_r = torch.where(is_peak, idx, torch.full_like(idx, big)).flip(0).cummin(dim=0).values
    above = above_r.flip(0)
    peak = torch.where((idx - below) <= (above - idx), below, above).clamp(0, n_bins - 1)
    has_peak = is_peak.any(dim=0, keepdim=True)
    locked = acc.gather(0, peak) + orig - orig.gather(0, peak)
    return torch.where(has_peak, locked, acc)


def _envelope(log_mag: torch.Tensor) -> torch.Tensor:
    """Cepstrally smoothed log-magnitude envelope, per frame: [bins, frames]."""
    cep = torch.fft.irfft(log_mag, n=N_FFT, dim=0)
    lifter = torch.zeros(N_FFT, dtype=cep.dtype)
    lifter[:LIFTER] = 1.0
    lifter[-LIFTER + 1 :] = 1.0
    return torch.fft.rfft(cep * lifter[:, None], dim=0).real


def _warp(env: torch.Tensor, factor: float) -> torch.Tensor:
    """``env(f / factor)`` by linear interpolation along frequency (edge value beyond)."""
    n_bins = env.shape[0]
    src = torch.arange(n_bins, dtype=torch.float64) / factor
    src = src.clamp(0, n_bins - 1)
    lo = src.floor().long().clamp(max=n_bins - 2)
    frac = (src - lo)[:, None]
    return (1 - frac) * env[lo] + frac * env[lo + 1]


def pitch_formant_shift(
    audio: np.ndarray, sample_rate_hz: int, semitones: float, formant: float
) -> np.ndarray:
    """Shift pitch by ``semitones`` and the spectral envelope by ``formant``; same length."""
    x = np.asarray(audio, dtype=np.float32)
    if semitones == 0.0 and formant == 1.0:
        return x.copy()
    r = 2.0 ** (semitones / 12.0)
    shifted = x
    if semitones != 0.0:
        stretched = time_stretch(x, r)
        # Playing the r-times-longer signal r-times faster raises every frequency by r.
        shifted = resample(stretched, round(sample_rate_hz * r), sample_rate_hz)
        shifted = _fit_length(shifted, len(x))
    spec_x = _stft(torch.from_numpy(x.astype(np.float64)))
    target = _warp(_envelope(torch.log(spec_x.abs() + 1e-7)), formant)
    y = torch.from_numpy(shifted.astype(np.float64))
    # The envelope of a corrected frame only approaches the target (the STFT round trip
    # smears it), so the correction is applied twice, each time to the re-analysed result.
    for _ in range(ENVELOPE_PASSES):
        spec_y = _stft(y)
        env_y = _envelope(torch.log(spec_y.abs() + 1e-7))
        gain = torch.exp(target - env_y).clamp(1.0 / MAX_GAIN, MAX_GAIN)
        y = _istft(spec_y * gain, len(x))
    return y.numpy().astype(np.float32)


def _fit_length(x: np.ndarray, n: int) -> np.ndarray:
    if len(x) >= n:
        return x[:n]
    return np.pad(x, (0, n - len(x)))


def apply_variant(audio: np.ndarray, sample_rate_hz: int, variant: Variant) -> np.ndarray:
    return pitch_formant_shift(audio, sample_rate_hz, variant.semitones, variant.formant)
