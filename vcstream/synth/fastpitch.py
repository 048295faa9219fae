"""Our synthesiser: a FastPitch-style non-autoregressive acoustic model, conditioned on a
GE2E speaker embedding and on the speaker's log-F0 statistics.

    phoneme ids ─► embedding ─(+ speaker)─► FFT encoder ─┬─► duration predictor
                                                          ├─► pitch predictor  (z-score per speaker)
                                                          └─► energy predictor
    encoder out + pitch emb + energy emb ─► length regulator ─(+ speaker)─► FFT decoder ─► mel

Pitch is predicted in speaker-normalised units, ``z = (log f0 - mean) / std``; the absolute
contour ``mean + std * z`` (plus any shift) is what the decoder hears. The speaker's
``mean``/``std`` come from the live microphone when the caller has them
(``VoiceConditioning.log_f0_mean/std``), else from a small head that predicts them from the
embedding. Alignment is learned in training (``vcstream.synth.align``): an aligner scores
mel frames against phoneme embeddings over a beta-binomial prior, and monotonic alignment
search turns that into the durations the length regulator uses.
"""

from __future__ import annotations

import copy
import hashlib
import math
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vcstream.audio.mel import N_MELS
from vcstream.errors import InputError, ModelMissingError, UnknownPhonemesError
from vcstream.synth.align import beta_binomial_prior, maximum_path
from vcstream.synth.base import AdaptedParams, SynthControls, VoiceConditioning
from vcstream.synth.variance import SpreadRestorer
from vcstream.weights import read_checkpoint

CHECKPOINT_FORMAT = "vcstream-fastpitch"
CHECKPOINT_VERSION = 1
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent.parent / "assets" / "fastpitch.pt"
MAX_PHONEME_FRAMES = 60  # a predicted duration beyond 0.7 s per symbol is an error
# Models with adapted parameters kept ready (a copy of the model each, ~30 MB): the
# least recently used is dropped beyond this many, and rebuilt (tens of ms) if needed again.
ADAPTED_MODELS_KEPT = 4
# A symbol counts as voiced when this share of its frames is (YIN is strict: low, creaky
# voices such as Piper joe come out mostly unvoiced at its default threshold).
VOICED_FRACTION = 0.25


@dataclass
class Normalisation:
    """Data statistics the model is trained in; stored in the checkpoint."""

    mel_mean: float = -5.5
    mel_std: float = 2.2
    log_f0_mean: float = math.log(150.0)  # global, for the pitch embedding's input scale
    log_f0_std: float = 0.35
    energy_mean: float = -3.0  # frame energy: mean over bands of the log-mel
    energy_std: float = 1.5


@dataclass
class FastPitchConfig:
    n_symbols: int
    d_model: int = 192
    n_heads: int = 2
    enc_layers: int = 4
    dec_layers: int = 4
    ff_dim: int = 768
    ff_kernel: int = 3
    dropout: float = 0.1
    predictor_dim: int = 256
    predictor_kernel: int = 3
    predictor_dropout: float = 0.2
    speaker_dim: int = 256
    n_mels: int = N_MELS
    align_dim: int = 80
    # FastPitch's 0.0005 assumes raw log-mel queries (squared distances in the thousands);
    # our queries and keys are unit-scale features, so distances start around 1-10 and a
    # larger factor is needed for the aligner to move off the prior (0.5 learnt fastest of
    # 0.0005 / 0.005 / 0.05 / 0.5 in a short comparison on a small corpus).
    align_temperature: float = 0.5
    prior_scaling: float = 1.0
    norm: Normalisation = field(default_factory=Normalisation)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FastPitchConfig:
        d = dict(data)
        d["norm"] = Normalisation(**d.get("norm", {}))
        return cls(**d)


def sequence_mask(lengths: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """``[B, T]`` True where the position is inside the sequence."""
    t = int(lengths.max()) if max_len is None else max_len
    return torch.arange(t, device=lengths.device)[None, :] < lengths[:, None]


def sinusoids(length: int, dim: int, device: torch.device) -> torch.Tensor:
    pos = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    inv = torch.exp(
        torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim)
    )
    pe = torch.zeros(length, dim, device=device)
    pe[:, 0::2] = torch.sin(pos * inv)
    pe[:, 1::2] = torch.cos(pos * inv)
    return pe


class FFTBlock(nn.Module):
    """Pre-norm transformer block whose feed-forward part is a 1-D convolution."""

    def __init__(self, d: int, heads: int, ff: int, kernel: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.norm2 = nn.LayerNorm(d)
        self.conv1 = nn.Conv1d(d, ff, kernel, padding=kernel // 2)
        self.conv2 = nn.Conv1d(ff, d, 1)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # mask: [B, T] True on valid positions
        h = self.norm1(x)
        # No padding mask when nothing is padded (inference): the faster attention kernel.
        pad = None if bool(mask.all()) else ~mask
        h, _ = self.attn(h, h, h, key_padding_mask=pad, need_weights=False)
        x = (x + self.drop(h)) * mask[..., None]
        h = self.norm2(x).transpose(1, 2)
        h = self.conv2(F.relu(self.conv1(h))).transpose(1, 2)
        return (x + self.drop(h)) * mask[..., None]


class FFTStack(nn.Module):
    def __init__(self, cfg: FastPitchConfig, layers: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            FFTBlock(cfg.d_model, cfg.n_heads, cfg.ff_dim, cfg.ff_kernel, cfg.dropout)
            for _ in range(layers)
        )
        self.norm = nn.LayerNorm(cfg.d_model)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = (x + sinusoids(x.shape[1], x.shape[2], x.device)[None]) * mask[..., None]
        for block in self.blocks:
            x = block(x, mask)
        return self.norm(x) * mask[..., None]


class VariancePredictor(nn.Module):
    """Two conv layers with layer norm, then one value per position."""

    def __init__(self, d: int, hidden: int, kernel: int, dropout: float) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(d, hidden, kernel, padding=kernel // 2)
        self.norm1 = nn.LayerNorm(hidden)
        self.conv2 = nn.Conv1d(hidden, hidden, kernel, padding=kernel // 2)
        self.norm2 = nn.LayerNorm(hidden)
        self.out = nn.Linear(hidden, 1)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.conv1((x * mask[..., None]).transpose(1, 2))).transpose(1, 2)
        h = self.drop(self.norm1(h))
        h = F.relu(self.conv2((h * mask[..., None]).transpose(1, 2))).transpose(1, 2)
        h = self.drop(self.norm2(h))
        return self.out(h).squeeze(-1) * mask


class Aligner(nn.Module):
    """Scores mel frames (queries) against phoneme embeddings (keys): ``[B, M, N]``."""

    def __init__(self, cfg: FastPitchConfig) -> None:
        super().__init__()
        d, a = cfg.d_model, cfg.align_dim
        self.key = nn.Sequential(
            nn.Conv1d(d, 2 * d, 3, padding=1), nn.ReLU(), nn.Conv1d(2 * d, a, 1)
        )
        self.query = nn.Sequential(
            nn.Conv1d(cfg.n_mels, 2 * cfg.n_mels, 3, padding=1),
            nn.ReLU(),
            nn.Conv1d(2 * cfg.n_mels, cfg.n_mels, 1),
            nn.ReLU(),
            nn.Conv1d(cfg.n_mels, a, 1),
        )
        self.temperature = cfg.align_temperature

    def forward(
        self,
        mel: torch.Tensor,  # [B, n_mels, M] normalised
        keys: torch.Tensor,  # [B, N, d]
        text_mask: torch.Tensor,  # [B, N]
        log_prior: torch.Tensor,  # [B, M, N]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        k = self.key(keys.transpose(1, 2)).float()  # [B, a, N]
        q = self.query(mel).float()  # [B, a, M]
        # Squared distances [B, M, N] via ||q||^2 + ||k||^2 - 2 q.k: no [B, a, M, N] tensor.
        # Always in float32: under bfloat16 autocast the difference of large terms would
        # cancel to noise and the alignment would wander.
        with torch.autocast(device_type=q.device.type, enabled=False):
            qq = q.pow(2).sum(1)[:, :, None]
            kk = k.pow(2).sum(1)[:, None, :]
            dist = (qq + kk - 2 * torch.bmm(q.transpose(1, 2), k)).clamp(min=0)
        scores = -self.temperature * dist
        logp = F.log_softmax(scores.masked_fill(~text_mask[:, None, :], -1e9), dim=-1) + log_prior
        logp = logp.masked_fill(~text_mask[:, None, :], -1e9)
        soft = torch.softmax(logp, dim=-1)
        return logp, soft


@dataclass
class Targets:
    """A padded training batch (all tensors on one device)."""

    ids: torch.Tensor  # [B, N] long
    text_lens: torch.Tensor  # [B]
    mel: torch.Tensor  # [B, n_mels, M] log-mel (not normalised)
    mel_lens: torch.Tensor  # [B]
    log_f0: torch.Tensor  # [B, M] natural log of Hz, 0 where unvoiced
    voiced: torch.Tensor  # [B, M] bool
    embedding: torch.Tensor  # [B, 256]
    speaker_log_f0: torch.Tensor  # [B, 2]: mean and std of the speaker's log F0


def average_over_durations(
    values: torch.Tensor, weights: torch.Tensor, durations: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-phoneme weighted mean of frame ``values [B, M]`` (weights 0/1 ``[B, M]``) over
    consecutive segments of ``durations [B, N]`` frames; also the weight fraction."""
    ends = durations.cumsum(1)
    starts = ends - durations
    m = values.shape[1]
    vc = F.pad((values * weights).cumsum(1), (1, 0))
    wc = F.pad(weights.cumsum(1), (1, 0))
    e, s = ends.clamp(max=m), starts.clamp(max=m)
    total = vc.gather(1, e) - vc.gather(1, s)
    count = wc.gather(1, e) - wc.gather(1, s)
    mean = torch.where(count > 0, total / count.clamp(min=1e-6), torch.zeros_like(total))
    frac = torch.where(durations > 0, count / durations.clamp(min=1), torch.zeros_like(count))
    return mean, frac


def regulate_length(x: torch.Tensor, durations: torch.Tensor, max_len: int | None = None):
    """Repeat each position ``durations`` times: ``[B, N, d]`` to ``[B, M, d]`` + lengths."""
    lens = durations.sum(1)
    m = int(lens.max()) if max_len is None else max_len
    m = max(m, 1)
    ends = durations.cumsum(1)  # [B, N]
    frames = torch.arange(m, device=x.device)[None, :, None]  # [1, M, 1]
    # Frame f belongs to the first phoneme whose end exceeds f.
    idx = (frames >= ends[:, None, :]).sum(-1).clamp(max=x.shape[1] - 1)  # [B, M]
    out = x.gather(1, idx[..., None].expand(-1, -1, x.shape[2]))
    mask = sequence_mask(lens, m)
    return out * mask[..., None], lens


class FastPitch(nn.Module):
    def __init__(self, cfg: FastPitchConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.symbols = nn.Embedding(cfg.n_symbols, d)
        self.speaker = nn.Linear(cfg.speaker_dim, d)
        self.encoder = FFTStack(cfg, cfg.enc_layers)
        pk, ph, pdrop = cfg.predictor_kernel, cfg.predictor_dim, cfg.predictor_dropout
        self.duration = VariancePredictor(d, ph, pk, pdrop)
        self.pitch = VariancePredictor(d, ph, pk, pdrop)
        self.energy = VariancePredictor(d, ph, pk, pdrop)
        self.pitch_emb = nn.Conv1d(1, d, 3, padding=1)
        self.energy_emb = nn.Conv1d(1, d, 3, padding=1)
        self.decoder = FFTStack(cfg, cfg.dec_layers)
        self.to_mel = nn.Linear(d, cfg.n_mels)
        self.aligner = Aligner(cfg)
        # log F0 mean and log std of the speaker, from the embedding (used without a mic)
        self.pitch_stats = nn.Sequential(
            nn.Linear(cfg.speaker_dim, 128), nn.ReLU(), nn.Linear(128, 2)
        )

    # --- shared pieces -----------------------------------------------------------------

    def encode(self, ids: torch.Tensor, text_mask: torch.Tensor, embedding: torch.Tensor):
        emb = self.symbols(ids) * text_mask[..., None]
        spk = self.speaker(embedding)[:, None, :]
        enc = self.encoder(emb + spk, text_mask)
        return emb, enc + spk, spk

    def predict_speaker_log_f0(self, embedding: torch.Tensor) -> torch.Tensor:
        """``[B, 2]``: predicted mean and std of the speaker's natural-log F0."""
        out = self.pitch_stats(embedding).float()  # absolute log F0 needs float32 steps
        n = self.cfg.norm
        mean = n.log_f0_mean + n.log_f0_std * out[:, 0]
        std = torch.exp(out[:, 1]).clamp(0.02, 1.0) * n.log_f0_std
        return torch.stack([mean, std], dim=1)

    def _embed_variances(
        self, log_f0: torch.Tensor, energy: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        n = self.cfg.norm
        p = ((log_f0 - n.log_f0_mean) / n.log_f0_std * mask)[:, None, :]
        e = (energy * mask)[:, None, :]
        return (self.pitch_emb(p) + self.energy_emb(e)).transpose(1, 2)

    def frame_pitch_deviation(
        self,
        log_f0: torch.Tensor,  # [B, M] natural log of Hz per frame, 0 where unvoiced
        voiced: torch.Tensor,  # [B, M] bool
        abs_log_f0: torch.Tensor,  # [B, N] what the pitch embedding hears per symbol
        durations: torch.Tensor,  # [B, N]
    ) -> torch.Tensor:
        """``[B, M]``: each voiced frame's log F0 less its symbol's, in the pitch
        embedding's input units (0 where unvoiced; within an octave either way, so that a
        tracker's octave error stays small)."""
        m = log_f0.shape[1]
        per_frame, _ = regulate_length(abs_log_f0[..., None], durations, m)
        dev = torch.where(voiced, log_f0 - per_frame[..., 0], torch.zeros_like(log_f0))
        octave = math.log(2.0)
        return dev.clamp(-octave, octave) / self.cfg.norm.log_f0_std

    def _decode(
        self,
        x: torch.Tensor,
        durations: torch.Tensor,
        spk: torch.Tensor,
        max_len=None,
        pitch_deviation: torch.Tensor | None = None,
    ):
        frames, lens = regulate_length(x, durations, max_len)
        if pitch_deviation is not None:
            # The pitch embedding holds one pitch per symbol; the frames' own movement
            # within it is added along the direction a pitch change takes there (the
            # embedding is linear: the sum of its kernel taps). Zero deviation: as without.
            direction = self.pitch_emb.weight.sum(-1)[:, 0]  # [d]
            frames = frames + pitch_deviation[..., None].to(frames.dtype) * direction
        mask = sequence_mask(lens, frames.shape[1])
        out = self.to_mel(self.decoder(frames + spk, mask))  # normalised mel
        return out.transpose(1, 2), mask

    # --- training ----------------------------------------------------------------------

    def frame_energy(self, mel: torch.Tensor) -> torch.Tensor:
        """Normalised frame energy ``[B, M]`` of log-mel ``[B, n_mels, M]``."""
        n = self.cfg.norm
        return (mel.mean(1) - n.energy_mean) / n.energy_std

    def log_prior(self, text_lens: torch.Tensor, mel_lens: torch.Tensor, n: int, m: int):
        out = torch.full((len(text_lens), m, n), -1e9)
        for b, (tl, ml) in enumerate(zip(text_lens.tolist(), mel_lens.tolist(), strict=True)):
            prior = beta_binomial_prior(tl, ml, self.cfg.prior_scaling)
            out[b, :ml, :tl] = torch.log(prior + 1e-8)
        return out.to(text_lens.device)

    def forward(self, t: Targets) -> dict[str, torch.Tensor]:
        """Teacher-forced pass: predictions, targets and alignments for the losses."""
        n = self.cfg.norm
        text_mask = sequence_mask(t.text_lens, t.ids.shape[1])
        mel_mask = sequence_mask(t.mel_lens, t.mel.shape[2])
        mel_n = (t.mel - n.mel_mean) / n.mel_std * mel_mask[:, None, :]
        emb, enc, spk = self.encode(t.ids, text_mask, t.embedding)

        log_prior = self.log_prior(t.text_lens, t.mel_lens, t.ids.shape[1], t.mel.shape[2])
        attn_logp, attn_soft = self.aligner(mel_n, emb, text_mask, log_prior)
        with torch.no_grad():
            soft_masked = attn_soft.masked_fill(~mel_mask[:, :, None], 0.0)
            hard = maximum_path(torch.log(soft_masked + 1e-12), t.text_lens, t.mel_lens)
            hard = torch.from_numpy(hard).to(t.mel.device)
            durations = hard.sum(1).long()  # [B, N]

        voiced = t.voiced.float() * mel_mask
        tok_log_f0, voiced_frac = average_over_durations(t.log_f0, voiced, durations)
        tok_voiced = voiced_frac >= VOICED_FRACTION
        mean, std = t.speaker_log_f0[:, :1], t.speaker_log_f0[:, 1:]
        pitch_z = torch.where(tok_voiced, (tok_log_f0 - mean) / std, torch.zeros_like(mean))
        pitch_z = pitch_z * text_mask
        frame_e = self.frame_energy(t.mel)
        tok_energy, _ = average_over_durations(frame_e, mel_mask.float(), durations)

        log_dur_pred = self.duration(enc, text_mask)
        pitch_pred = self.pitch(enc, text_mask)
        energy_pred = self.energy(enc, text_mask)
        abs_log_f0 = mean + std * pitch_z
        x = enc + self._embed_variances(abs_log_f0, tok_energy, text_mask)
        mel_pred, _ = self._decode(x, durations, spk, t.mel.shape[2])
        return {
            "mel_pred": mel_pred,
            "mel_target": mel_n,
            "mel_mask": mel_mask,
            "text_mask": text_mask,
            "log_dur_pred": log_dur_pred,
            "durations": durations,
            "pitch_pred": pitch_pred,
            "pitch_target": pitch_z,
            "energy_pred": energy_pred,
            "energy_target": tok_energy,
            "attn_logp": attn_logp,
            "attn_soft": attn_soft,
            "attn_hard": hard,
            "speaker_log_f0_pred": self.predict_speaker_log_f0(t.embedding),
        }

    # --- inference ---------------------------------------------------------------------

    @torch.inference_mode()
    def infer(
        self,
        ids: torch.Tensor,  # [1, N]
        embedding: torch.Tensor,  # [1, 256]
        speaker_log_f0: torch.Tensor | None = None,  # [1, 2]; None: predicted
        speed: float = 1.0,
        pitch_shift_semitones: float = 0.0,
        energy_scale: float = 1.0,
    ) -> torch.Tensor:
        """Log-mel ``[n_mels, frames]`` (not normalised) for one sentence."""
        n = self.cfg.norm
        text_mask = torch.ones_like(ids, dtype=torch.bool)
        _, enc, spk = self.encode(ids, text_mask, embedding)
        stats = self.predict_speaker_log_f0(embedding) if speaker_log_f0 is None else speaker_log_f0
        mean, std = stats[:, :1], stats[:, 1:]
        frames = (torch.exp(self.duration(enc, text_mask)) - 1.0).clamp(0, MAX_PHONEME_FRAMES)
        durations = _round_durations(frames / speed)
        if int(durations.sum()) == 0:
            durations[0, durations.shape[1] // 2] = 1
        log_f0 = mean + std * self.pitch(enc, text_mask) + pitch_shift_semitones * math.log(2) / 12
        energy = self.energy(enc, text_mask) + math.log(energy_scale) / n.energy_std
        x = enc + self._embed_variances(log_f0, energy, text_mask)
        mel_n, _ = self._decode(x, durations, spk)
        return (mel_n[0] * n.mel_std + n.mel_mean).float()


MIN_VOICED_FRAMES = 10
MIN_LOG_F0_STD = 0.03


def log_f0_statistics(f0_hz: np.ndarray) -> tuple[float, float] | None:
    """The speaker pitch statistics the model is conditioned on: centre and spread of the
    natural-log F0 over voiced frames (``f0 > 0``), measured robustly (median, and 1.4826
    times the median absolute deviation) so that the octave errors of a pitch tracker on
    low or creaky voices do not inflate them. ``None`` with fewer than 10 voiced frames.
    Use the same function on live microphone F0 to fill ``VoiceConditioning``."""
    f0 = np.asarray(f0_hz, dtype=np.float64).reshape(-1)
    voiced = np.log(f0[f0 > 0])
    if voiced.size < MIN_VOICED_FRAMES:
        return None
    centre = float(np.median(voiced))
    spread = 1.4826 * float(np.median(np.abs(voiced - centre)))
    return centre, max(spread, MIN_LOG_F0_STD)


def _round_durations(frames: torch.Tensor) -> torch.Tensor:
    """Round so that the running total stays within half a frame of the exact one."""
    ends = torch.round(frames.cumsum(1))
    return torch.diff(ends, dim=1, prepend=torch.zeros_like(ends[:, :1])).long().clamp(min=0)


def frame_ids(phonemes: Sequence[str], table: dict[str, int]) -> list[int]:
    """Piper's framing, used in training and inference alike: ``BOS, PAD, p1, PAD, ...,
    pn, PAD, EOS``. The PADs between symbols give the aligner somewhere to put transitions.
    Unknown (or framing) symbols raise ``UnknownPhonemesError``."""
    from vcstream.text.phonemes import BOS, EOS, PAD

    bad = [p for p in phonemes if p not in table or p in (PAD, BOS, EOS)]
    if bad:
        raise UnknownPhonemesError(list(dict.fromkeys(bad)))
    ids = [table[BOS], table[PAD]]
    for p in phonemes:
        ids += [table[p], table[PAD]]
    return [*ids, table[EOS]]


def checkpoint_id(path: str | Path) -> str:
    """A short content hash of a checkpoint file: what adapted parameters are tagged with,
    so that they are never applied to another model."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --- checkpoints ------------------------------------------------------------------------


def checkpoint_payload(
    model: FastPitch, symbols: Sequence[str], extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    cfg = asdict(model.cfg)
    return {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "config": cfg,
        "symbols": list(symbols),
        "model": model.state_dict(),
        **(extra or {}),
    }


def load_model(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[FastPitch, list[str], dict[str, Any]]:
    """Model (eval mode, float32), its symbol table and the whole checkpoint dict."""
    p = Path(path)
    ckpt = read_checkpoint(
        p,
        "FastPitch checkpoint",
        "train one with `vcstream train`; the shipped one is vcstream/assets/fastpitch.pt",
        map_location=device,
    )
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ModelMissingError(f"{p} is not a vcstream FastPitch checkpoint")
    if ckpt.get("version") != CHECKPOINT_VERSION:
        raise ModelMissingError(
            f"{p}: checkpoint version {ckpt.get('version')}, this code reads {CHECKPOINT_VERSION}"
        )
    model = FastPitch(FastPitchConfig.from_dict(ckpt["config"]))
    state = {k: v.float() for k, v in ckpt["model"].items()}
    model.load_state_dict(state, strict=True)
    return model.to(device).eval(), list(ckpt["symbols"]), ckpt


class FastPitchSynthesizer:
    """The ``Synthesizer`` backend over a trained checkpoint: clones the embedded voice.

    The whole sentence is predicted in one non-autoregressive pass (tens of milliseconds
    on a CPU for a sentence), then handed out in chunks of ``chunk_frames`` so that the
    streaming vocoder can start on the first chunk. With ``restore_spread`` (``[synth]
    restore_spread``), a voice that carries the spread of its spectral detail
    (``VoiceConditioning.cepstral_std``) gets it restored in the sentence's mel first
    (``synth.variance``).
    """

    name = "fastpitch"
    clones = True

    def __init__(
        self,
        checkpoint: str | Path | None = None,
        device: str | torch.device = "cpu",
        chunk_frames: int = 32,
        restore_spread: bool = False,
    ) -> None:
        if chunk_frames < 1:
            raise InputError(f"chunk_frames must be positive, got {chunk_frames}")
        path = checkpoint or DEFAULT_CHECKPOINT
        self.model, symbols, ckpt = load_model(path, device)
        self.checkpoint_path = Path(path)
        self.checkpoint_id = checkpoint_id(path)
        self._adapted: OrderedDict[str, FastPitch] = OrderedDict()  # LRU, ADAPTED_MODELS_KEPT
        self._adapted_lock = threading.Lock()
        self.symbols = symbols
        self.step: int | None = ckpt.get("step")  # training step of the weights, a label
        # Spoken before any voice has been heard (a daemon just started, `say` without a
        # reference): one training speaker's voice, stored in the checkpoint at export.
        self.default_voice: VoiceConditioning | None = None
        self.default_voice_name: str | None = None
        if "default_voice" in ckpt:
            dv = ckpt["default_voice"]
            log_f0 = dv["log_f0"].float().cpu().numpy()
            self.default_voice = VoiceConditioning(
                dv["embedding"].float().cpu().numpy(), float(log_f0[0]), float(log_f0[1])
            )
            self.default_voice_name = str(dv["name"])
        self._ids = {s: i for i, s in enumerate(symbols)}
        self.device = torch.device(device)
        self.chunk_frames = chunk_frames
        self.restore_spread = restore_spread
        self._restore_spread = SpreadRestorer()

    def phoneme_ids(self, phonemes: Sequence[str]) -> list[int]:
        """Symbols to ids with the checkpoint's own symbol table."""
        return frame_ids(phonemes, self._ids)

    def model_for(self, adapted: AdaptedParams | None) -> FastPitch:
        """The model to speak with: the checkpoint's own, or a copy carrying a voice's
        adapted parameters (built once, then kept among the last ``ADAPTED_MODELS_KEPT``).
        Parameters tuned on another checkpoint are refused (even none: an adaptation that
        kept the checkpoint's own values still belongs to that checkpoint)."""
        if adapted is None:
            return self.model
        if adapted.checkpoint_id != self.checkpoint_id:
            raise InputError(
                f"this voice was adapted to checkpoint {adapted.checkpoint_id}, but the "
                f"synthesiser runs checkpoint {self.checkpoint_id}: adapt it again "
                "(`vcstream embed ... --adapt`) or use the checkpoint it was made with"
            )
        if not adapted.params:
            return self.model
        with self._adapted_lock:
            model = self._adapted.get(adapted.key)
            if model is not None:
                self._adapted.move_to_end(adapted.key)
                return model
        own = dict(self.model.named_parameters())
        bad = [k for k, v in adapted.params.items() if k not in own or own[k].shape != v.shape]
        if bad:
            raise InputError(f"adapted parameters do not fit this model: {', '.join(bad[:5])}")
        model = copy.deepcopy(self.model)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name in adapted.params:
                    p.copy_(adapted.params[name].to(p.device, p.dtype))
        model.eval()
        with self._adapted_lock:
            self._adapted[adapted.key] = model
            while len(self._adapted) > ADAPTED_MODELS_KEPT:
                self._adapted.popitem(last=False)
        return model

    def synthesize(
        self,
        phonemes: Sequence[str],
        voice: VoiceConditioning,
        controls: SynthControls,
    ) -> Iterator[torch.Tensor]:
        if len(phonemes) == 0:
            raise InputError("nothing to synthesise: empty phoneme sequence")
        if voice.embedding is None:
            if self.default_voice is None:
                raise InputError(
                    "no voice heard yet, and this checkpoint has no default voice: give a "
                    "reference recording or a saved voice (or export with `vcstream train "
                    "--export`)"
                )
            voice = self.default_voice
        if controls.speed <= 0 or controls.energy_scale <= 0:
            raise InputError("speed and energy_scale must be positive")
        model = self.model_for(voice.adapted)
        emb = np.asarray(voice.embedding, dtype=np.float32).reshape(1, -1)
        ids = torch.tensor([self.phoneme_ids(phonemes)], device=self.device)
        stats = None
        if voice.log_f0_mean is not None and voice.log_f0_std is not None:
            stats = torch.tensor([[voice.log_f0_mean, voice.log_f0_std]], device=self.device)
        mel = model.infer(
            ids,
            torch.from_numpy(emb).to(self.device),
            stats,
            speed=controls.speed,
            pitch_shift_semitones=controls.pitch_shift_semitones,
            energy_scale=controls.energy_scale,
        )
        if self.restore_spread and voice.cepstral_std is not None:
            mel = self._restore_spread(mel, voice.cepstral_std)
        for start in range(0, mel.shape[1], self.chunk_frames):
            yield mel[:, start : start + self.chunk_frames]
