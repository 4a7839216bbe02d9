"""The ``otel-commerce`` command line (placeholder until the CLI lands)."""

from __future__ import annotations

import typer

app = typer.Typer(help="otel-commerce: commerce events as OpenTelemetry signals.", no_args_is_help=True)


@app.command()
def version() -> None:
    """Print the installed version."""
    from . import __version__

    typer.echo(__version__)


def main() -> None:
    app()
