"""``python -m factory.cli``: the same as the ``factory`` command."""

from factory.cli.main import main

main()
