"""``python -m rltrader``: the same as the ``rltrader`` command."""

import sys

from rltrader.tools.cli import main

sys.exit(main())
