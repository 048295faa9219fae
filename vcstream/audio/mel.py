"""The synthesis-domain mel spectrogram: HiFi-GAN's own convention, exactly.

22050 Hz; STFT n_fft 1024, hop 256, Hann window 1024, reflect-padded by
(n_fft - hop) / 2 with center off; magnitude; 80 Slaney mel bands 0-8000 Hz;
natural log of clamp(x, 1e-5). A mel that differs silently ruins the vocoder.
"""

from __future__ import annotations

import numpy as np
import torch

from vcstream.audio.filters import mel_filterbank

SAMPLE_RATE_HZ = 22050
N_FFT = 1024
HOP = 256
WIN = 1024
N_MELS = 80
FMIN_HZ = 0.0
FMAX_HZ = 8000.0
LOG_FLOOR = 1e-5
SILENCE_LOG_MEL = float(np.log(LOG_FLOOR))  # value of a mel band with no energy


class MelSpectrogram(torch.nn.Module):
    """Audio ``[B, samples]`` (or ``[samples]``) to log-mel ``[B, 80, frames]``."""

    def __init__(self) -> None:
        super().__init__()
        basis = torch.from_numpy(mel_filterbank(SAMPLE_RATE_HZ, N_FFT, N_MELS, FMIN_HZ, FMAX_HZ))
        self.register_buffer("mel_basis", basis, persistent=False)
        self.register_buffer("window", torch.hann_window(WIN), persistent=False)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        squeeze = audio.dim() == 1
        x = audio.unsqueeze(0) if squeeze else audio
        pad = (N_FFT - HOP) // 2
        if x.shape[-1] < HOP:  # not one frame's worth of samples: no frame
            empty = x.new_zeros((x.shape[0], N_MELS, 0))
            return empty.squeeze(0) if squeeze else empty
        # Reflection needs more samples than the padding; a shorter clip (a click, one
        # syllable trimmed) is padded with silence instead of failing.
        mode = "reflect" if x.shape[-1] > pad else "constant"
        x = torch.nn.functional.pad(x.unsqueeze(1), (pad, pad), mode=mode).squeeze(1)
        spec = torch.stft(
            x,
            N_FFT,
            hop_length=HOP,
            win_length=WIN,
            window=self.window,
            center=False,
            pad_mode="reflect",
            normalized=False,
            onesided=True,
            return_complex=True,
        )
        mag = torch.sqrt(spec.real.pow(2) + spec.imag.pow(2) + 1e-9)
        mel = torch.log(torch.clamp(torch.matmul(self.mel_basis, mag), min=LOG_FLOOR))
        return mel.squeeze(0) if squeeze else mel


_DEFAULT: MelSpectrogram | None = None


def mel_spectrogram(audio: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Log-mel ``[80, frames]`` of 22050 Hz float audio, on the CPU."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = MelSpectrogram()
    x = (
        torch.as_tensor(np.asarray(audio, dtype=np.float32))
        if not torch.is_tensor(audio)
        else audio
    )
    with torch.inference_mode():
        return _DEFAULT(x.float())
