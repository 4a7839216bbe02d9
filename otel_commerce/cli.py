"""The ``otel-commerce`` command line: collector, trace, tail, events, bootstrap, spool, doctor, demo.

Each command is a small function in ``otel_commerce._cli._commands``; this module only wires them up,
so another command (``demo``) is one more ``app.command(...)`` line.
"""

from __future__ import annotations

from typing import Annotated

import typer

from ._cli._commands import (
    bootstrap_command,
    collector_command,
    doctor_command,
    events_command,
    tail_command,
    trace_command,
)
from ._cli._spool_cmds import spool_app
from ._cli.demo import demo_command

__all__ = ["app", "main"]

app = typer.Typer(
    help="otel-commerce: commerce events as OpenTelemetry signals.",
    no_args_is_help=True,
    # Click's plain help: flags without a value placeholder, every default shown (Typer's Rich panels print
    # a `<bool>` type beside every flag, --help included).
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_show_locals=False,
)


def _print_version(value: bool) -> None:
    if value:
        from . import __version__

        typer.echo(f"otel-commerce {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool | None,
        typer.Option("--version", "-V", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = None,
) -> None:
    """otel-commerce: commerce events as OpenTelemetry signals."""


@app.command()
def version() -> None:
    """Print the installed version."""
    from . import __version__

    typer.echo(__version__)


app.command("collector")(collector_command)
app.command("trace")(trace_command)
app.command("tail")(tail_command)
app.command("events")(events_command)
app.command("bootstrap")(bootstrap_command)
app.command("doctor")(doctor_command)
app.command("demo")(demo_command)
app.add_typer(spool_app, name="spool")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
