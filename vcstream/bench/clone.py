"""`vcstream bench --clone`: how close cloned speech comes to real people's voices.

The figure the project steers by: real speakers no training used (the ``test`` split of
``vcstream.corpus.realvoice``), English output sentences, references of 3, 10 and 30 s
(60 s where the speaker has that much).

Per speaker and reference length, rows:

* ``default``: the synthesiser's default voice, no reference at all (the floor);
* ``zero-shot``: conditioned on the reference's GE2E embedding and log-F0 statistics,
  computed by the live incremental embedder as the daemon's microphone path would;
* ``zero-shot+spread``, ``adapted+spread``: the same voices with the spread of their
  spectral detail, measured on the reference, restored (``synth.variance``; off unless
  ``[synth] restore_spread``, and then the rows are ``/no-spread``, without it);
* ``zero-shot+knn``: that output converted toward the reference's own frames
  (``vcstream.synth.knn``, kNN-VC style);
* ``adapted`` (and ``adapted+knn``): the synthesiser adapted to the reference recordings
  (``vcstream.adapt``), when that package is installed; otherwise the rows are left out
  and the report says "adaptation not available";
* ``ceiling``: the speaker's own reference recordings, judged like an output.

Columns:

* cosine: GE2E cosine between an utterance's embedding and the speaker's target, the
  L2-normalised mean embedding of the held-out "other recordings" (joined into utterances
  of at least 2.5 s; no held-out clip is in any reference); mean over the sentences. For
  the ceiling, the utterances are the reference recordings (joined the same way);
* gap closed: (cosine - default's) / (ceiling's - default's), per speaker and length; in
  the summary, of the means over speakers (stable where a speaker's gap is small);
* CER: Whisper (``vcstream.asr``) character error rate of the English output, pooled;
* F0 error: |centre of the output's log F0 - centre of the held-out recordings'|, in
  semitones (centre: ``log_f0_statistics``' median over voiced YIN frames);
* voiced: the share of the output's frames YIN calls voiced (the speaker's references for
  the ceiling). An F0 centre read from a few voiced frames says little: a clone that
  lost its harmonics (adaptation that smeared them did) shows here, not as a pitch;
* adapt s: wall time of the adaptation, under the configured budget (``[adapt]
  max_wall_s``, 60 s by default: tuning stops there with the best parameters so far).

Output audio is analysed as the training corpus analyses recordings (``OutputAnalyser``:
silence trimmed, level normalised), so the recordings and outputs meet on equal terms.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vcstream.errors import InputError, NoVoiceError
from vcstream.synth.base import VoiceConditioning

SENTENCES = (
    "The old lighthouse keeper walked slowly along the rocky shore.",
    "Please bring me a cup of tea and two slices of bread.",
    "Every morning she reads the news before breakfast.",
    "We will meet at the station at half past seven tonight.",
    "A gentle breeze carried the smell of rain across the valley.",
    "Could you tell me the way to the nearest post office?",
)
DEFAULT_SENTENCES = 3
DEFAULT_LENGTHS = (3.0, 10.0, 30.0, 60.0)
JOIN_SECONDS = 2.5
SEMITONES_PER_LOG = 12.0 / math.log(2.0)
KNN_MODES = ("envelope", "frame", "stats")
# FrameMatcher's settings in the bench unless told (--knn-k, --knn-ceps, --knn-alpha)
KNN_DEFAULTS = {"k": 4, "n_ceps": 20, "alpha": 1.0}
ADAPTATION_NOT_AVAILABLE = (
    "adaptation not available: vcstream.adapt is not installed in this tree, so the adapted "
    "rows are left out"
)
ADAPTATION_LEFT_OUT = "adapted rows left out (--no-adapt)"
# A row's voice with the spread of its spectral detail restored (synth.variance), or
# without it when [synth] restore_spread is on
WITH_SPREAD = "+spread"
NO_SPREAD = "/no-spread"

# Targets of issue #9 (on the test speakers, means over speakers).
TARGET_ZERO_SHOT_10S = 0.35
TARGET_ADAPTED_10S = 0.60
TARGET_ADAPTED_30S = 0.75
TARGET_CER = 0.05
TARGET_F0_ST = 1.5

Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class SpeakerTarget:
    embedding: np.ndarray  # L2-normalised mean of the held-out utterances' embeddings
    log_f0: float | None  # centre of the held-out recordings' log F0
    seconds: float
    clips: int


def utterance_embedding(encoder, audio_22k: np.ndarray) -> np.ndarray:
    from vcstream.audio.io import resample
    from vcstream.encoder.embed import embed_utterance

    return embed_utterance(encoder, resample(audio_22k, 22050, 16000)).embedding


def voiced_f0(audio_22k: np.ndarray) -> np.ndarray:
    """YIN F0 in Hz per mel frame, 0 where unvoiced (as ``OutputAnalyser`` tracks outputs)."""
    from vcstream.audio.mel import HOP, SAMPLE_RATE_HZ
    from vcstream.audio.pitch import estimate_f0
    from vcstream.corpus.features import F0_MAX_HZ, F0_MIN_HZ

    f0, voiced = estimate_f0(audio_22k, SAMPLE_RATE_HZ, HOP, F0_MIN_HZ, F0_MAX_HZ)
    return np.where(voiced, f0, 0.0)


def log_f0_centre(audios: Sequence[np.ndarray]) -> float | None:
    from vcstream.bench.synth import f0_centre

    return f0_centre([voiced_f0(a) for a in audios])


def voiced_fraction(f0_hz: Sequence[np.ndarray]) -> float | None:
    """Share of frames with an F0 (0 where unvoiced) over all the arrays."""
    n = sum(len(f) for f in f0_hz)
    return None if n == 0 else round(sum(int(np.sum(f > 0)) for f in f0_hz) / n, 3)


def speaker_target(encoder, segments) -> SpeakerTarget:
    from vcstream.corpus.realvoice import join_segments
    from vcstream.encoder.embed import l2_normalize

    utts = join_segments(segments, JOIN_SECONDS)
    emb = l2_normalize(np.mean([utterance_embedding(encoder, u) for u in utts], axis=0))
    return SpeakerTarget(
        emb,
        log_f0_centre([s.audio for s in segments]),
        sum(s.seconds for s in segments),
        len(segments),
    )


def _st(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else abs(a - b) * SEMITONES_PER_LOG


def _round(x: float | None, digits: int = 4) -> float | None:
    return None if x is None else round(float(x), digits)


def row_from_outputs(outs: Sequence[dict], target: SpeakerTarget, **extra: Any) -> dict:
    """One row's figures from ``OutputAnalyser`` results (plus ``audio``/``synth_s``)."""
    from vcstream.bench.synth import cosine, f0_centre

    chars = sum(o["ref_chars"] for o in outs)
    audio_s = sum(o["audio_s"] for o in outs)
    f0 = [o["f0_hz"] for o in outs]
    centre = f0_centre(f0)
    return {
        "cosine": round(
            float(np.mean([cosine(o["embedding"], target.embedding) for o in outs])), 4
        ),
        "cer": round(sum(o["edits"] for o in outs) / chars, 4) if chars else None,
        "log_f0": _round(centre),
        "f0_error_st": _round(_st(centre, target.log_f0), 3),
        "voiced": voiced_fraction(f0),
        "synth_s_per_audio_s": _round(
            sum(o["synth_s"] for o in outs) / audio_s if audio_s else None, 5
        ),
        "silent": sum(o["silent"] for o in outs),
        "transcripts": [o["transcript"] for o in outs],
        **extra,
    }


def ceiling_row(encoder, references, target: SpeakerTarget) -> dict:
    from vcstream.bench.synth import cosine, f0_centre
    from vcstream.corpus.realvoice import join_segments

    utts = join_segments(references, JOIN_SECONDS)
    cos = [cosine(utterance_embedding(encoder, u), target.embedding) for u in utts]
    f0 = [voiced_f0(s.audio) for s in references]  # one YIN pass for the centre and voicing
    centre = f0_centre(f0)
    return {
        "cosine": round(float(np.mean(cos)), 4),
        "cer": None,
        "log_f0": _round(centre),
        "f0_error_st": _round(_st(centre, target.log_f0), 3),
        "voiced": voiced_fraction(f0),
        "utterances": len(utts),
    }


def gap_closed(cos: float | None, default: float, ceiling: float) -> float | None:
    if cos is None or ceiling - default <= 1e-6:
        return None
    return round((cos - default) / (ceiling - default), 4)


def conversion_name(mode: str) -> str:
    """Row suffix of a ``FrameMatcher`` mode: the kNN ones, and the no-neighbour baseline."""
    return "cepstral-stats" if mode == "stats" else f"knn-{mode}"


def replace_attr(obj, **values):
    """A shallow copy of ``obj`` with attributes set (shares its models and caches)."""
    other = copy.copy(obj)
    for k, v in values.items():
        setattr(other, k, v)
    return other


def load_adapt() -> Callable | None:
    """``vcstream.adapt.adapt`` when that package is installed, else None."""
    try:
        from vcstream.adapt import adapt
    except ImportError:
        return None
    return adapt


# --- the measurement ----------------------------------------------------------------------


def measure_clone(
    rt,
    fastpitch,
    transcriber,
    speakers,
    *,
    lengths: Sequence[float] = DEFAULT_LENGTHS,
    sentences: Sequence[str] = SENTENCES[:DEFAULT_SENTENCES],
    knn_modes: Sequence[str] = ("envelope",),
    knn_options: dict[str, Any] | None = None,
    adapt: Callable | None = None,
    keep_mels: bool = False,
    progress: Progress | None = None,
    adapt_wall_s: float | None = None,
    no_adapt_note: str = ADAPTATION_NOT_AVAILABLE,
) -> dict[str, Any]:
    """The clone figure for ``speakers`` (``realvoice.RealSpeaker``); the report dict.

    ``adapt`` is ``vcstream.adapt.adapt`` or None (rows left out, with ``no_adapt_note``);
    ``adapt_wall_s`` its wall-clock budget (``[adapt] max_wall_s``, as the daemon and
    ``embed --adapt`` run it; None: the plan's steps and early stopping, however long).
    ``keep_mels`` keeps, per speaker, mels of the first sentence for spectrogram pictures
    (under ``"_mels"``, not JSON-serialisable: the caller pops it)."""
    from vcstream.app import SYNTH_SAMPLE_RATE_HZ
    from vcstream.audio.mel import mel_spectrogram
    from vcstream.bench.synth import OutputAnalyser, render
    from vcstream.corpus.realvoice import build_speaker_set
    from vcstream.pipeline import SpeechPipeline
    from vcstream.references import embed_recordings
    from vcstream.synth.knn import FrameMatcher, FrameMatchingSynthesizer

    if not sentences:
        raise InputError("--sentences must be at least 1")
    bad = [m for m in knn_modes if m not in KNN_MODES]
    if bad:
        raise InputError(f"unknown kNN mode(s) {bad}: use {', '.join(KNN_MODES)} or none")
    knn = {**KNN_DEFAULTS, **(knn_options or {})}
    analyser = OutputAnalyser(rt.encoder, transcriber)

    def pipeline(synth) -> SpeechPipeline:
        return SpeechPipeline(
            rt.frontend,
            synth,
            rt.new_vocoder(),
            sample_rate_hz=SYNTH_SAMPLE_RATE_HZ,
            max_text_chars=rt.cfg.synth.max_text_chars,
        )

    extractor = probe_vocoder = lite_probe_vocoder = None
    if adapt is not None:  # loaded once, not inside every adaptation's timing
        from vcstream.adapt import warm_up
        from vcstream.adapt.probe import load_probe_vocoders
        from vcstream.corpus.features import FeatureExtractor

        extractor = FeatureExtractor(str(fastpitch.device))
        warm_up()  # as the daemon's adaptation process does when it loads its models
        # the probe's vocoders, as the daemon's adaptation process loads them
        probe_vocoder, lite_probe_vocoder = load_probe_vocoders(fastpitch.device)
    fp_pipe = pipeline(fastpitch)
    # Every voice with a spread of spectral detail is also spoken the other way round from
    # the configured one ([synth] restore_spread): with it restored, or without.
    restoring = getattr(fastpitch, "restore_spread", False)
    other_spread = NO_SPREAD if restoring else WITH_SPREAD
    other_pipe = pipeline(replace_attr(fastpitch, restore_spread=not restoring))
    render(fp_pipe, "Hello there.", VoiceConditioning())  # first call pays for allocation

    sets = []
    for spk in speakers:
        sets.append(build_speaker_set(spk, lengths))
    # (each voice's row the other way round from [synth] restore_spread included)
    per_len = len(sentences) * (2 + len(knn_modes)) * (2 if adapt else 1)
    total = len(sentences) + sum(per_len * len(s.lengths) for s in sets)
    done = 0

    def step(label: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total, label)

    def speak(pipe, voice: VoiceConditioning, label: str) -> list[dict]:
        outs = []
        for i, text in enumerate(sentences):
            audio, synth_s = render(pipe, text, voice)
            a = analyser.analyse(audio, text)
            a.update(audio_s=len(audio) / SYNTH_SAMPLE_RATE_HZ, synth_s=synth_s, sentence=i)
            if keep_mels and i == 0:
                a["mel"] = mel_spectrogram(audio).numpy()
            outs.append(a)
            step(f"{label}, sentence {i + 1}")
        return outs

    default_outs = speak(fp_pipe, VoiceConditioning(), "default voice")
    report_speakers: dict[str, Any] = {}
    mels: dict[str, Any] = {}
    for ss in sets:
        spk = ss.speaker
        target = speaker_target(rt.encoder, ss.held_out)
        default_row = row_from_outputs(default_outs, target)
        entry: dict[str, Any] = {
            "source": spk.source,
            "language": spk.language,
            "split": spk.split,
            "held_out_s": round(target.seconds, 2),
            "held_out_clips": target.clips,
            "undecodable_clips": len(ss.undecodable),
            "target_log_f0": _round(target.log_f0),
            "lengths": {},
        }
        if keep_mels:
            mels[spk.name] = {"recording": mel_spectrogram(ss.held_out[0].audio).numpy()}
        for length in ss.lengths:
            refs = ss.references[length]
            label = f"{spk.name} {length:g} s"
            rows: dict[str, Any] = {"ceiling": ceiling_row(rt.encoder, refs, target)}
            rows["default"] = dict(default_row)
            try:
                zs = embed_recordings(
                    rt.new_embedder(), [(s.audio, 22050) for s in refs], [label]
                ).conditioning
            except NoVoiceError as err:
                rows["zero-shot"] = {"error": str(err)}
                zs = None
            matchers = {}
            ref_mels = [mel_spectrogram(s.audio).numpy() for s in refs]
            for mode in knn_modes:
                try:
                    matchers[mode] = FrameMatcher(ref_mels, mode=mode, **knn)
                except NoVoiceError as err:
                    rows[f"zero-shot+{conversion_name(mode)}"] = {"error": str(err)}
            voices: dict[str, tuple[VoiceConditioning, float | None]] = {}
            adapt_info: dict[str, Any] = {}
            if zs is not None:
                voices["zero-shot"] = (zs, None)
            if adapt is not None:
                t0 = time.perf_counter()
                try:
                    adapted = adapt(
                        fastpitch,
                        [(s.audio, 22050) for s in refs],
                        seed=0,
                        transcriber=transcriber,
                        extractor=extractor,
                        max_wall_s=adapt_wall_s,
                        probe_vocoder=probe_vocoder,
                        lite_probe_vocoder=lite_probe_vocoder,
                    )
                    voices["adapted"] = (adapted.conditioning(), time.perf_counter() - t0)
                    meta = adapted.metadata()
                    # What the budget left of the tuning: steps kept, speech used.
                    adapt_info = {
                        k: meta[k]
                        for k in (
                            "plan",
                            "seconds",
                            "utterances",
                            "steps",
                            "held_out_loss_before",
                            "held_out_loss",
                            "selected_by",
                            "probe_vocoder",
                            "probe_similarity_before",
                            "probe_similarity",
                            "prosody_offsets",
                        )
                    }
                except NoVoiceError as err:
                    rows["adapted"] = {"error": str(err)}
            for name, (voice, adapt_s) in voices.items():
                extra = (
                    {} if adapt_s is None else {"adapt_s": round(adapt_s, 2), "adapt": adapt_info}
                )
                outs = speak(fp_pipe, voice, f"{label} {name}")
                rows[name] = row_from_outputs(outs, target, **extra)
                if keep_mels and length == ss.lengths[-1]:
                    mels[spk.name][f"{name} ({length:g} s)"] = outs[0]["mel"]
                if voice.cepstral_std is not None:  # the voice the other way round
                    key = f"{name}{other_spread}"
                    outs = speak(other_pipe, voice, f"{label} {key}")
                    rows[key] = row_from_outputs(outs, target, **extra)
                    if keep_mels and length == ss.lengths[-1]:
                        mels[spk.name][f"{key} ({length:g} s)"] = outs[0]["mel"]
                for mode, matcher in matchers.items():
                    key = f"{name}+{conversion_name(mode)}"
                    knn_pipe = pipeline(FrameMatchingSynthesizer(fastpitch, matcher))
                    outs = speak(knn_pipe, voice, f"{label} {key}")
                    rows[key] = row_from_outputs(outs, target, **extra)
                    if keep_mels and length == ss.lengths[-1]:
                        mels[spk.name][f"{key} ({length:g} s)"] = outs[0]["mel"]
            ceiling = rows["ceiling"]["cosine"]
            for r in rows.values():
                if "cosine" in r:
                    r["gap_closed"] = gap_closed(r["cosine"], default_row["cosine"], ceiling)
            entry["lengths"][f"{length:g}"] = {
                "reference_s": round(sum(s.seconds for s in refs), 2),
                "reference_clips": len(refs),
                "rows": rows,
            }
        report_speakers[spk.name] = entry
    report = {
        "sentences": list(sentences),
        "lengths": [f"{x:g}" for x in lengths],
        "knn": {"modes": list(knn_modes), **knn},
        "adaptation": {"available": adapt is not None}
        | ({"max_wall_s": adapt_wall_s} if adapt is not None else {"note": no_adapt_note}),
        "speakers": report_speakers,
    }
    report["summary"] = summarise(report_speakers)
    report["targets"] = clone_targets(report["summary"])
    if keep_mels:
        report["_mels"] = mels
    return report


def summarise(speakers: dict[str, Any]) -> dict[str, dict[str, dict]]:
    """Per length and row: means over the speakers that have that length."""
    out: dict[str, dict[str, dict]] = {}
    lengths = sorted({ln for s in speakers.values() for ln in s["lengths"]}, key=float)
    for ln in lengths:
        entries = [s["lengths"][ln]["rows"] for s in speakers.values() if ln in s["lengths"]]
        names = [n for e in entries for n in e]
        rows = {}
        for name in dict.fromkeys(names):
            got = [e[name] for e in entries if name in e and "cosine" in e[name]]
            if not got:
                continue
            both = [e for e in entries if name in e and "cosine" in e[name]]
            cos = float(np.mean([g["cosine"] for g in got]))
            dflt = float(np.mean([e["default"]["cosine"] for e in both]))
            ceil = float(np.mean([e["ceiling"]["cosine"] for e in both]))

            def mean(key: str, rows_=got) -> float | None:
                vals = [g[key] for g in rows_ if g.get(key) is not None]
                return round(float(np.mean(vals)), 4) if vals else None

            rows[name] = {
                "speakers": len(got),
                "cosine": round(cos, 4),
                "gap_closed": gap_closed(cos, dflt, ceil),
                "cer": mean("cer"),
                "cer_max": max((g["cer"] for g in got if g.get("cer") is not None), default=None),
                "f0_error_st": mean("f0_error_st"),
                "voiced": mean("voiced"),
                "adapt_s": mean("adapt_s"),
                "synth_s_per_audio_s": mean("synth_s_per_audio_s"),
                "errors": sum(1 for e in entries if name in e and "error" in e[name]),
            }
        out[ln] = rows
    return out


def clone_targets(summary: dict[str, dict[str, dict]]) -> dict[str, dict[str, Any]]:
    """Issue #9's targets, read on the summary (None-valued rows count as not met)."""

    def gap(ln: str, row: str) -> float | None:
        return summary.get(ln, {}).get(row, {}).get("gap_closed")

    def target(text: str, value: float | None, ok: bool | None) -> dict[str, Any]:
        return {"target": text, "value": value, "met": None if ok is None else bool(ok)}

    out = {}
    z = gap("10", "zero-shot")
    out["zero_shot_10s_gap"] = target(
        f">= {TARGET_ZERO_SHOT_10S:.0%} of the gap closed",
        z,
        None if z is None else z >= TARGET_ZERO_SHOT_10S,
    )
    for ln, goal in (("10", TARGET_ADAPTED_10S), ("30", TARGET_ADAPTED_30S)):
        a = gap(ln, "adapted")
        out[f"adapted_{ln}s_gap"] = target(
            f">= {goal:.0%} of the gap closed", a, None if a is None else a >= goal
        )
    cers = [
        r["cer_max"]
        for rows in summary.values()
        for n, r in rows.items()
        if r.get("cer_max") is not None
    ]
    worst = max(cers) if cers else None
    out["cer_every_row"] = target(
        f"<= {TARGET_CER:.0%} in every row (worst speaker)",
        worst,
        None if worst is None else worst <= TARGET_CER,
    )
    f0 = [
        r["f0_error_st"]
        for rows in summary.values()
        for n, r in rows.items()
        if n != "ceiling" and n != "default" and r.get("f0_error_st") is not None
    ]
    worst_f0 = max(f0) if f0 else None
    out["f0_centre"] = target(
        f"<= {TARGET_F0_ST:g} st (mean over speakers, worst cloned row)",
        worst_f0,
        None if worst_f0 is None else worst_f0 <= TARGET_F0_ST,
    )
    return out


# --- printing -----------------------------------------------------------------------------


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def _num(x: float | None, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def _row_cells(r: dict) -> list[str]:
    if "error" in r:
        return ["-", "-", "-", "-", "-", "-", r["error"][:60]]
    return [
        _num(r.get("cosine"), ".3f"),
        _pct(r.get("gap_closed")),
        _pct(r.get("cer")),
        _num(r.get("f0_error_st"), ".2f"),
        _pct(r.get("voiced")),
        _num(r.get("adapt_s"), ".1f"),
        "",
    ]


ROW_ORDER = ("default", "zero-shot", "adapted", "ceiling")


def _ordered(rows: dict) -> list[str]:
    """default, zero-shot (then its kNN rows), adapted (then its kNN rows), ceiling."""
    out = []
    for base in ROW_ORDER:
        out += [n for n in rows if n == base]
        out += sorted(n for n in rows if n.startswith((f"{base}+", f"{base}{NO_SPREAD}")))
    return out + [n for n in rows if n not in out]


def clone_tables(report: dict) -> list:
    """The per-speaker table and the summary table (rich)."""
    from rich.table import Table

    cols = ("cosine", "gap closed", "CER", "F0 err st", "voiced", "adapt s", "note")
    per = Table(title="vcstream bench --clone: per speaker and reference length")
    for c in ("speaker", "ref s", "row", *cols):
        per.add_column(c, justify="left" if c in ("speaker", "row", "note") else "right")
    for name, s in report["speakers"].items():
        for ln, e in s["lengths"].items():
            for i, row in enumerate(_ordered(e["rows"])):
                first = i == 0
                per.add_row(
                    name if first else "",
                    ln if first else "",
                    row,
                    *_row_cells(e["rows"][row]),
                    end_section=row == "ceiling",
                )
    m = report["machine"]
    summ = Table(
        title=f"summary: mean over {len(report['speakers'])} speakers "
        f"({m['cpu']}, {m['torch_threads']} torch threads, {report['vocoder']['quality']} vocoder, "
        f"{report['elapsed_s']:.0f} s)"
    )
    for c in ("ref s", "row", "speakers", *cols[:-1]):
        summ.add_column(c, justify="left" if c == "row" else "right")
    for ln, rows in report["summary"].items():
        for i, row in enumerate(_ordered(rows)):
            r = rows[row]
            summ.add_row(
                ln if i == 0 else "",
                row,
                str(r["speakers"]),
                *_row_cells(r)[:-1],
                end_section=row == "ceiling",
            )
    return [per, summ]


def print_clone_report(report: dict) -> None:
    from vcstream.bench.report import console, target_line

    out = console()
    for table in clone_tables(report):
        out.print(table)
    if not report["adaptation"]["available"]:
        out.print(report["adaptation"]["note"], highlight=False)
    for name, t in report["targets"].items():
        out.print(target_line(f"{name} ({t['target']})", t["met"], t["value"]), highlight=False)


def save_spectrograms(mels: dict[str, dict[str, np.ndarray]], folder) -> list[str]:
    """One PNG per speaker: a held-out recording on top, the clones' first sentence below."""
    from pathlib import Path

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise InputError(
            "--png-dir needs matplotlib: `pip install matplotlib==3.10.8` (part of "
            "`make install-test`)"
        ) from err
    from vcstream.audio.mel import HOP, SAMPLE_RATE_HZ

    out_dir = Path(folder)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for speaker, panels in mels.items():
        fig, axes = plt.subplots(len(panels), 1, figsize=(9, 2.0 * len(panels)), squeeze=False)
        for ax, (title, mel) in zip(axes[:, 0], panels.items(), strict=True):
            seconds = mel.shape[1] * HOP / SAMPLE_RATE_HZ
            ax.imshow(
                mel,
                origin="lower",
                aspect="auto",
                cmap="magma",
                vmin=-11.5,
                vmax=2.0,
                extent=(0, seconds, 0, mel.shape[0]),
            )
            label = f"{speaker}: held-out recording" if title == "recording" else title
            ax.set_title(label, fontsize=9, loc="left")
            ax.set_ylabel("mel band")
        axes[-1, 0].set_xlabel("seconds")
        fig.tight_layout()
        path = out_dir / f"clone_{speaker.replace('/', '_')}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(str(path))
    return written


# --- `vcstream bench --clone` ---------------------------------------------------------------


def parse_lengths(text: str | None) -> list[float]:
    if not text:
        return list(DEFAULT_LENGTHS)
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError as err:
        raise InputError(f"--lengths: want seconds separated by commas, got {text!r}") from err
    if not values or min(values) <= 0:
        raise InputError(f"--lengths: want positive seconds, got {text!r}")
    return values


def parse_knn(text: str | None) -> list[str]:
    if text is None:
        return ["envelope"]
    modes = [m.strip() for m in text.split(",") if m.strip()]
    if modes == ["none"]:
        return []
    bad = [m for m in modes if m not in KNN_MODES]
    if bad or not modes:
        raise InputError(f"--knn: want none or some of {', '.join(KNN_MODES)}, got {text!r}")
    return modes


def pick_speakers(names: str | None, split: str | None, limit: int | None) -> list:
    from vcstream.corpus.realvoice import find_speakers, get_speakers

    if names:
        chosen = get_speakers([n.strip() for n in names.split(",") if n.strip()])
    else:
        chosen = find_speakers(split or "test")
    if limit is not None:
        if limit < 1:
            raise InputError(f"--max-speakers must be at least 1, got {limit}")
        chosen = chosen[:limit]
    if not chosen:
        raise InputError("no real-voice speakers to evaluate")
    return chosen


def clone_main(args) -> dict:
    """`vcstream bench --clone`: prints the tables and returns the report."""
    import logging

    import torch

    from vcstream.app import build_runtime
    from vcstream.asr import Transcriber
    from vcstream.bench.report import machine_description, scoring_progress
    from vcstream.config import load_config
    from vcstream.synth.knn import check_settings

    t_start = time.perf_counter()
    # Cheap checks first: bad options and missing data are reported before models load.
    n_sentences = getattr(args, "sentences", None) or DEFAULT_SENTENCES
    if not 1 <= n_sentences <= len(SENTENCES):
        raise InputError(f"--sentences: 1 to {len(SENTENCES)} for --clone, got {n_sentences}")
    lengths = parse_lengths(getattr(args, "lengths", None))
    knn_modes = parse_knn(getattr(args, "knn", None))
    speakers = pick_speakers(
        getattr(args, "speakers", None),
        getattr(args, "split", None),
        getattr(args, "max_speakers", None),
    )
    knn_options = {
        key: value
        for key, value in (
            ("k", getattr(args, "knn_k", None)),
            ("n_ceps", getattr(args, "knn_ceps", None)),
            ("alpha", getattr(args, "knn_alpha", None)),
        )
        if value is not None
    }
    check_settings(**{**KNN_DEFAULTS, **knn_options})
    left_out = getattr(args, "no_adapt", False)
    adapt = None if left_out else load_adapt()
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)  # a line per utterance
    cfg = load_config(args.config)
    if args.device:
        cfg.device.compute = args.device
    cfg.synth.backend = "fastpitch"  # the one that clones
    rt = build_runtime(cfg, realtime=False)  # quality figures: auto means full
    configured = cfg.device.cpu_threads if rt.device.type == "cpu" else 0
    transcriber = Transcriber(cpu_threads=configured or torch.get_num_threads())
    png_dir = getattr(args, "png_dir", None)
    with scoring_progress(__name__) as advance:
        report = measure_clone(
            rt,
            rt.synthesizer,
            transcriber,
            speakers,
            lengths=lengths,
            sentences=SENTENCES[:n_sentences],
            knn_modes=knn_modes,
            knn_options=knn_options,
            adapt=adapt,
            keep_mels=bool(png_dir),
            progress=advance,
            adapt_wall_s=cfg.adapt.max_wall_s or None,
            no_adapt_note=ADAPTATION_LEFT_OUT if left_out else ADAPTATION_NOT_AVAILABLE,
        )
    mels = report.pop("_mels", None)
    report = {
        "machine": machine_description(),
        "device": str(rt.device),
        # what the clones were heard through: lite costs a real voice 0.06-0.12 of cosine
        "vocoder": rt.vocoder_status,
        "checkpoint_step": rt.synthesizer.step,
        **report,
        "elapsed_s": round(time.perf_counter() - t_start, 1),
    }
    if png_dir and mels:
        report["spectrograms"] = save_spectrograms(mels, png_dir)
    print_clone_report(report)
    return report
