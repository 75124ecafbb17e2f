"""`python -m medsam_echo` is the same as the `medsam-echo` command."""

import sys

from medsam_echo.cli import main

if __name__ == "__main__":
    sys.exit(main())
