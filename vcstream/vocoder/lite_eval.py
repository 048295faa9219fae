"""``vcstream train-vocoder --evaluate``: the lite vocoder's quality against HiFi-GAN V1.

Figures, each for V1 (``full``) and lite on the same mels:

* Whisper CER of FastPitch sentences (the default voice and the voices of the recordings);
* copy synthesis: a recording's own mel vocoded by each; the GE2E cosine of the result to
  the recording, and lite's cosine as a fraction of V1's;
* multi-resolution STFT distance of lite's audio to V1's (0 = identical);
* a PNG of V1's spectrogram over lite's, for one synthesised sentence.

Recordings: the test fixtures (Piper joe and CMU slt) and two sentences rendered now by
flite and festival voices that are not in any training text.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from vcstream.audio.mel import SAMPLE_RATE_HZ, mel_spectrogram

SENTENCES = (
    "The quick brown fox jumps over the lazy sleeping dog.",
    "Hello there, friend.",
    "A performer steps up to the microphone and begins to speak.",
    "Moments later, the text is spoken back in that voice.",
    "Please keep your tickets ready at the gate.",
    "Seven bright lanterns hung above the quiet harbour.",
)
FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures"
RENDERED = (
    ("flite_awb", "Nobody expected the little boat to cross the ocean before winter."),
    ("festival_ked", "Our neighbours painted their kitchen a cheerful shade of yellow."),
)


def _recordings() -> list[tuple[str, np.ndarray]]:
    from vcstream.audio.io import read_wav, resample
    from vcstream.corpus.features import clean_audio
    from vcstream.corpus.voices import load_voice

    out = []
    for name in ("speech_joe.wav", "speech_slt.wav"):
        audio, rate = read_wav(FIXTURES / name)
        out.append((name, resample(audio, rate, SAMPLE_RATE_HZ)))
    for voice, text in RENDERED:
        audio, rate = load_voice(voice).render(text)
        out.append((voice, clean_audio(audio, rate)))
    return out


def evaluate(lite_path: str | None, png: Path | None, sentences: int = len(SENTENCES)) -> dict:
    from vcstream.asr import Transcriber, character_error_rate
    from vcstream.audio.io import resample
    from vcstream.encoder.embed import embed_utterance
    from vcstream.encoder.ge2e import SpeakerEncoder
    from vcstream.synth.base import SynthControls, VoiceConditioning
    from vcstream.synth.fastpitch import FastPitchSynthesizer
    from vcstream.text.g2p import TextFrontEnd
    from vcstream.vocoder import load_vocoder
    from vcstream.vocoder.lite import load_lite
    from vcstream.vocoder.lite_train import mrstft_distance, save_spectrograms

    full, lite = load_vocoder("universal"), load_lite(lite_path)
    encoder = SpeakerEncoder.from_checkpoint()

    def vocode(mel: torch.Tensor) -> dict[str, np.ndarray]:
        with torch.inference_mode():
            return {"full": full(mel).numpy(), "lite": lite(mel).numpy()}

    def embed(audio: np.ndarray) -> np.ndarray:
        return embed_utterance(encoder, resample(audio, SAMPLE_RATE_HZ, 16000)).embedding

    copy, voices, dists = [], [VoiceConditioning()], []
    for name, audio in _recordings():
        outs = vocode(mel_spectrogram(audio))
        ref = embed(audio)
        cos = {q: float(np.dot(embed(a), ref)) for q, a in outs.items()}
        dists.append(mrstft_distance(outs["lite"], outs["full"]))
        copy.append({"recording": name, "cosine_full": cos["full"], "cosine_lite": cos["lite"]})
        voices.append(VoiceConditioning(ref))
    synth, frontend = FastPitchSynthesizer(chunk_frames=1 << 20), TextFrontEnd()
    asr = Transcriber(cpu_threads=torch.get_num_threads())  # OMP_NUM_THREADS=1: one core
    cer: dict[str, list[float]] = {"full": [], "lite": []}
    synth_dists = []
    for i, text in enumerate(SENTENCES[:sentences]):
        for j, voice in enumerate(voices[:3]):
            mel = torch.cat(
                [
                    torch.cat(list(synth.synthesize(s.phonemes, voice, SynthControls())), 1)
                    for s in frontend.prepare(text, 2000)
                ],
                1,
            )
            outs = vocode(mel.float().cpu())
            synth_dists.append(mrstft_distance(outs["lite"], outs["full"]))
            for q, a in outs.items():
                cer[q].append(character_error_rate(text, asr.transcribe(a, SAMPLE_RATE_HZ)))
            if png is not None and i == 0 and j == 0:
                save_spectrograms(png, outs["full"], outs["lite"], f"FastPitch, {text!r}")
    mean_cos = {q: float(np.mean([c[f"cosine_{q}"] for c in copy])) for q in ("full", "lite")}
    return {
        "lite_checkpoint": str(lite_path or "shipped"),
        "lite_step": getattr(lite, "step", None),
        "cer_full": float(np.mean(cer["full"])),
        "cer_lite": float(np.mean(cer["lite"])),
        "cer_items": len(cer["full"]),
        "copy_synthesis": copy,
        "copy_cosine_full": mean_cos["full"],
        "copy_cosine_lite": mean_cos["lite"],
        "copy_cosine_ratio": mean_cos["lite"] / mean_cos["full"],
        "mrstft_to_full_copy": float(np.mean(dists)),
        "mrstft_to_full_synth": float(np.mean(synth_dists)),
        **({"png": str(png)} if png is not None else {}),
    }


def main(lite_path: str | None, png: str | None, sentences: int = len(SENTENCES)) -> int:
    report = evaluate(lite_path, Path(png) if png else None, sentences)
    print(json.dumps(report, indent=1))
    return 0
