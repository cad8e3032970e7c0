"""Shared test fixtures. Real data in ../shared/data is optional: tests that need it skip."""

import os
import pathlib

import pytest

os.environ.setdefault("KERAS_BACKEND", "jax")

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = pathlib.Path(os.environ.get("MTC_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def require_shared(*parts: str) -> pathlib.Path:
    """Path under ../shared/data, or skip the test when users don't have that folder."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent (real test data is optional)")
    return path


@pytest.fixture
def shared_pcaps() -> list[pathlib.Path]:
    folder = require_shared("pcaps")
    return sorted(p for p in folder.iterdir() if p.suffix in (".pcap", ".pcapng"))


@pytest.fixture
def shared_cicids() -> pathlib.Path:
    return require_shared("cicids2017")
