"""Registers glattn's structured-config schemas (glattn/schema/) in Hydra's ConfigStore.

Hydra imports every module below hydra_plugins/ when it first looks for plugins, before it
composes a config, so conf/ can name /schema/... in any process: run.py, the compose API in
tests, launcher job processes.
"""

import glattn.schema  # noqa: F401
