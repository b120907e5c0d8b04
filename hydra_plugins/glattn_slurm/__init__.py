"""glattn's SLURM launcher (``hydra/launcher=slurm``); see slurm_launcher.py."""
