"""The speaker's recordings as training utterances: transcripts (given, or Whisper's),
phonemes, and the same features the trainer reads (log-mel, F0, GE2E embedding).

Long recordings are cut at Whisper's segment boundaries into utterances of at most
``MAX_UTTERANCE_S``; segments Whisper is unsure of (likely no speech, or a low mean token
log-probability) are left out, because a wrong transcript teaches the model to mumble;
only when almost nothing is sure (``FALLBACK_BELOW_S``), as for speakers of languages the
English-only Whisper does not know, are the nearly sure ones taken (``AVG_LOGPROB_FALLBACK``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from vcstream.audio.mel import HOP, SAMPLE_RATE_HZ
from vcstream.errors import InputError, NoVoiceError
from vcstream.text.phonemes import SILENT_SYMBOLS

MAX_UTTERANCE_S = 8.0  # longer stretches are cut at segment boundaries (memory, batching)
MIN_UTTERANCE_S = 0.4
NO_SPEECH_MAX = 0.6  # Whisper segments more likely silence than this are dropped
AVG_LOGPROB_MIN = -1.0  # ... and those whose mean token log-probability is below this
# ... unless the sure pieces hold less than FALLBACK_BELOW_S of recording: then those down
# to AVG_LOGPROB_FALLBACK are taken too. Whisper here is English-only (tiny.en): of 8 dev
# speakers of other languages with 10 s, 6 kept nothing at -1.0. Their pieces between
# -1.0 and -1.35 were near-phonetic spellings ("Atavis, Arbato Sport Dallas, Carlos" for
# Lithuanian words), those further down invented sentences ("I'm going to go to the
# hospital.", -1.76, for Galician words), which no alignment makes right.
FALLBACK_BELOW_S = 3.0
AVG_LOGPROB_FALLBACK = -1.35
# A piece taken so must spell at least this many sounds (phonemes, not stress or pauses) per
# second of its speech: on a dev speaker of Danish words Whisper wrote "You won!" for 6.1 s
# (0.8 per second), and the voice adapted to it said "They'll light us keep her legs slowly"
# (CER 16 %; its other piece had 2.2); the taken pieces of dev speakers of Lithuanian and
# Spanish had 3.0-6.1, and the voices adapted to them 0 % CER.
MIN_UNSURE_SOUNDS_PER_S = 2.5
COMPRESSION_MAX = 2.4  # ... and those whose text repeats itself (a decoding loop)
# Whisper's segment times are coarse (tens of ms): keep a margin, trimming takes the rest.
CUT_MARGIN_S = 0.15
JOIN_GAP_S = 0.4  # pause put between recordings transcribed together
GROUP_S = MAX_UTTERANCE_S  # short recordings are transcribed in groups of this length


@dataclass
class Utterance:
    text: str
    phonemes: list[str]
    mel: np.ndarray  # [80, T] log-mel
    f0_hz: np.ndarray  # [T], 0 where unvoiced
    audio: np.ndarray  # 22050 Hz, cleaned (trimmed, level-normalised)
    # Of the speaker's recordings, not counting the pauses put between them for Whisper.
    seconds: float


class Piece(NamedTuple):
    """A stretch of the speaker's audio with its transcript, before cleaning."""

    audio: np.ndarray  # 22050 Hz
    text: str
    seconds: float  # of the speaker's recordings in it (not the pauses put between them)
    logprob: float  # Whisper's lowest mean token log-probability in it (0: a given text)


@dataclass
class Prepared:
    utterances: list[Utterance]
    embedding: np.ndarray  # (256,) GE2E of all the usable audio
    log_f0: tuple[float, float] | None  # speaker's log-F0 centre and spread
    dropped: list[str]  # why each left-out piece was left out

    @property
    def seconds(self) -> float:
        return sum(u.seconds for u in self.utterances)


def _check_recordings(recordings: Sequence[tuple[np.ndarray, int]]) -> None:
    if not recordings:
        raise NoVoiceError("no recordings given to adapt to")
    for i, item in enumerate(recordings):
        if not (isinstance(item, tuple | list) and len(item) == 2):
            raise InputError(f"recording {i}: want (audio, sample_rate_hz)")
        audio, sr = item
        a = np.asarray(audio)
        if a.ndim != 1 or a.size == 0:
            raise InputError(f"recording {i}: want non-empty mono 1-D audio, got shape {a.shape}")
        if not np.all(np.isfinite(a)):
            raise InputError(f"recording {i}: holds NaN or infinite samples")
        if not isinstance(sr, int | np.integer) or not 8000 <= int(sr) <= 192000:
            raise InputError(f"recording {i}: sample rate {sr!r} Hz is not supported")


def _segments(transcriber, audio_22k: np.ndarray) -> list:
    # Greedy decoding only (what Whisper is unsure of is left out, not sampled again); a
    # group of short recordings is one piece, so only a longer stream needs timestamps.
    return transcriber.segments(
        audio_22k,
        SAMPLE_RATE_HZ,
        fallback=False,
        timestamps=len(audio_22k) > GROUP_S * SAMPLE_RATE_HZ,
    )


def _pieces(
    segments: list,
    audio_22k: np.ndarray,
    dropped: list[str],
    gap: np.ndarray,
    min_logprob: float = AVG_LOGPROB_MIN,
) -> list[Piece]:
    """Cut a stream into pieces of at most MAX_UTTERANCE_S from its Whisper ``segments``,
    leaving out those Whisper was unsure of (mean token log-probability below
    ``min_logprob``); ``gap`` marks the samples of the pauses put between recordings."""
    good = []
    for s in segments:
        if s.no_speech_prob > NO_SPEECH_MAX or s.avg_logprob < min_logprob:
            dropped.append(
                f"{s.end_s - s.start_s:.1f} s Whisper was unsure of ({s.text[:40]!r}, "
                f"log-prob {s.avg_logprob:.2f}, no-speech {s.no_speech_prob:.2f})"
            )
        elif s.compression_ratio > COMPRESSION_MAX:
            dropped.append(
                f"{s.end_s - s.start_s:.1f} s Whisper repeated itself on ({s.text[:40]!r}, "
                f"compression ratio {s.compression_ratio:.1f})"
            )
        else:
            good.append(s)
    groups: list[list] = []
    for s in good:
        # Consecutive segments are joined while the piece stays short enough.
        if groups and s.end_s - groups[-1][0].start_s <= MAX_UTTERANCE_S:
            groups[-1].append(s)
        else:
            groups.append([s])
    out = []
    n = len(audio_22k)
    for g in groups:
        a = max(0, int((g[0].start_s - CUT_MARGIN_S) * SAMPLE_RATE_HZ))
        b = min(n, int((g[-1].end_s + CUT_MARGIN_S) * SAMPLE_RATE_HZ))
        own = (b - a - int(gap[a:b].sum())) / SAMPLE_RATE_HZ
        text = " ".join(s.text for s in g)
        out.append(Piece(audio_22k[a:b], text, own, min(s.avg_logprob for s in g)))
    return out


def group_recordings(lengths: Sequence[int], pause: int) -> list[list[int]]:
    """Consecutive recordings (their sample counts) in groups of at most
    ``GROUP_S`` with a ``pause`` after each; a longer recording is a group alone."""
    limit = GROUP_S * SAMPLE_RATE_HZ
    groups: list[list[int]] = []
    size = 0
    for i, n in enumerate(lengths):
        if groups and size + n + pause <= limit:
            groups[-1].append(i)
            size += n + pause
        else:
            groups.append([i])
            size = n + pause
    return groups


def mel_and_f0(audio_22k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The trainer's mel and F0 features (``corpus.features``), without the per-utterance
    embedding it also computes: adaptation embeds all the audio once."""
    from vcstream.audio.mel import mel_spectrogram
    from vcstream.audio.pitch import estimate_f0
    from vcstream.corpus.features import F0_MAX_HZ, F0_MIN_HZ, fit_frames

    mel = mel_spectrogram(audio_22k).numpy().astype(np.float32)
    f0, voiced = estimate_f0(audio_22k, SAMPLE_RATE_HZ, HOP, F0_MIN_HZ, F0_MAX_HZ)
    return mel, fit_frames(np.where(voiced, f0, 0.0).astype(np.float32), mel.shape[1])


def prepare(
    recordings: Sequence[tuple[np.ndarray, int]],
    transcripts: Sequence[str] | None,
    *,
    extractor,
    transcriber=None,
) -> Prepared:
    """Recordings (and their transcripts, one per recording, or None for Whisper's) to
    utterances with features. ``extractor`` is a ``corpus.features.FeatureExtractor``."""
    from vcstream.audio.io import resample
    from vcstream.corpus.features import clean_audio
    from vcstream.synth.fastpitch import log_f0_statistics

    _check_recordings(recordings)
    if transcripts is not None:
        if len(transcripts) != len(recordings):
            raise InputError(
                f"{len(transcripts)} transcripts for {len(recordings)} recordings: give one each"
            )
        for i, t in enumerate(transcripts):
            if not isinstance(t, str) or not t.strip():
                raise InputError(f"transcript {i} is empty")
    elif transcriber is None:
        raise InputError("no transcripts given and no transcriber to make them")
    dropped: list[str] = []
    pieces: list[Piece] = []
    audios = [resample(np.asarray(a, np.float32), int(sr), SAMPLE_RATE_HZ) for a, sr in recordings]
    if transcripts is not None:
        pieces = [
            Piece(a, t, len(a) / SAMPLE_RATE_HZ, 0.0)
            for a, t in zip(audios, transcripts, strict=True)
        ]
    else:
        # Short recordings are transcribed in groups, apart by a short pause: Whisper pads
        # every call to a 30 s window, so thirty 1 s clips would cost thirty windows; but
        # its confidence is one figure per window, and one unsure word dropped a whole
        # window (dev speaker hedgewars/Default, 30 s: 13 clips, 14 s, in one window at
        # log-prob -1.90; 21 s kept, in 8 s groups 29 s), so the groups stay short.
        pause = np.zeros(int(JOIN_GAP_S * SAMPLE_RATE_HZ), np.float32)
        streams = []
        for group in group_recordings([len(a) for a in audios], len(pause)):
            stream = np.concatenate([x for i in group for x in (audios[i], pause)])
            gap = np.concatenate(
                [
                    x
                    for i in group
                    for x in (np.zeros(len(audios[i]), bool), np.ones(len(pause), bool))
                ]
            )
            streams.append((stream, gap, _segments(transcriber, stream)))
        for stream, gap, segments in streams:
            pieces += _pieces(segments, stream, dropped, gap)
        sure_s = sum(p.seconds for p in pieces)
        if sure_s < FALLBACK_BELOW_S:
            unsure: list[str] = []
            relaxed = [
                p
                for stream, gap, segments in streams
                for p in _pieces(segments, stream, unsure, gap, AVG_LOGPROB_FALLBACK)
            ]
            if sum(p.seconds for p in relaxed) > sure_s:
                pieces, dropped = relaxed, unsure
                dropped.append(
                    f"only {sure_s:.1f} s Whisper was sure of: pieces down to log-prob "
                    f"{AVG_LOGPROB_FALLBACK} taken"
                )
        if not pieces:
            dropped.append("Whisper heard no words")
    utterances = []
    for audio, text, own_s, logprob in pieces:
        try:
            x = clean_audio(audio, SAMPLE_RATE_HZ)
        except NoVoiceError:
            dropped.append(f"a silent piece ({text[:40]!r})")
            continue
        if len(x) < MIN_UTTERANCE_S * SAMPLE_RATE_HZ:
            dropped.append(f"{len(x) / SAMPLE_RATE_HZ:.2f} s piece, too short ({text[:40]!r})")
            continue
        phonemes = extractor.phonemes(text)
        n_frames = len(x) // HOP
        # The aligner needs a frame for each symbol and each PAD between (frame_ids).
        if not phonemes or n_frames < 2 * len(phonemes) + 3:
            dropped.append(f"{text[:40]!r}: too few frames for its {len(phonemes)} phonemes")
            continue
        rate = sum(1 for p in phonemes if p not in SILENT_SYMBOLS) * SAMPLE_RATE_HZ / len(x)
        if logprob < AVG_LOGPROB_MIN and rate < MIN_UNSURE_SOUNDS_PER_S:
            dropped.append(
                f"{text[:40]!r}: Whisper unsure, and {rate:.1f} sounds per second is too few "
                f"for {len(x) / SAMPLE_RATE_HZ:.1f} s of speech"
            )
            continue
        mel, f0 = mel_and_f0(x)
        utterances.append(
            Utterance(text, phonemes, mel, f0, x, min(own_s, len(x) / SAMPLE_RATE_HZ))
        )
    if not utterances:
        raise NoVoiceError(
            "no usable speech in the recordings"
            + (f" ({'; '.join(dropped[:3])})" if dropped else "")
        )
    whole = np.concatenate([u.audio for u in utterances])
    embedding = extractor.embedding(whole)
    log_f0 = log_f0_statistics(np.concatenate([u.f0_hz for u in utterances]))
    return Prepared(utterances, embedding, log_f0, dropped)
