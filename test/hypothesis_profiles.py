"""Hypothesis settings profiles of the property-based tests (``test/test_properties_*.py``).

- ``default``: a quick run for every ``pytest`` (about 60 examples per test);
- ``long``: at least 10,000 generated cases over the property suite, for a nightly or
  pre-release run::

      HYPOTHESIS_PROFILE=long .venv/bin/pytest test/test_properties_*.py

Import :data:`PROFILE` (or just this module) before using ``@given``: the profile named by the
``HYPOTHESIS_PROFILE`` environment variable is loaded on import. ``deadline=None`` because the
dev machine is small and shared, and a slow example is not a failure here.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_COMMON = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
    "print_blob": True,
}
settings.register_profile("default", max_examples=60, **_COMMON)
# 13 property tests x 1,000 examples = 13,000 cases (the issue asks for at least 10,000).
settings.register_profile("long", max_examples=1_000, **_COMMON)

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "default")
settings.load_profile(PROFILE)
