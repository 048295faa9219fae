"""The adaptation process: its own models, low priority, one torch thread.

Adaptation is seconds to a minute of fine-tuning; in the daemon's process it would take
the GIL and the cores from synthesis. Here it runs in a child process (``spawn``: no
copied threads or locks of the parent) at a raised niceness, so the scheduler gives the
daemon's threads the cores whenever they want them.

Messages, child to parent, on ``results`` (tuples):

* ``("ready", None, {})`` once the models are loaded;
* ``("progress", job, {"stage", "fraction", ...})`` while adapting;
* ``("done", job, AdaptedVoice.to_json())``;
* ``("error", job, {"code", "message"})``.

Jobs, parent to child, on ``jobs``: ``(job, audio_16k, seed, max_wall_s, steps, measure)``
or ``None`` to exit.
"""

from __future__ import annotations

import os
import traceback
from typing import Any


def worker_main(jobs, results, checkpoint: str | None, nice: int, threads: int) -> None:
    """Child process entry point (module level: ``spawn`` pickles it by name)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        if nice > 0:
            os.nice(nice)
        import torch

        torch.set_num_threads(max(1, threads))
        from vcstream.adapt import adapt, warm_up
        from vcstream.adapt.probe import load_probe_vocoders
        from vcstream.asr import Transcriber
        from vcstream.corpus.features import FeatureExtractor
        from vcstream.errors import VcstreamError
        from vcstream.synth.fastpitch import FastPitchSynthesizer

        synth = FastPitchSynthesizer(checkpoint)
        extractor = FeatureExtractor("cpu")
        transcriber = Transcriber(cpu_threads=max(1, threads))
        warm_up()
        vocoder, lite = load_probe_vocoders("cpu")
    except Exception as err:  # reported to the parent, which says it
        results.put(("error", None, {"code": "model_missing", "message": f"{err}"}))
        return
    results.put(("ready", None, {"checkpoint": synth.checkpoint_id}))
    while True:
        job = jobs.get()
        if job is None:
            return
        job_id, audio, seed, max_wall_s, steps, measure = job

        def progress(stage: str, fraction: float, info: dict[str, Any], job_id=job_id) -> None:
            results.put(("progress", job_id, {"stage": stage, "fraction": fraction, **info}))

        try:
            voice = adapt(
                synth,
                [(audio, 16000)],
                seed=seed,
                max_wall_s=max_wall_s,
                steps=steps or None,
                progress=progress,
                vocoder=vocoder if measure else None,
                probe_vocoder=vocoder,  # V1 scores the tuning (adapt.probe) ...
                lite_probe_vocoder=lite,  # ... or lite, where V1 is too slow for the budget
                transcriber=transcriber,
                extractor=extractor,
            )
            results.put(("done", job_id, voice.to_json()))
        except VcstreamError as err:
            results.put(("error", job_id, {"code": err.code, "message": str(err)}))
        except Exception as err:  # a bug: the parent logs the traceback
            results.put(
                (
                    "error",
                    job_id,
                    {
                        "code": "internal",
                        "message": f"adaptation failed: {type(err).__name__}: {err}",
                        "traceback": traceback.format_exc(),
                    },
                )
            )
