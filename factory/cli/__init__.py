"""Layer 10, ``factory.cli``: the ``factory`` command line. ``main.py`` builds the Typer app from
one module per group of commands; ``common.py`` holds the consoles and the one-line error guard.
Commands parse options and print; the work is done in the layers below."""
