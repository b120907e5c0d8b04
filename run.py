"""glattn entry point: `python run.py [overrides]`, `python run.py -m [sweep overrides]`."""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig):
    from glattn.runner import cli_exit
    from glattn.train import main as run_task

    try:
        return run_task(cfg)
    except BaseException as exc:  # one message for a user error; see glattn.runner.cli_exit
        cli_exit(exc)


if __name__ == "__main__":
    main()
