"""User settings for the Jupyter extension.

The configurable class is named ``Wool`` so that settings read naturally in
``ipython_config.py`` (``c.Wool.workers = 8``) and with ``%config Wool.workers = 8``.
The extension creates one instance per shell with the shell as its parent, so
values from the shell's config files apply, and registers it with
``shell.configurables`` so ``%config`` can change it later. Components hold the
instance and read it when they need a value, so changes take effect on the next
use without a restart unless a trait's help says otherwise.
"""

from traitlets import Bool, Float, Int, List, Unicode
from traitlets.config import Configurable

import wool

__all__ = ["Wool"]


class Wool(Configurable):
    """Settings for ``%wool`` and ``%%wool`` in IPython and Jupyter."""

    workers = Int(
        0,
        min=0,
        help=(
            "Number of local worker processes `%wool start` launches when -n is not "
            "given. 0 means one per CPU."
        ),
    ).tag(config=True)

    tags = List(
        Unicode(),
        default_value=[],
        help=(
            "Tags given to the workers `%wool start` launches when --tag is not given. "
            "Cells and routines can ask for peers carrying a tag."
        ),
    ).tag(config=True)

    show_widget = Bool(
        True,
        help="Display the live mesh widget when `%wool start` brings the mesh up.",
    ).tag(config=True)

    refresh_interval = Float(
        0.5,
        min=0.05,
        help="Seconds between refreshes of the live widget and progress displays.",
    ).tag(config=True)

    output_rate_limit = Int(
        200,
        min=0,
        help=(
            "Most lines per second of remote stdout/stderr shown for one cell (a burst "
            "of five seconds' worth shows in full); lines beyond the limit are counted "
            "and summarised. 0 means no limit."
        ),
    ).tag(config=True)

    start_timeout = Float(
        30.0,
        min=0.1,
        help="Seconds `%wool start` waits for every worker to be ready before giving up.",
    ).tag(config=True)

    def effective_workers(self) -> int:
        """``workers``, or when it is 0 the number of CPUs this process may run on."""
        return self.workers or wool.WorkerPool.default_size()
