"""The interop suite's own plumbing: a failed install is remembered, not retried by every test."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.interop import support


def test_a_failed_install_is_not_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An npm that cannot install (as offline): the first Node test gives up with npm's reason, and
    the next ones give the same reason at once, without running npm again."""
    calls = tmp_path / "calls"
    npm = tmp_path / "npm"
    npm.write_text(f'#!/bin/sh\necho run >> "{calls}"\necho "npm ERR! network unreachable" >&2\nexit 1\n')
    npm.chmod(0o755)
    monkeypatch.setattr(shutil, "which", lambda name: str(npm) if name == "npm" else None)
    monkeypatch.setattr(support, "_installed_hash", lambda: None)  # as on a fresh clone
    monkeypatch.setattr(support, "_ready", {})
    monkeypatch.setattr(support, "_failed_installs", {})
    outcomes = []
    for _ in range(3):
        with pytest.raises((pytest.fail.Exception, pytest.skip.Exception)) as raised:
            support.ensure_node_modules()
        outcomes.append(str(raised.value))
    assert calls.read_text() == "run\n"
    assert "network unreachable" in outcomes[0] and outcomes == [outcomes[0]] * 3
