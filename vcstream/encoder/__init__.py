"""The speaker encoder: GE2E network, 16 kHz front end, batch and incremental embedding."""

from vcstream.encoder.embed import Embedding, embed_stream, embed_utterance
from vcstream.encoder.ge2e import SpeakerEncoder
from vcstream.encoder.incremental import EmbeddingUpdate, IncrementalEmbedder
from vcstream.encoder.vad import VoiceActivityGate, voiced_audio

__all__ = [
    "Embedding",
    "EmbeddingUpdate",
    "IncrementalEmbedder",
    "SpeakerEncoder",
    "VoiceActivityGate",
    "embed_stream",
    "embed_utterance",
    "voiced_audio",
]
