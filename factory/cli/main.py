"""The ``factory`` command: one Typer app, each command defined in its own module."""

from __future__ import annotations

import os
import sys

import typer

from factory.cli.build_cmd import build, validate
from factory.cli.data_cmd import audit, qc
from factory.cli.eval import eval_command
from factory.cli.init_cmd import init
from factory.cli.judge_eval import judge_eval
from factory.cli.review_cmd import push, review
from factory.cli.train_cmd import advise, capacity, train

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Recipes in, post-training datasets out.")


@app.callback()
def options(debug: bool = typer.Option(False, "--debug", help="full tracebacks instead of one-line "
                                       "errors (also FACTORY_DEBUG=1)")) -> None:
    if debug:
        os.environ["FACTORY_DEBUG"] = "1"


for command in (validate, build, init, capacity, advise, train, qc, audit, review, push):
    app.command()(command)
app.command(name="eval")(eval_command)
app.command(name="judge-eval")(judge_eval)


def main() -> None:
    app(prog_name="factory")


if __name__ == "__main__":
    sys.exit(main())
