"""glattn's workstation launcher (``hydra/launcher=local_gpus``); see local_gpus_launcher.py."""
