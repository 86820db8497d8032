"""``consentry likeness``: enrol and withdraw a person's likeness from the command line
(the platform has verified the person and passes their account). Output is the entry as
one JSON line; bad input is one line on stderr and exit 2; a face already enrolled under
another account is held for review and exits 3."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from consentry.errors import Conflict, InvalidRequest, NotFound

likeness_app = typer.Typer(help="The likeness registry: people protected from "
                                "sexualisation and, if they ask, from edits by others.",
                           no_args_is_help=True)
err = Console(stderr=True)
EXIT_BAD_INPUT = 2
EXIT_CONFLICT = 3


def _refused(message: str, code: int) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


@likeness_app.command("enrol")
def enrol(
    account: Annotated[str, typer.Argument(help="the person's own, verified account")],
    photos: Annotated[list[Path], typer.Argument(help="two or more photos of their face")],
    no_edits: Annotated[bool, typer.Option("--no-edits", help="refuse edits of photos "
                                           "showing them by other accounts")] = False,
) -> None:
    """Enrol ACCOUNT's face from PHOTO...; prints the enrolment as JSON."""
    from consentry.cli import _actor, _gate, _read_images

    gate = _gate()
    try:
        images = _read_images(photos)
        enrolment = gate.likeness.enrol(account, images, no_edits=no_edits, actor=_actor())
    except InvalidRequest as exc:
        raise _refused(str(exc), EXIT_BAD_INPUT) from exc
    except Conflict as exc:
        raise _refused(str(exc), EXIT_CONFLICT) from exc
    finally:
        gate.close()
    typer.echo(json.dumps(enrolment.to_dict()))


@likeness_app.command("withdraw")
def withdraw(account: Annotated[str, typer.Argument(help="the enrolled account")]) -> None:
    """Withdraw ACCOUNT's likeness: protection ends and its embeddings are erased."""
    from consentry.cli import _actor, _gate

    gate = _gate()
    try:
        enrolment = gate.likeness.withdraw(account, actor=_actor())
    except NotFound as exc:
        raise _refused(str(exc), EXIT_BAD_INPUT) from exc
    finally:
        gate.close()
    typer.echo(json.dumps(enrolment.to_dict()))
