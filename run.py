"""``python run.py [overrides]``: the thin alias of the ``glattn`` console script
(glattn.cli: ``python run.py -m [sweep overrides]``, ``python run.py report ...`` alike)."""

import sys

from glattn.cli import main

if __name__ == "__main__":
    sys.exit(main())
