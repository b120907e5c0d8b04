"""glattn's Hydra sweeper plugin (``hydra/sweeper=glattn``); see glattn_sweeper.py."""
