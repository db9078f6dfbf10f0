"""``python -m pyrovae``: the command line, also as ``torchrun ... -m pyrovae train SPEC``."""

import sys

from pyrovae.cli import main

sys.exit(main())
