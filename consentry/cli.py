"""The ``consentry`` command line. Honours CONSENTRY_DATA_DIR / CONSENTRY_DATABASE_URL."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from consentry.access import Scope, create_api_key, revoke_api_key
from consentry.config import Settings
from consentry.gate import Gate, InvalidRequest, Verdict
from consentry.store import Database

app = typer.Typer(help="Consentry: refuse non-consensual intimate imagery and any "
                       "sexualisation of minors.", no_args_is_help=True)
check_app = typer.Typer(help="Check requests against the policy.", no_args_is_help=True)
key_app = typer.Typer(help="Manage API keys for services.", no_args_is_help=True)
db_app = typer.Typer(help="Database administration.", no_args_is_help=True)
app.add_typer(check_app, name="check")
app.add_typer(key_app, name="apikey")
app.add_typer(db_app, name="db")

err = Console(stderr=True)
EXIT_BAD_INPUT = 2


def _database() -> Database:
    db = Database(Settings.from_env().resolved_database_url)
    db.migrate()
    return db


def _gate() -> Gate:
    settings = Settings.from_env()
    db = Database(settings.resolved_database_url)
    db.migrate()
    return Gate(db, settings=settings)


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(EXIT_BAD_INPUT)


def _read_images(paths: list[Path]) -> list[bytes]:
    out = []
    for path in paths:
        try:
            out.append(path.read_bytes())
        except OSError as exc:
            raise InvalidRequest("unreadable_image", f"cannot read {path}: {exc.strerror}",
                                 field="image") from exc
    return out


def _show(verdict: Verdict) -> None:
    colour = {"allow": "green", "block": "red", "review": "yellow"}[verdict.decision]
    out = Console()
    out.print(f"[bold {colour}]{verdict.decision.upper()}[/] {verdict.policy.clause} "
              f"({verdict.category})  id={verdict.id}", highlight=False)
    out.print(verdict.explanation, highlight=False)
    for reason in verdict.reasons:
        span = reason.get("span")
        where = f" [dim]\"{span['text']}\"[/dim]" if span else ""
        out.print(f"  - {reason['code']}: {reason['detail']}{where}", highlight=False)
    if verdict.account:
        a = verdict.account
        out.print(f"account {a.id}: {a.status}, {a.active_strikes} active strikes", highlight=False)


@check_app.command("generation")
def check_generation(
    prompt: Annotated[str | None, typer.Option(help="the request text")] = None,
    image: Annotated[list[Path] | None,
                     typer.Option(help="input photo (repeatable, max 4)")] = None,
    account: Annotated[str | None, typer.Option(help="the platform's account id")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the verdict as JSON")] = False,
    batch: Annotated[Path | None, typer.Option(
        help="JSONL file of {id, prompt, images, account}; one verdict line per input line")
    ] = None,
) -> None:
    """Check a generation or edit request before the image model runs."""
    if batch is not None:
        if prompt is not None or image:
            raise _fail("--batch cannot be combined with --prompt or --image")
        _run_batch(batch)
        return
    if prompt is None:
        raise _fail("give --prompt TEXT (or --batch FILE.jsonl)")
    gate = _gate()
    try:
        verdict = gate.check_generation(prompt, _read_images(image or []), account)
    except InvalidRequest as exc:
        raise _fail(str(exc)) from exc
    finally:
        gate.close()
    if as_json:
        typer.echo(verdict.model_dump_json())
    else:
        _show(verdict)


def _batch_line(gate: Gate, number: int, line: str) -> dict[str, Any]:
    try:
        item = json.loads(line)
    except json.JSONDecodeError as exc:
        return {"id": None, "line": number, "error": {
            "code": "invalid_json", "message": f"line {number}: {exc.msg}"}}
    item_id = item.get("id") if isinstance(item, dict) else None
    try:
        if not isinstance(item, dict):
            raise InvalidRequest("invalid_line", "each line must be a JSON object", field="line")
        prompt, paths = item.get("prompt"), item.get("images") or []
        if not isinstance(prompt, str):
            raise InvalidRequest("missing_prompt", "'prompt' must be a string", field="prompt")
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise InvalidRequest("invalid_images", "'images' must be a list of paths",
                                 field="images")
        account = item.get("account")
        verdict = gate.check_generation(prompt, _read_images([Path(p) for p in paths]),
                                        account if account is None else str(account))
    except InvalidRequest as exc:
        return {"id": item_id, "line": number, "error": exc.to_dict()}
    out = verdict.model_dump(mode="json")
    out["event_id"] = out.pop("id")
    return {"id": item_id, **out}


def _run_batch(path: Path) -> None:
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise _fail(f"cannot read {path}: {exc.strerror}") from exc
    gate = _gate()  # models and database are opened once for the whole file
    try:
        with handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                sys.stdout.write(json.dumps(_batch_line(gate, number, line),
                                            ensure_ascii=False) + "\n")
                sys.stdout.flush()
    finally:
        gate.close()


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
) -> None:
    """Run the HTTP API (database from CONSENTRY_DATABASE_URL, default embedded SQLite)."""
    import uvicorn

    from consentry.api.app import create_app

    uvicorn.run(create_app(Settings.from_env()), host=host, port=port)


@key_app.command("create")
def key_create(
    name: Annotated[str, typer.Argument(help="who uses the key, e.g. 'image-pipeline'")],
    scope: Annotated[list[Scope], typer.Option(help="repeatable")] = [Scope.CHECK],  # noqa: B006
) -> None:
    """Create an API key. The secret is printed once and never stored."""
    key_id, secret = create_api_key(_database(), name, list(scope))
    typer.echo(json.dumps({"id": key_id, "name": name, "scopes": [s.value for s in scope],
                           "secret": secret}))


@key_app.command("revoke")
def key_revoke(key_id: Annotated[str, typer.Argument()]) -> None:
    """Revoke an API key (effective within seconds on running servers)."""
    if not revoke_api_key(_database(), key_id):
        raise _fail(f"no active key {key_id}")
    typer.echo(f"revoked {key_id}")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply database migrations up to the newest revision."""
    settings = Settings.from_env()
    Database(settings.resolved_database_url).migrate()
    typer.echo(f"database at head: {settings.resolved_database_url.split('@')[-1]}")


@app.command("account")
def account_show(account_id: Annotated[str, typer.Argument()]) -> None:
    """Show an account's active strikes and suspension as JSON."""
    gate = _gate()
    try:
        typer.echo(gate.account_state(account_id).model_dump_json())
    except InvalidRequest as exc:
        raise _fail(str(exc)) from exc
    finally:
        gate.close()


if __name__ == "__main__":
    app()
