"""``python -m medsam_echo.train``: the ``train`` command, for launchers that take a module
(``accelerate launch -m medsam_echo.train``, ``torchrun -m medsam_echo.train``). See ``cli/train.py``."""

import sys

from medsam_echo.cli.train import main, parse_args

__all__ = ["main", "parse_args"]

if __name__ == "__main__":
    sys.exit(main())
