"""``python -m sparktrainer.replay``: the same command as ``sparktrainer replay``.

Nothing imports this module: the engine knows no command line.
"""

from sparktrainer.cli.replay import main

raise SystemExit(main(prog="python -m sparktrainer.replay"))
