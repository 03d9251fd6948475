"""A pytest plugin (loaded by `-p` in pyproject) that derandomises Hypothesis under CI.

Property tests explore new examples on every local run; CI (``CI`` set, as `.ci/run` is invoked)
replays a fixed sequence so that a red run is always reproducible and never a roll of the dice.
"""

from __future__ import annotations

import os

try:
    from hypothesis import settings
except ImportError:  # the cluster and integration envs do not install Hypothesis
    settings = None

if settings is not None:
    settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
    if os.environ.get("CI"):
        settings.load_profile("ci")
