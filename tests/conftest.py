"""Shared test settings: float64 gradchecks, hypothesis profiles sized for 2-core CI."""
import os

# Tests never touch the network: loaders fall back to files the test makes or embedded data.
os.environ.setdefault("TINYLATENT_OFFLINE", "1")

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=25, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile(
    "thorough", max_examples=200, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("TINYLATENT_HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def _seed():
    import tinylatent as tl
    tl.manual_seed(0)
    np.random.seed(0)
    yield


@pytest.fixture
def offline_data(monkeypatch, tmp_path):
    """No network and an empty data cache: loaders use the embedded data (what CI has)."""
    monkeypatch.setenv("TINYLATENT_OFFLINE", "1")
    monkeypatch.setenv("TINYLATENT_DATA", str(tmp_path / "empty_cache"))


def pytest_collection_modifyitems(config, items):
    """Long trainings run only when the -m expression names them (`-m long`, `-m "long and
    not cuda"`). pyproject's `-m 'not long'` is replaced by any -m a user gives, so
    `pytest -m "not slow"` would otherwise start hours of training."""
    if "long" in (config.getoption("markexpr") or ""):
        return                  # the expression decides, as pytest's own -m does
    long_items = [item for item in items if item.get_closest_marker("long")]
    if long_items:
        config.hook.pytest_deselected(items=long_items)
        items[:] = [item for item in items if not item.get_closest_marker("long")]
