"""``consentry provenance read IMAGE``: what an image carries about its origin, as one
JSON line (manifest state, claims and signer; watermark detected and score). Bad input is
one line on stderr and exit 2."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from consentry.config import Settings
from consentry.errors import ConsentryError
from consentry.gate.marking import read_provenance, trust_anchors
from consentry.signals.image import ImageRejected
from consentry.signals.sandbox import shared_sandbox

provenance_app = typer.Typer(help="Provenance: C2PA manifests and the platform's watermark.",
                             no_args_is_help=True)
err = Console(stderr=True)
EXIT_BAD_INPUT = 2


@provenance_app.command("read")
def read(image: Annotated[Path, typer.Argument(help="an image file")]) -> None:
    """Report an image's C2PA manifest (valid, untrusted, invalid or absent; its claims and
    signer) and whether it carries the platform's watermark."""
    try:
        data = image.read_bytes()
    except OSError as exc:
        err.print(f"error: cannot read {image}: {exc.strerror}", highlight=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    settings = Settings.from_env()
    try:
        found = read_provenance(shared_sandbox(settings.sandbox_limits()), data,
                                trust_anchors(settings))
    except (ImageRejected, ConsentryError) as exc:
        err.print(f"error: {image}: {exc}", highlight=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    typer.echo(json.dumps({"image": str(image), **found.to_dict()}))
