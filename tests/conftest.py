"""Shared test set-up: hypothesis profiles and the ``gpu`` marker's skip."""
import os

import pytest
from hypothesis import HealthCheck, settings

# HYPOTHESIS_PROFILE picks one: ci (modest, no deadline), dev (default), intense,
# sanitize (a few examples: benchmarks/gpu_check.sh under compute-sanitizer).
settings.register_profile(
    "ci", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "dev", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "intense", max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "sanitize", max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def pytest_collection_modifyitems(config, items):
    """Skip ``@pytest.mark.gpu`` tests, with the reason, when CUDA is unusable."""
    import minitl.cuda

    if minitl.cuda.is_available():
        return
    skip = pytest.mark.skip(reason=f"no GPU: {minitl.cuda.why_unavailable()}")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
