"""`vcstream bench`: every benchmark of the project, one module per figure.

Layout (imports go one way only: ``runner`` -> figure modules -> shared modules; no
figure module imports ``runner``, and no shared module imports a figure):

Shared:

* ``report``    the machine description, the console the tables print to, the JSON
                emitter, median/min/max summaries.
* ``sentences`` the bench texts (short / medium 10-word / long).
* ``timing``    ``Run`` and ``interleave``: subjects timed in turn, round after round.
* ``quality``   the ``--quality`` list and a runtime or config per vocoder quality.
* ``daemons``   loopback daemon config and `vcstream serve` in a process of its own.
* ``runner``    ``main(args)`` for `vcstream bench`: picks the figures the flags ask for,
                prints their tables, then the JSON report.

Figures:

* ``speed``     the default figure: ``pipeline`` per quality with ``piper`` beside it,
                ratios and targets from ``compare``.
* ``pipeline``  time to first audio, real-time factor, per-stage cost of our speech path.
* ``piper``     the Piper baseline (piper-tts, text to audio) as a timing subject.
* ``compare``   vcstream's ratios to Piper and issue #10's speed targets.
* ``capacity``  `--capacity`: the most concurrent real-time streams, per quality.
* ``vocoder_variants`` `--vocoder-variants`: HiFi-GAN V1 run six ways on this CPU.
* ``network``   time to first audio as a WebSocket / ZeroMQ client sees it.
* ``vocoder``   vocoder real-time factor per chunk size and method, and what the fast paths
                cost in quality (``difference_db``, ``log_spectral_distance_db``).
* ``synth``     `--synth`: FastPitch against Piper on a corpus's validation sentences.
* ``clone``     `--clone`: cloning of real voices (``corpus.realvoice`` test speakers):
                default voice, zero-shot, kNN, adapted and ceiling per reference length.

Adding a figure: a new module ``vcstream/bench/<figure>.py`` with
``measure_<figure>(...) -> dict`` (JSON-serialisable, no printing), ``<figure>_table(report)
-> rich Table`` (or ``print_<figure>_report``) and, for a figure that runs on its own flag,
``<figure>_main(args) -> dict`` returning the report; then one entry in
``runner.STANDALONE`` (flag attribute -> "module:function") and the flag in ``cli.py``.
The runner prints nothing a figure did not return, and emits the JSON with ``report.emit_json``.
"""
