"""Saved voice profiles: a speaker embedding plus metadata, one JSON file per voice.

A profile may carry an adapted voice (``vcstream.adapt``): fine-tuned parameters tagged
with the checkpoint they belong to, with a digest checked on reading. Loading such a
profile for a synthesiser over another checkpoint is an error (``check_checkpoint``),
never a silently wrong voice."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vcstream.errors import InputError, VoiceNotFoundError

if TYPE_CHECKING:
    from vcstream.adapt.voice import AdaptedVoice
    from vcstream.synth.base import VoiceConditioning

# Matched with fullmatch: "$" alone would also match before a trailing newline ("trail\n").
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def default_voices_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "vcstream" / "voices"


def valid_name(name: object) -> bool:
    return isinstance(name, str) and _NAME.fullmatch(name) is not None


def check_name(name: str) -> str:
    if not valid_name(name):
        shown = repr(name[:70]) if isinstance(name, str) else type(name).__name__
        raise InputError(
            f"invalid voice name {shown}: use 1-64 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit"
        )
    return name


@dataclass
class VoiceProfile:
    name: str
    embedding: np.ndarray  # (256,), L2-normalised
    voiced_seconds: float
    model: str
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    log_f0_mean: float | None = None
    log_f0_std: float | None = None
    sources: list[str] = field(default_factory=list)
    adapted: AdaptedVoice | None = None
    # How the voice's speaker consented (vcstream.consent.ConsentRecord.to_json); None in
    # profiles written before consent records existed.
    consent: dict | None = None
    # The spread of the voice's spectral detail (``synth.variance``); None in profiles
    # written before it was measured (they speak with the synthesiser's own).
    cepstral_std: np.ndarray | None = None

    def to_json(self) -> dict:
        d = {
            "name": self.name,
            "created": self.created,
            "voiced_seconds": round(float(self.voiced_seconds), 3),
            "model": self.model,
            "log_f0_mean": self.log_f0_mean,
            "log_f0_std": self.log_f0_std,
            "sources": self.sources,
            "consent": self.consent,
            "embedding": [float(x) for x in self.embedding],
        }
        if self.cepstral_std is not None:
            d["cepstral_std"] = [round(float(x), 5) for x in self.cepstral_std]
        if self.adapted is not None:
            d["adapted"] = self.adapted.to_json()
        return d

    def summary(self) -> dict:
        d = self.to_json()
        d.pop("embedding")
        d.pop("cepstral_std", None)
        if self.adapted is not None:
            meta = self.adapted.metadata()
            d["adapted"] = {
                k: meta[k]
                for k in ("checkpoint", "plan", "seconds", "steps", "similarity", "wall_s")
            }
        return d

    def check_checkpoint(self, checkpoint_id: str | None) -> None:
        """Refuse adapted parameters made for another checkpoint than ``checkpoint_id``
        (None: a synthesiser that cannot take adapted parameters at all)."""
        if self.adapted is None or self.adapted.checkpoint_id == checkpoint_id:
            return
        if checkpoint_id is None:
            raise InputError(
                f"voice {self.name!r} is adapted to a FastPitch checkpoint; this synthesiser "
                "cannot use adapted parameters (use the fastpitch backend)"
            )
        raise InputError(
            f"voice {self.name!r} was adapted to checkpoint {self.adapted.checkpoint_id}, "
            f"but the synthesiser runs checkpoint {checkpoint_id}: adapt it again with "
            "`vcstream embed ... --save NAME --adapt`"
        )

    def conditioning(self) -> VoiceConditioning:
        from vcstream.synth.base import VoiceConditioning

        if self.adapted is not None:  # speaks with what its parameters were tuned with
            return self.adapted.conditioning()
        return VoiceConditioning(
            self.embedding, self.log_f0_mean, self.log_f0_std, cepstral_std=self.cepstral_std
        )


def _consent_of(value: object) -> dict | None:
    if value is not None and not (isinstance(value, dict) and isinstance(value.get("mode"), str)):
        raise ValueError("consent must be an object with a 'mode'")
    return value


class VoiceStore:
    def __init__(self, directory: str | Path | None = None) -> None:
        self.dir = Path(directory) if directory else default_voices_dir()

    def _path(self, name: str) -> Path:
        return self.dir / f"{check_name(name)}.json"

    def save(self, profile: VoiceProfile) -> Path:
        """Write atomically: a temp file in the same folder, fsync, then rename."""
        path = self._path(profile.name)
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(profile.to_json(), f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
        return path

    def load(self, name: str) -> VoiceProfile:
        path = self._path(name)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            emb = np.asarray(data["embedding"], dtype=np.float32)
            if emb.shape != (256,) or not np.all(np.isfinite(emb)):
                raise ValueError("embedding must be 256 finite numbers")
            adapted = None
            if data.get("adapted") is not None:
                from vcstream.adapt.voice import AdaptedVoice

                adapted = AdaptedVoice.from_json(data["adapted"])
            spread = data.get("cepstral_std")
            if spread is not None:
                from vcstream.synth.variance import check_cepstral_std

                spread = check_cepstral_std(spread)
            return VoiceProfile(
                name=data["name"],
                embedding=emb,
                voiced_seconds=float(data["voiced_seconds"]),
                model=str(data["model"]),
                created=str(data["created"]),
                log_f0_mean=data.get("log_f0_mean"),
                log_f0_std=data.get("log_f0_std"),
                sources=list(data.get("sources", [])),
                adapted=adapted,
                consent=_consent_of(data.get("consent")),
                cepstral_std=spread,
            )
        except FileNotFoundError as err:
            known = ", ".join(p["name"] for p in self.list()) or "none saved"
            raise VoiceNotFoundError(f"unknown voice {name!r} (known: {known})") from err
        except (ValueError, KeyError, TypeError, AttributeError, InputError) as err:
            raise InputError(f"voice profile {path} is corrupt: {err}") from err

    def list(self) -> list[dict]:
        if not self.dir.is_dir():
            return []
        out = []
        for p in sorted(self.dir.glob("*.json")):
            try:
                out.append(self.load(p.stem).summary())
            except InputError:
                out.append({"name": p.stem, "error": "corrupt profile"})
        return out
