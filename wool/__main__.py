"""``python -m wool ...``: the ``wool`` command (``wool.cli``)."""

import sys

from wool.cli import main

sys.exit(main())
