"""Which tuned parameters to keep: how much like the speaker new sentences sound.

The held-out mel loss (``tune``) says how well the decoder fits frames of the speaker's own
sentences; it does not say whether new sentences sound more like them. On dev speakers it
stopped tuning far too early: ktuberling/fr from 10 s (5.9 s usable, one utterance) had its
lowest held-out loss at step 5, where the GE2E cosine of new sentences to the speaker's
*held-out* recordings was 0.60; at steps 50-60 it was 0.72 (the held-out loss by then
15 % higher). The cosine of the same sentences to the embedding of the *recordings being
adapted to*, which adaptation may look at, moved with the held-out one (81 evaluations,
four dev speakers, several plans, HiFi-GAN V1: a median of 0.019 apart, 79 % of them
within 0.03, at most 0.059): it is what the tuner
keeps and stops on when a ``ProbeScorer`` is given. Through the lite vocoder the probe is
cheaper and noisier (on ktuberling/fr from 10 s its highest score was at step 20, 0.68 to
the held-out recordings; ktuberling/ca at step 80, 0.76 against 0.75 at the held-out
loss's choice). Keeping later parameters within 0.01 of the best probe score (tuned
longer) was tried and dropped: on three dev speakers the gap closed was the same (60 % /
62 % from 10 / 30 s against 59 % / 63 %) and one row's CER rose to 11.5 %.

The probe: ``PROBE_SENTENCES`` (text in no recording and in no benchmark sentence), spoken
by the model being tuned with the speaker's conditioning, vocoded by the lite vocoder
(a tenth of HiFi-GAN V1's cost on a CPU: a probe costs about 0.5 s on one thread), embedded
by the GE2E encoder, and compared by cosine to the recordings' embedding.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from vcstream.synth.fastpitch import FastPitch, frame_ids

# New sentences (not in any recording, nor among the benchmark's sentences): what the
# scorer speaks, and what ``measure_similarity`` reports before and after.
PROBE_SENTENCES = (
    "The little boat drifted slowly across the quiet lake at sunset.",
    "Please remember to bring your umbrella when you visit us tomorrow.",
)


class ProbeScorer:
    """``scorer(model) -> float``: GE2E cosine of the probe sentences spoken by ``model``
    to the speaker's embedding (higher is more like the speaker)."""

    def __init__(
        self,
        vocoder: torch.nn.Module,
        extractor,
        table: dict[str, int],
        embedding: np.ndarray,
        log_f0: tuple[float, float] | None,  # None: the model predicts the speaker's
        *,
        sentences: Sequence[str] = PROBE_SENTENCES,
        device: torch.device | str = "cpu",
    ) -> None:
        if not sentences:
            raise ValueError("a probe needs at least one sentence")
        self.vocoder = vocoder
        self.extractor = extractor
        self.device = torch.device(device)
        self.ids = [
            torch.tensor([frame_ids(extractor.phonemes(s), table)], device=self.device)
            for s in sentences
        ]
        emb = np.asarray(embedding, np.float32)
        self.reference = emb / (np.linalg.norm(emb) + 1e-9)
        self.embedding = torch.from_numpy(emb)[None].to(self.device)
        self.log_f0 = (
            None
            if log_f0 is None
            else torch.tensor([log_f0], dtype=torch.float32, device=self.device)
        )

    @torch.inference_mode()
    def __call__(self, model: FastPitch) -> float:
        was_training = model.training
        model.eval()
        try:
            audio = []
            for ids in self.ids:
                mel = model.infer(ids, self.embedding, self.log_f0)
                audio.append(self.vocoder(mel[None].float()).reshape(-1).float().cpu().numpy())
        finally:
            model.train(was_training)
        emb = np.asarray(self.extractor.embedding(np.concatenate(audio)), np.float64)
        score = float(emb @ self.reference / (np.linalg.norm(emb) + 1e-9))
        return score if np.isfinite(score) else -1.0  # a diverged model: the worst score
