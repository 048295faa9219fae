"""The systemd unit and `make install-service`, staged under a temporary DESTDIR (nothing is
installed on, enabled on or started on the machine running the tests)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from netutil import ROOT

from vcstream.config import load_config

UNIT = Path("etc/systemd/system/vcstream.service")
MAX_EXPOSURE = 2.0  # systemd-analyze security: 0 = locked down, 10 = exposed; "OK" is < 3

needs_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed (Debian package systemd): the unit is not checked",
)
needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def _install(destdir: Path, prefix: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            "make",
            "-s",
            "-C",
            str(ROOT),
            "install-service",
            f"DESTDIR={destdir}",
            f"PREFIX={prefix}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def staged(tmp_path_factory) -> Path:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    dest = tmp_path_factory.mktemp("root")
    # Where an installation keeps the checkout (not under /home, which the unit hides): here
    # one whose .venv is the virtual environment running these tests.
    prefix = tmp_path_factory.mktemp("opt") / "vcstream"
    prefix.mkdir()
    (prefix / ".venv").symlink_to(sys.prefix)
    done = _install(dest, prefix)
    assert done.returncode == 0, done.stderr
    return dest, prefix


@needs_make
def test_install_service_lays_out_user_config_state_and_unit(staged):
    staged, prefix = staged
    config = staged / "etc/vcstream/vcstream.toml"
    assert config.read_text() == (ROOT / "configs/default.toml").read_text()
    assert oct(config.stat().st_mode & 0o777) == "0o640"  # it may hold the token
    load_config(config)  # what ExecStart reads
    state = staged / "var/lib/vcstream"
    assert state.is_dir() and oct(state.stat().st_mode & 0o777) == "0o750"
    unit = (staged / UNIT).read_text()
    assert (
        f"ExecStart={prefix}/.venv/bin/vcstream serve --config /etc/vcstream/vcstream.toml" in unit
    )
    assert "/opt/vcstream" not in unit
    sysusers = (staged / "etc/sysusers.d/vcstream.conf").read_text()
    assert sysusers.startswith("u vcstream - ")
    if shutil.which("systemd-sysusers"):
        passwd = (staged / "etc/passwd").read_text().splitlines()
        user = [line for line in passwd if line.startswith("vcstream:")]
        assert len(user) == 1 and user[0].endswith(":/var/lib/vcstream:/usr/sbin/nologin")
        groups = (staged / "etc/group").read_text()
        assert re.search(r"^audio:x:\d+:vcstream$", groups, re.M), groups


@needs_make
def test_install_service_keeps_an_edited_config(staged):
    staged, prefix = staged
    config = staged / "etc/vcstream/vcstream.toml"
    edited = config.read_text().replace('level = "INFO"', 'level = "DEBUG"')
    config.write_text(edited)
    done = _install(staged, prefix)
    assert done.returncode == 0, done.stderr
    assert "kept the existing /etc/vcstream/vcstream.toml" in done.stdout
    assert config.read_text() == edited


@needs_make
def test_install_service_refuses_a_checkout_the_service_cannot_read(tmp_path):
    done = _install(tmp_path, prefix=Path("/home/someone/vcstream"))
    assert done.returncode != 0
    assert "hidden from the service (ProtectHome=yes)" in done.stderr
    missing = _install(tmp_path, prefix=tmp_path / "no-checkout")
    assert missing.returncode != 0 and "run 'make install'" in missing.stderr
    assert not (tmp_path / UNIT).exists()


@needs_analyze
def test_unit_verifies(staged):
    staged, _ = staged
    done = subprocess.run(
        ["systemd-analyze", "verify", str(staged / UNIT)], capture_output=True, text=True
    )
    assert done.returncode == 0 and done.stdout == "", done.stdout + done.stderr
    assert "vcstream.service" not in done.stderr, done.stderr


@needs_analyze
def test_unit_verify_catches_a_broken_unit(staged, tmp_path):
    staged, prefix = staged
    broken = tmp_path / "vcstream.service"
    broken.write_text(
        (staged / UNIT).read_text().replace(f"{prefix}/.venv/bin/vcstream", "/nonexistent/vcstream")
    )
    done = subprocess.run(
        ["systemd-analyze", "verify", str(broken)], capture_output=True, text=True
    )
    assert done.returncode != 0 and "not executable" in done.stderr


@needs_analyze
def test_unit_security_exposure_is_low(staged, capsys):
    staged, _ = staged
    done = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", str(staged / UNIT)],
        capture_output=True,
        text=True,
    )
    out = done.stdout + done.stderr
    match = re.search(r"Overall exposure level for vcstream\.service: ([\d.]+) (\w+)", out)
    assert match, out[-2000:]
    with capsys.disabled():
        print(f"\n  systemd-analyze security: {match.group(0)}")
    assert float(match.group(1)) <= MAX_EXPOSURE, out
