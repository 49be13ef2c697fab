"""``python -m aiecg``: the command line (also what ``torchrun -m aiecg train ...`` starts)."""

import sys

from aiecg.cli import main

sys.exit(main())
