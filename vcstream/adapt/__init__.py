"""Adaptation of the synthesiser to one real speaker: the second stage of cloning.

Zero-shot conditioning (the GE2E embedding) reaches only as far as the training voices;
``adapt`` fine-tunes the parameters that the amount of speech supports, on the speaker's
own recordings, and returns them as an ``AdaptedVoice`` that speaks through the normal
pipeline::

    from vcstream.adapt import adapt
    voice = adapt(synth, [(audio, 16000), ...])          # Whisper transcribes them
    voice = adapt(synth, recs, transcripts=["...", ...])  # or give one text per recording
    for chunk in pipeline.render(prepared, voice.conditioning(), SynthControls()): ...

* ``synth``: a ``FastPitchSynthesizer`` (only its model, symbols and checkpoint id are
  read; it is not changed, and it keeps serving other voices while and after adapting).
* ``recordings``: ``(float32 mono audio, sample_rate_hz)`` pairs, any rate; long ones are
  cut at Whisper's segment boundaries. At least ``MIN_SECONDS`` of speech is needed, else
  ``NotEnoughVoiceError`` says how much more.
* ``transcripts``: one per recording, or None to use the bundled Whisper (tiny.en:
  English only; give transcripts for other languages).
* ``seed``: the held-out split and the batches (same inputs and seed, same voice).
* ``max_wall_s``: stop tuning (keeping the best parameters so far) once the whole run has
  taken this long; None: the plan's own step count with early stopping.
* ``steps`` / ``plan``: override the plan's step count, or the plan itself (a name of
  ``vcstream.adapt.tune.PLANS``); by default both follow the amount of speech.
* ``progress(stage, fraction, info)``: called with stage ``"transcribe"``, ``"features"``,
  ``"probe"`` (``info``: ``vocoder``, which one probes), ``"tune"`` (``info``: step, steps,
  and ``probe_similarity``, or ``held_out_loss`` with ``selection="held-out loss"``) and
  ``"measure"``.
* ``selection``: what keeps the tuned parameters: ``"similarity"`` (default: the GE2E
  cosine of probe sentences, vocoded by ``probe_vocoder``, to the recordings;
  ``adapt.probe``) or ``"held-out loss"`` (the mel loss on held-out frames).
* ``probe_vocoder``: the vocoder of those probes (HiFi-GAN V1: ``vocoder`` when given,
  else loaded), or ``lite_probe_vocoder`` (a ``LiteVocoder``) where, within
  ``max_wall_s``, probes through V1 would take too much of the time left on this machine
  (``probe.choose_probe_vocoder``; the choice is the voice's ``probe_vocoder``). With a
  transcriber (given, or Whisper loaded here) a tuned model whose
  probe sentences Whisper reads with more than 10 % CER (``probe.MAX_CER``) is never kept.
* ``vocoder``: a ``HifiGanGenerator``; when given, the GE2E cosine of speech synthesised
  from new sentences to the recordings is measured before and after (``similarity_before``,
  ``similarity``; about 3 s more).
* ``precision``: ``"auto"`` (bfloat16 autocast on CUDA or a CPU with native bfloat16,
  else float32), ``"bf16"`` or ``"fp32"``.
* ``transcriber`` / ``extractor``: loaded models to reuse (``asr.Transcriber``,
  ``corpus.features.FeatureExtractor``); loaded here when not given.

``AdaptedVoice`` holds the adapted parameters (``params``: name -> tensor, a small
subset of the model), the embedding and log-F0 statistics they were tuned with, the
checkpoint id they belong to, and metadata (``metadata()``: seconds used, plan, steps,
held-out mel loss before/after, wall time, transcripts, what was left out and why).
``conditioning()`` is the ``VoiceConditioning`` to synthesise with; the synthesiser applies
the parameters per request (a cached copy of the model per adapted voice), so adapted and
plain voices can be spoken one after the other, and a voice can be swapped at any time.
A synthesiser over another checkpoint refuses the parameters with an error.
``AdaptedVoice.to_json()`` / ``from_json()`` is the stored form (voice profiles).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from vcstream.errors import InputError, NoVoiceError

if TYPE_CHECKING:
    from vcstream.adapt.voice import AdaptedVoice

MIN_SECONDS = 3.0  # of recordings given
SELECTIONS = ("similarity", "held-out loss")
# Of speech left after trimming silences and leaving out what Whisper was unsure of (a 3 s
# recording keeps a little less than 3 s).
MIN_USABLE_S = 2.0


class NotEnoughVoiceError(NoVoiceError):
    """Too little usable speech to adapt to; says how much more is needed."""

    code = "too_little_voice"

    def __init__(self, have_s: float, need_s: float = MIN_SECONDS, detail: str = "") -> None:
        self.have_s = have_s
        self.need_s = need_s
        more = max(0.0, need_s - have_s)
        super().__init__(
            f"adaptation needs at least {need_s:.0f} s of speech; {have_s:.1f} s usable, "
            f"{more:.1f} s more needed" + (f" ({detail})" if detail else "")
        )


def speech_seconds(recordings: Sequence[tuple[np.ndarray, int]]) -> float:
    """Total length of the recordings in seconds (an upper bound of the usable speech)."""
    return sum(len(a) / float(sr) for a, sr in recordings)


def adapt(
    synthesizer,
    recordings: Sequence[tuple[np.ndarray, int]],
    *,
    transcripts: Sequence[str] | None = None,
    seed: int = 0,
    max_wall_s: float | None = None,
    progress: Callable[[str, float, dict[str, Any]], None] | None = None,
    steps: int | None = None,
    plan: str | None = None,
    vocoder=None,
    transcriber=None,
    extractor=None,
    precision: str = "auto",
    selection: str = "similarity",
    probe_vocoder=None,
    lite_probe_vocoder=None,
) -> AdaptedVoice:
    """Fine-tune ``synthesizer``'s model to the speaker of ``recordings`` (see the module
    docstring)."""
    from vcstream.adapt.prepare import prepare
    from vcstream.adapt.tune import PLANS, Tuner, plan_for
    from vcstream.adapt.voice import AdaptedVoice
    from vcstream.synth.variance import cepstral_std

    if selection not in SELECTIONS:
        raise InputError(f"selection must be one of {', '.join(SELECTIONS)}, not {selection!r}")
    if precision not in ("auto", "bf16", "fp32"):
        raise InputError(f"precision must be auto, bf16 or fp32, not {precision!r}")
    if precision == "auto":
        precision = _auto_precision(synthesizer.device if hasattr(synthesizer, "device") else "cpu")
    t0 = time.monotonic()
    deadline = None if max_wall_s is None else t0 + float(max_wall_s)
    model = getattr(synthesizer, "model", None)
    if model is None or not hasattr(synthesizer, "checkpoint_id"):
        raise InputError(
            f"synthesiser {getattr(synthesizer, 'name', '?')!r} cannot be adapted "
            "(only fastpitch can)"
        )
    total = speech_seconds(recordings) if recordings else 0.0
    if total < MIN_SECONDS:
        raise NotEnoughVoiceError(total)

    def report(stage: str, fraction: float, **info: Any) -> None:
        if progress is not None:
            progress(stage, fraction, info)

    if extractor is None:
        from vcstream.corpus.features import FeatureExtractor

        extractor = FeatureExtractor(str(synthesizer.device))
    if transcripts is None and transcriber is None:
        from vcstream.asr import Transcriber

        report("transcribe", 0.0)
        transcriber = Transcriber()
    else:
        report("transcribe", 0.0)
    prepared = prepare(recordings, transcripts, extractor=extractor, transcriber=transcriber)
    report("features", 1.0, seconds=round(prepared.seconds, 2))
    if prepared.seconds < MIN_USABLE_S:
        raise NotEnoughVoiceError(
            prepared.seconds,
            MIN_USABLE_S,
            detail="; ".join(prepared.dropped[:3]) if prepared.dropped else "",
        )
    if prepared.log_f0 is None:
        raise NoVoiceError("no voiced (pitched) frames in the recordings: nothing to adapt to")
    if plan is not None and plan not in PLANS:
        raise InputError(f"unknown adaptation plan {plan!r} (known: {', '.join(PLANS)})")
    chosen = PLANS[plan] if plan is not None else plan_for(prepared.seconds)
    table = {s: i for i, s in enumerate(synthesizer.symbols)}
    tuner = Tuner(
        model,
        table,
        prepared.utterances,
        prepared.embedding,
        prepared.log_f0,
        chosen,
        seed=seed,
        precision=precision,
        device=synthesizer.device,
    )
    scorer = probe_name = None
    if selection == "similarity":
        from vcstream.adapt.probe import ProbeScorer, choose_probe_vocoder

        if probe_vocoder is None:
            probe_vocoder = vocoder
        if probe_vocoder is None:
            from vcstream.vocoder.hifigan import HifiGanGenerator

            probe_vocoder = HifiGanGenerator.from_checkpoint(None, synthesizer.device)
        left = None if deadline is None else deadline - time.monotonic()
        probe_vocoder, probe_name = choose_probe_vocoder(
            probe_vocoder, lite_probe_vocoder, left, synthesizer.device
        )
        report("probe", 0.0, vocoder=probe_name)
        scorer = ProbeScorer(
            probe_vocoder,
            extractor,
            table,
            prepared.embedding,
            prepared.log_f0,
            device=synthesizer.device,
            transcriber=transcriber,
        )
    result = tuner.run(
        max_steps=steps,
        deadline=deadline,
        progress=lambda k, n, figures: report("tune", k / n, step=k, steps=n, **figures),
        scorer=scorer,
    )
    voice = AdaptedVoice(
        params=result.params,
        embedding=prepared.embedding,
        log_f0_mean=float(prepared.log_f0[0]),
        log_f0_std=float(prepared.log_f0[1]),
        checkpoint_id=synthesizer.checkpoint_id,
        plan=chosen.name,
        seconds=prepared.seconds,
        utterances=len(prepared.utterances),
        steps=result.steps,
        held_out_loss_before=result.held_out_before,
        held_out_loss=result.held_out,
        wall_s=0.0,
        transcripts=[u.text for u in prepared.utterances],
        dropped=prepared.dropped,
        selected_by=selection,
        probe_vocoder=probe_name,
        probe_similarity_before=result.score_before,
        probe_similarity=result.score,
        prosody_offsets=result.prosody,
        cepstral_std=cepstral_std([u.mel for u in prepared.utterances]),
    )
    if vocoder is not None:
        report("measure", 0.0)
        voice.similarity_before, voice.similarity = measure_similarity(
            synthesizer, vocoder, extractor, voice
        )
        report("measure", 1.0)
    voice.wall_s = time.monotonic() - t0
    return voice


def warm_up() -> None:
    """Pay the one-off costs of a process's first adaptation now (call it where the models
    are loaded): the first optimiser imports ``torch._dynamo`` (3.3 s measured) and the
    first resampling compiles resampy's kernel (about 3 s); inside the first adaptation
    they came out of its wall-clock budget."""
    import torch

    from vcstream.audio.io import resample

    torch.optim.Adam([torch.zeros(1, requires_grad=True)])
    resample(np.zeros(2205, np.float32), 22050, 16000)


def _auto_precision(device) -> str:
    """bfloat16 where it pays: CUDA, or a CPU with native bfloat16 dot products (the
    trainer measured 1.6x per step there); elsewhere it is emulated, and slower."""
    import torch

    if torch.device(device).type == "cuda":
        return "bf16"
    from vcstream.vocoder.streaming import cpu_has_native_bf16

    return "bf16" if cpu_has_native_bf16() else "fp32"


def measure_similarity(synthesizer, vocoder, extractor, voice: AdaptedVoice) -> tuple[float, float]:
    """GE2E cosine of ``PROBE_SENTENCES`` spoken zero-shot and adapted to the voice's
    embedding (the recordings'): the figure status shows. The tuner's own probe
    (``adapt.probe.ProbeScorer``), with ``vocoder`` (HiFi-GAN V1 here)."""
    from vcstream.adapt.probe import ProbeScorer

    log_f0 = None
    if voice.log_f0_mean is not None and voice.log_f0_std is not None:
        log_f0 = (voice.log_f0_mean, voice.log_f0_std)
    table = {s: i for i, s in enumerate(synthesizer.symbols)}
    probe = ProbeScorer(
        vocoder, extractor, table, voice.embedding, log_f0, device=synthesizer.device
    )
    return probe(synthesizer.model), probe(synthesizer.model_for(voice.adapted_params()))


def __getattr__(name: str):
    # torch loads only when an adapted voice is used (`vcstream top` imports the summary)
    if name == "AdaptedVoice":
        from vcstream.adapt.voice import AdaptedVoice

        return AdaptedVoice
    raise AttributeError(name)


__all__ = [
    "MIN_SECONDS",
    "AdaptedVoice",
    "NotEnoughVoiceError",
    "adapt",
    "measure_similarity",
    "speech_seconds",
    "warm_up",
]
