"""The ``consentry`` command line. Honours CONSENTRY_DATA_DIR / CONSENTRY_DATABASE_URL."""

from __future__ import annotations

import dataclasses
import getpass
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from consentry.access import Scope, create_api_key, revoke_api_key
from consentry.audit.checkpoints import Signer, public_key_text, signer_for
from consentry.audit.export import export
from consentry.audit.verify import verify, verify_export
from consentry.banks.exchanges import ExchangeError
from consentry.banks.exchanges.sources import ExchangeName, exchange_from_env
from consentry.banks.registry import (
    BankCategory,
    BankError,
    BankKind,
    BankRegistry,
    DuplicateEntry,
    EntryInfo,
    ExchangeImport,
    ImportCounts,
)
from consentry.banks.services import BankServices, entry_hashes
from consentry.banks.sweep import active_entries, entry_in_bank, sweep_entry
from consentry.cases.case import CaseView, Due
from consentry.cases.intake import (
    ContentLocator,
    Declaration,
    Regime,
    Relationship,
    TakedownSubmission,
)
from consentry.cases.takedowns import (
    CaseNotFound,
    CaseStateError,
    TakedownService,
)
from consentry.config import Settings
from consentry.errors import ConfigurationError, ConsentryError, InvalidRequest, NotFound
from consentry.evidence import Vault
from consentry.gate import Gate, Verdict
from consentry.people import People, Person
from consentry.people.directory import Directory
from consentry.policy import load_policy
from consentry.reporting import statements
from consentry.reporting.law_enforcement import LawEnforcementDesk
from consentry.signals.hashing import Fingerprint
from consentry.signals.image import ImageRejected
from consentry.signals.sandbox import Sandbox, SandboxBusy, shared_sandbox
from consentry.store import Database

app = typer.Typer(help="Consentry: refuse non-consensual intimate imagery and any "
                       "sexualisation of minors.", no_args_is_help=True)
check_app = typer.Typer(help="Check requests against the policy.", no_args_is_help=True)
key_app = typer.Typer(help="Manage API keys for services.", no_args_is_help=True)
db_app = typer.Typer(help="Database administration.", no_args_is_help=True)
bank_app = typer.Typer(help="Hash banks: known abuse, victims' hashes, own refusals.",
                       no_args_is_help=True)
app.add_typer(check_app, name="check")
app.add_typer(key_app, name="apikey")
app.add_typer(db_app, name="db")
app.add_typer(bank_app, name="bank")
prompt_bank_app = typer.Typer(help="The prompt bank: phrasings confirmed as abuse; their "
                                   "near paraphrases are refused in every language.",
                              no_args_is_help=True)
app.add_typer(prompt_bank_app, name="prompt-bank")

err = Console(stderr=True)
EXIT_BAD_INPUT = 2
T = TypeVar("T")


def _database(settings: Settings | None = None) -> Database:
    settings = settings or Settings.from_env()
    db = Database.open(settings)
    db.migrate()
    # Every restriction a command makes keeps its DSA statement of reasons.
    statements.install(load_policy(settings.policy_path).version)
    return db


def _gate() -> Gate:
    settings = Settings.from_env()
    return Gate(_database(settings), settings=settings)


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
    thread: Annotated[str | None, typer.Option(
        help="the conversation or reply chain the request belongs to: judged with its "
             "recent turns")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the verdict as JSON")] = False,
    batch: Annotated[Path | None, typer.Option(
        help="JSONL file of {id, prompt, images, account, thread}; one verdict line per "
             "input line")
    ] = None,
) -> None:
    """Check a generation or edit request before the image model runs."""
    if batch is not None:
        if prompt is not None or image or thread is not None:
            raise _fail("--batch cannot be combined with --prompt, --image or --thread")
        _run_batch(batch)
        return
    if prompt is None:
        raise _fail("give --prompt TEXT (or --batch FILE.jsonl)")
    gate = _gate()
    try:
        images = _read_images(image or [])
        if images:
            _start_decoders(gate.sandbox)
        verdict = gate.check_generation(prompt, images, account, thread=thread)
    except (InvalidRequest, SandboxBusy) as exc:
        raise _fail(str(exc)) from exc
    finally:
        gate.close()
    if as_json:
        typer.echo(verdict.model_dump_json())
    else:
        _show(verdict)


def _start_decoders(sandbox: Sandbox) -> None:
    """Start the image decoders before any check's clock runs, as a server does when it
    starts (the image models still load within the first check's deadline: a text-only
    check never needs them)."""
    sandbox.warm_up()


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
        account, thread = item.get("account"), item.get("thread")
        if thread is not None and not isinstance(thread, str):
            raise InvalidRequest("invalid_thread", "'thread' must be a string", field="thread")
        images = _read_images([Path(p) for p in paths])
        verdict = gate.check_generation(prompt, images,
                                        account if account is None else str(account),
                                        thread=thread)
    except InvalidRequest as exc:
        return {"id": item_id, "line": number, "error": exc.to_dict()}
    except SandboxBusy as exc:
        return {"id": item_id, "line": number, "error": {"code": "busy", "message": str(exc)}}
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
        # A long run, as a server is: every model loads before the first line's clock runs.
        gate.warm_up()
        with handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                sys.stdout.write(json.dumps(_batch_line(gate, number, line),
                                            ensure_ascii=False) + "\n")
                sys.stdout.flush()
    finally:
        gate.close()


def _prompt_bank() -> Any:
    settings = Settings.from_env()
    gate = Gate(_database(settings), settings=settings)
    return gate.prompt_bank


@prompt_bank_app.command("add")
def prompt_bank_add(
    text: Annotated[str, typer.Option(help="the phrasing, as the user wrote it")],
    clause: Annotated[str, typer.Option(help="CS-1, II-1, II-2 or SX-1")],
    reason: Annotated[str, typer.Option(help="why it is abuse")],
    source_check: Annotated[str | None, typer.Option(help="the check it came from")] = None,
) -> None:
    """Add a phrasing; prints the entry as JSON. Refused from the next request on."""
    try:
        entry = _prompt_bank().add(text, clause, author=_actor(), reason=reason,
                                   source_check=source_check)
    except InvalidRequest as exc:
        raise _fail(str(exc)) from exc
    typer.echo(json.dumps(entry.to_dict(), ensure_ascii=False))


@prompt_bank_app.command("list")
def prompt_bank_list() -> None:
    """Every entry, one JSON line each (disabled ones too)."""
    bank, after = _prompt_bank(), 0
    while page := bank.entries(after=after, limit=500):
        for entry in page:
            typer.echo(json.dumps(entry.to_dict(), ensure_ascii=False))
        after = page[-1].id


def _prompt_bank_enabled(entry_id: int, enabled: bool, reason: str) -> None:
    try:
        entry = _prompt_bank().set_enabled(entry_id, enabled, actor=_actor(), reason=reason)
    except NotFound as exc:
        raise _refuse(str(exc)) from exc
    typer.echo(json.dumps(entry.to_dict(), ensure_ascii=False))


@prompt_bank_app.command("disable")
def prompt_bank_disable(entry_id: Annotated[int, typer.Argument()],
                        reason: Annotated[str, typer.Option(help="why")] = "") -> None:
    """Stop an entry matching (it is kept, with who disabled it and why)."""
    _prompt_bank_enabled(entry_id, False, reason)


@prompt_bank_app.command("enable")
def prompt_bank_enable(entry_id: Annotated[int, typer.Argument()],
                       reason: Annotated[str, typer.Option(help="why")] = "") -> None:
    """Let a disabled entry match again."""
    _prompt_bank_enabled(entry_id, True, reason)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="server processes on this host; they "
                                                     "share the database (docs/fleet.md)")] = 1,
    access_log: Annotated[bool, typer.Option(
        "--access-log", help="log a line per request (client address and path)")] = False,
) -> None:
    """Run the HTTP API (database from CONSENTRY_DATABASE_URL, default embedded SQLite).
    Links in messages point at CONSENTRY_PUBLIC_URL, else at the address served here.

    No line per request by default: it would log people's addresses and the tokens some
    links carry in their query (appeals), and costs CPU at full load. /metrics counts
    requests; the audit chain records decisions."""
    import dataclasses

    import uvicorn

    from consentry.api.app import serving_app

    settings = Settings.from_env()
    if settings.public_url is None:
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        settings = dataclasses.replace(settings, public_url=f"http://{shown}:{port}")
    if workers > 1:  # each process builds its app from the environment
        from consentry.api.serving import serve_processes

        os.environ["CONSENTRY_PUBLIC_URL"] = settings.public_base
        raise typer.Exit(serve_processes(host, port, workers, access_log=access_log))
    # Forwarded headers are judged by the app against CONSENTRY_TRUSTED_PROXIES, never
    # believed by the server from any local peer.
    uvicorn.run(serving_app(settings), host=host, port=port, proxy_headers=False,
                server_header=False, access_log=access_log)


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
    _database(settings)
    if settings.jobs == "procrastinate":  # the job queue's tables, in the same database
        from consentry.jobs import ensure_queue_schema

        ensure_queue_schema(settings)
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


# -- hashes and banks ------------------------------------------------------------------
#
# Per-image commands (hash, bank add, match) write one JSON line per image, in order; an
# image that cannot be read or hashed yields {"image", "error": {"code", "message"}} and
# the rest go on. The exit code is 2 only when no image succeeded.

EXIT_EXCHANGE_FAILED = 1


def _actor() -> str:
    """Who made a bank change from the command line, for the bank event log."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry (containers)
        return "cli"


def _warn(message: str) -> None:
    # soft_wrap: a message is one line however narrow the terminal (scripts grep it).
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)


def _refuse(message: str) -> typer.Exit:
    _warn(message)
    return typer.Exit(EXIT_BAD_INPUT)


def _line(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def _image_error(path: Path, code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"image": str(path), "error": {"code": code, "message": message, **extra}}


def _sandbox() -> Sandbox:
    """The image decoders (worker processes), with the configured limits and deadline."""
    return shared_sandbox(Settings.from_env().sandbox_limits())


def _fingerprints(paths: list[Path]) -> Iterator[tuple[Path, Fingerprint | dict[str, Any]]]:
    """Each image's fingerprint, or the error line for it. Each image is decoded in the
    sandbox within CONSENTRY_ANALYSIS_TIMEOUT_S."""
    sandbox = _sandbox()
    try:
        _start_decoders(sandbox)
    except SandboxBusy as exc:
        raise _refuse(str(exc)) from exc
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError as exc:
            yield path, _image_error(path, "unreadable_image",
                                     f"cannot read {path}: {exc.strerror}")
            continue
        try:
            yield path, sandbox.fingerprint(data)
        except ImageRejected as exc:
            yield path, _image_error(path, exc.code, f"{path}: {exc}")
        except SandboxBusy as exc:
            yield path, _image_error(path, "busy", f"{path}: {exc}")


def _finish(ok: int, total: int) -> None:
    if total and not ok:
        raise typer.Exit(EXIT_BAD_INPUT)


def _banks() -> BankServices:
    """Registry, matcher and content index over the configured database. The match index
    is built in memory: a running server may be saving the persisted one."""
    settings = Settings.from_env()
    return BankServices.open(_database(settings), settings=settings)


@app.command("hash")
def hash_images(
    images: Annotated[list[Path], typer.Argument(help="image files")],
    as_json: Annotated[bool, typer.Option("--json", help="one JSON line per image")] = False,
) -> None:
    """Hash images: PDQ (as Meta, StopNCII and HMA write it), its quality, MD5, SHA-256."""
    ok = 0
    for path, fp in _fingerprints(images):
        if isinstance(fp, dict):
            out = fp
        else:
            h = fp.hashes
            ok += 1
            out = {"image": str(path), "pdq": h.pdq.hex if h.pdq else None,
                   "quality": h.pdq_quality, "md5": h.md5, "sha256": h.sha256}
        if as_json:
            _line(out)
        elif "error" in out:
            _warn(out['error']['message'])
        else:
            typer.echo(f"{out['image']}\tpdq={out['pdq'] or '-'}\tquality={out['quality']}"
                       f"\tmd5={out['md5']}")
    _finish(ok, len(images))


@bank_app.command("create")
def bank_create(
    name: Annotated[str, typer.Argument(help="a-z, 0-9, '_', '-', '.'")],
    kind: Annotated[BankKind, typer.Option(help="block banks refuse matches; allow banks "
                                                "hold known benign collisions")],
    category: Annotated[BankCategory, typer.Option(
        help="decides the clause a match is judged under (csam: KM-1, ncii: II-3, ...)")],
    description: Annotated[str, typer.Option(help="what the bank holds")] = "",
) -> None:
    """Create a bank; prints it as JSON."""
    try:
        info = BankRegistry(_database()).create(name, kind, category,
                                                description=description, actor=_actor())
    except BankError as exc:
        raise _refuse(str(exc)) from exc
    typer.echo(json.dumps(info.to_dict()))


@bank_app.command("list")
def bank_list(
    as_json: Annotated[bool, typer.Option("--json", help="one JSON line per bank")] = False,
) -> None:
    """List banks with their active entry counts."""
    banks = BankRegistry(_database()).list()
    if as_json:
        for info in banks:
            _line(info.to_dict())
        return
    table = Table("name", "kind", "category", "clause", "enabled", "active entries")
    for b in banks:
        table.add_row(b.name, b.kind.value, b.category.value, b.clause,
                      "yes" if b.enabled else "no", str(b.active_entries))
    Console().print(table)


def _set_bank_enabled(name: str, enabled: bool) -> None:
    try:
        info = BankRegistry(_database()).set_enabled(name, enabled, actor=_actor())
    except BankError as exc:
        raise _refuse(str(exc)) from exc
    typer.echo(json.dumps(info.to_dict()))


@bank_app.command("disable")
def bank_disable(name: Annotated[str, typer.Argument()]) -> None:
    """Stop a bank matching (its entries are kept)."""
    _set_bank_enabled(name, False)


@bank_app.command("enable")
def bank_enable(name: Annotated[str, typer.Argument()]) -> None:
    """Let a disabled bank match again."""
    _set_bank_enabled(name, True)


@bank_app.command("add")
def bank_add(
    bank: Annotated[str, typer.Argument(help="the bank's name")],
    images: Annotated[list[Path], typer.Argument(help="image files")],
    as_json: Annotated[bool, typer.Option("--json", help="one JSON line per image")] = False,
    takedown_case: Annotated[str | None, typer.Option(help="the case that banked it")] = None,
) -> None:
    """Bank images. Lines: {"image", "entry", "pdq", "quality", "md5"}; an image already in
    the bank gives an error line with code "duplicate_entry" and the existing "entry" (it
    does not make the command fail)."""
    registry = BankRegistry(_database())
    try:
        registry.get(bank)
    except BankError as exc:
        raise _refuse(str(exc)) from exc
    ok = 0
    for path, fp in _fingerprints(images):
        out = fp if isinstance(fp, dict) else None
        if out is None:
            assert not isinstance(fp, dict)
            hashes = entry_hashes(fp)
            try:
                entry = registry.add_entry(bank, hashes, source="manual", actor=_actor(),
                                           takedown_case=takedown_case,
                                           details={"file": path.name})
            except DuplicateEntry as exc:
                ok += 1  # already banked is the state asked for
                out = _image_error(path, "duplicate_entry", str(exc), entry=exc.entry_id)
            except BankError as exc:
                out = _image_error(path, "unhashable_image", f"{path}: {exc}")
            else:
                ok += 1
                out = {"image": str(path), "entry": entry.id, "pdq": hashes.pdq,
                       "quality": hashes.pdq_quality, "md5": hashes.md5}
        if as_json:
            _line(out)
        elif "error" in out:
            _warn(out['error']['message'])
        else:
            typer.echo(f"{out['image']}: entry {out['entry']}")
    _finish(ok, len(images))


@bank_app.command("import")
def bank_import(
    bank: Annotated[str, typer.Argument(help="the bank to import into")],
    source: Annotated[ExchangeName, typer.Option("--from", help="the hash list")],
    file: Annotated[Path | None, typer.Option(
        help="for --from csv: the HMA/ThreatExchange CSV (else CONSENTRY_HMA_CSV_PATH)")
    ] = None,
) -> None:
    """Import (or catch up with) a hash list, from the last checkpoint. Credentials come
    from the environment (docs/exchanges.md). A failure keeps every batch already applied
    and its checkpoint: run the command again to resume. Prints the counts as JSON."""
    importer = ExchangeImport(BankRegistry(_database()))
    try:
        importer.registry.get(bank)
    except BankError as exc:
        raise _refuse(str(exc)) from exc
    counts = ImportCounts()
    try:
        exchange = exchange_from_env(source, file=file)
        with Progress(SpinnerColumn(), TextColumn("{task.description}"),
                      TimeElapsedColumn(), console=err, transient=True) as progress:
            task = progress.add_task(f"importing from {source.value}", total=None)

            def show(total: ImportCounts) -> None:
                counts.set_to(total)  # kept for the error report
                progress.update(task, description=(
                    f"{source.value}: {total.batches} batches, {total.added} added, "
                    f"{total.removed} removed"))

            importer.run(bank, exchange, actor=f"{_actor()}:{source.value}", progress=show)
    except ExchangeError as exc:
        _warn(str(exc))
        if counts.batches:
            err.print(f"{counts.batches} batches were applied before the failure and are "
                      "kept; run the command again to resume", highlight=False, soft_wrap=True)
        _line({"bank": bank, "exchange": source.value, **counts.to_dict(),
               "error": {"code": exc.kind, "message": str(exc)}})
        raise typer.Exit(EXIT_EXCHANGE_FAILED) from exc
    _line({"bank": bank, "exchange": source.value, **counts.to_dict()})


@app.command("match")
def match_images(
    images: Annotated[list[Path], typer.Argument(help="image files")],
    as_json: Annotated[bool, typer.Option("--json", help="one JSON line per image")] = False,
) -> None:
    """Match images against every enabled bank (rotated, mirrored and cropped copies
    too). Lines: {"image", "matches": [{"bank", "entry", "signal", "distance"}]}."""
    services = _banks()  # one index for all images
    ok = 0
    for path, fp in _fingerprints(images):
        if isinstance(fp, dict):
            out = fp
        else:
            ok += 1
            found = services.matcher.match(fp.hashes.md5, fp.query_array())
            out = {"image": str(path), "matches": [
                {"bank": m.bank, "entry": m.entry_id, "signal": m.signal,
                 "distance": m.distance} for m in found]}
        if as_json:
            _line(out)
        elif "error" in out:
            _warn(out['error']['message'])
        else:
            found_text = ", ".join(f"{m['bank']}#{m['entry']} ({m['signal']} "
                                   f"{m['distance']})" for m in out["matches"]) or "no match"
            typer.echo(f"{out['image']}: {found_text}")
    _finish(ok, len(images))


@app.command("sweep")
def sweep(
    bank: Annotated[str | None, typer.Option(help="every active entry of this bank")] = None,
    entry: Annotated[int | None, typer.Option(help="one entry")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON line per copy")] = False,
) -> None:
    """Registered content that banked images match: the copies to take down. Lines:
    {"entry", "content_id", "distance"}."""
    if bank is None and entry is None:
        raise _refuse("give --bank NAME and/or --entry ID")
    services = _banks()
    try:
        if entry is not None:
            one = (entry_in_bank(services.registry, bank, entry) if bank is not None
                   else services.registry.entry(entry))
            entries: Iterable[EntryInfo] = [one]
        else:
            assert bank is not None
            services.registry.get(bank)
            entries = active_entries(services.registry, bank)
        for item in entries:
            for copy in sweep_entry(services.registry, services.content, item):
                if as_json:
                    _line({"entry": item.id, "content_id": copy.content_id,
                           "distance": copy.distance})
                else:
                    typer.echo(f"entry {item.id}: {copy.content_id} (distance "
                               f"{copy.distance})")
    except BankError as exc:
        raise _refuse(str(exc)) from exc



# -- takedowns -------------------------------------------------------------------------
#
# The case workers' tools (and a way to file a request for someone by phone or post).
# Exit codes: 0 done, 2 bad input, 3 no such case, 4 the case is not in a state for that.

takedown_app = typer.Typer(help="Takedown requests and cases (48-hour clock).",
                           no_args_is_help=True)
app.add_typer(takedown_app, name="takedown")
EXIT_NO_CASE = 3
EXIT_WRONG_STATE = 4


def _takedowns() -> TakedownService:
    settings = Settings.from_env()
    gate = Gate(_database(settings), settings=settings)
    return TakedownService.from_settings(gate.db, gate.banks, gate.policy, settings,
                                         vault=gate.vault)


def _case_call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    try:
        return fn(*args, **kwargs)
    except CaseNotFound as exc:
        _warn(str(exc))
        raise typer.Exit(EXIT_NO_CASE) from exc
    except CaseStateError as exc:
        _warn(str(exc))
        raise typer.Exit(EXIT_WRONG_STATE) from exc
    except ConsentryError as exc:
        raise _refuse(str(exc)) from exc


def _show_case(view: CaseView, now: Any, as_json: bool) -> None:
    record = view.to_dict(now)
    if as_json:
        _line(record)
        return
    typer.echo(f"{view.number}  {view.status.value}  ({view.regime})")
    typer.echo(f"  received {view.received_at:%Y-%m-%d %H:%M} UTC, "
               f"deadline {view.deadline_at:%Y-%m-%d %H:%M} UTC")
    for m in view.missing:
        typer.echo(f"  missing {m.field}: {m.why}")
    for item in view.located:
        state = "removed" if item.content_id in view.removed else (
            "FAILED" if item.content_id in view.failed else "pending")
        how = "named" if item.identified else f"copy, distance {item.distance}"
        typer.echo(f"  {item.content_id}  {state}  ({how}; uploader {item.account_id})")
    for unknown in view.unknown:
        typer.echo(f"  not found: {unknown}")
    if view.time_to_removal is not None:
        typer.echo(f"  removed in {view.time_to_removal.total_seconds():.0f} s")


@takedown_app.command("submit")
def takedown_submit(
    regime: Annotated[Regime, typer.Option(help="the law the request is made under")],
    url: Annotated[list[str], typer.Option(help="link to the content; repeatable")] = [],  # noqa: B006
    content_id: Annotated[list[str], typer.Option(help="platform content id; repeatable")] = [],  # noqa: B006
    image: Annotated[list[Path], typer.Option(help="the image itself; repeatable")] = [],  # noqa: B006
    pdq: Annotated[list[str], typer.Option(help="PDQ hash, 64 hex; repeatable")] = [],  # noqa: B006
    md5: Annotated[list[str], typer.Option(help="MD5 hash, 32 hex; repeatable")] = [],  # noqa: B006
    name: Annotated[str, typer.Option(help="requester's name")] = "",
    email: Annotated[str, typer.Option(help="requester's email")] = "",
    contact: Annotated[str, typer.Option(help="other contact (phone, post)")] = "",
    signature: Annotated[str, typer.Option(help="typed full name as signature")] = "",
    relationship: Annotated[Relationship | None, typer.Option()] = None,
    declare: Annotated[list[Declaration], typer.Option(help="repeatable")] = [],  # noqa: B006
    statement: Annotated[str, typer.Option(help="why it is non-consensual / illegal")] = "",
    csam: Annotated[bool, typer.Option(help="DSA notice about child sexual abuse")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """File a takedown request; prints the case number and the PIN (shown once)."""
    try:
        images = _read_images(image)
    except InvalidRequest as exc:
        raise _refuse(str(exc)) from exc
    submission = TakedownSubmission(
        regime=regime, locator=ContentLocator(tuple(content_id), tuple(url), tuple(pdq),
                                              tuple(md5), len(images)),
        requester_name=name, email=email, other_contact=contact, signature=signature,
        relationship=relationship, declarations=frozenset(declare), statement=statement,
        csam=csam)
    service = _takedowns()
    if images:
        try:
            _start_decoders(service.sandbox)
        except SandboxBusy as exc:
            raise _refuse(str(exc)) from exc
    result = _case_call(service.submit, submission, images, channel="cli")
    if as_json:
        _line({"case": result.case.public(), "pin": result.pin, "complete": not result.missing})
        return
    _show_case(result.case, service.now(), False)
    typer.echo(f"PIN (shown once): {result.pin}")


@takedown_app.command("status")
def takedown_status(
    case: Annotated[str, typer.Argument(help="case number, e.g. TD-7K4Q9XWM2A")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show a case with its history (operators: no PIN needed)."""
    service = _takedowns()
    _show_case(_case_call(service.view, case), service.now(), as_json)


@takedown_app.command("list")
def takedown_list(
    due: Annotated[Due, typer.Option(help="overdue, at_risk (< 6 h left) or open")] = Due.OPEN,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Open cases, soonest deadline first."""
    service = _takedowns()
    now = service.now()
    views = service.list_cases(due)
    if as_json:
        for view in views:
            _line(view.to_dict(now))
        return
    # Fits 80 columns whole: what a case worker acts on (number, status, time left) is
    # never cut; the rest is in `takedown status`.
    table = Table(title=f"takedown cases: {due.value}", box=None, pad_edge=False)
    table.add_column("case", no_wrap=True, min_width=13)
    table.add_column("status", no_wrap=True)
    table.add_column("deadline UTC", no_wrap=True)
    table.add_column("left", no_wrap=True, justify="right")
    table.add_column("found", justify="right")
    table.add_column("removed", justify="right")
    table.add_column("regime", overflow="fold")
    for v in views:
        hours = (v.deadline_at - now).total_seconds() / 3600
        table.add_row(v.number, v.status.value, f"{v.deadline_at:%m-%d %H:%M}",
                      f"{hours:.1f} h" if hours >= 0 else f"OVERDUE {-hours:.1f} h",
                      str(len(v.located)), str(len(v.removed)), v.regime)
    Console().print(table)


@takedown_app.command("remove")
def takedown_remove(
    case: Annotated[str, typer.Argument()],
    content_id: Annotated[list[str], typer.Option(help="more content to remove; repeatable")] = [],  # noqa: B006
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Confirm removal: locate again (with any extra content ids), retry failed callbacks.
    Needs the platform's removal callback (CONSENTRY_REMOVAL_CALLBACK_URL and _SECRET)."""
    service = _takedowns()
    if service.callback is None:
        raise _refuse(_NO_CALLBACK)
    view = _case_call(service.remove, case, actor=_actor(), content_ids=content_id)
    _show_case(view, service.now(), as_json)


@takedown_app.command("reject")
def takedown_reject(
    case: Annotated[str, typer.Argument()],
    reason: Annotated[list[str], typer.Option(help="shown to the requester; repeatable")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Reject a request, with reasons the requester is sent."""
    service = _takedowns()
    _show_case(_case_call(service.reject, case, reason, actor=_actor()), service.now(), as_json)


@takedown_app.command("reverse")
def takedown_reverse(
    case: Annotated[str, typer.Argument()],
    reason: Annotated[str, typer.Option(help="why the removal was wrong")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Restore removed content, withdraw the banked hashes and lift the strikes."""
    service = _takedowns()
    _show_case(_case_call(service.reverse, case, reason, actor=_actor()), service.now(),
               as_json)


@takedown_app.command("dispatch")
def takedown_dispatch() -> None:
    """Make the removal callbacks that are due (for a cron job when no server runs)."""
    service = _takedowns()
    if service.callback is None:
        raise _refuse(_NO_CALLBACK)
    typer.echo(f"{service.dispatch()} callback attempts made")


@app.command("worker")
def worker(
    every: Annotated[float, typer.Option(help="seconds between rounds (embedded)")] = 5.0,
    once: Annotated[bool, typer.Option(help="one round of every job, then exit (for cron)")
                    ] = False,
) -> None:
    """Run the background jobs (docs/fleet.md): intake a crash left, removal callbacks and
    retries, notices, reports and statements due, hourly purges. With CONSENTRY_JOBS=
    procrastinate, a worker of the job queue in PostgreSQL (run any number); else the
    embedded loop a server also runs on a thread."""
    import signal
    import threading

    from consentry.jobs import run_queue_worker, worker_services

    settings = Settings.from_env()
    if settings.jobs == "procrastinate" and not once:
        run_queue_worker(settings)
        return
    services = worker_services(settings)
    runner = services.jobs.embedded(every_s=every)
    try:
        if once:
            results = runner.run_once()
            _line({name: repr(r) if isinstance(r, Exception) else r
                   for name, r in results.items()})
            return
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            runner.run(stop)
        except KeyboardInterrupt:
            stop.set()
    finally:
        services.close()


# -- people ----------------------------------------------------------------------------
#
# The console's people. The first administrator is made here; every command prints the
# person as one JSON line (no password, no secret). Bad input: one line on stderr, exit 2.

user_app = typer.Typer(help="People who sign in to the console, and their roles.",
                       no_args_is_help=True)
app.add_typer(user_app, name="user")
_ROLE_HELP = "admin, lead, moderator, child_safety or compliance; repeatable"


def _directory() -> Directory:
    settings = Settings.from_env()
    return People.open(_database(settings), settings).directory


def _people_call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    try:
        return fn(*args, **kwargs)
    except ConsentryError as exc:
        raise _refuse(str(exc)) from exc


def _show_person(person: Person) -> None:
    _line(person.to_dict())


def _new_password(from_stdin: bool) -> str:
    """A new password: the first line of standard input (scripts), else typed twice."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise _refuse("no password on standard input (--password-stdin reads one line)")
        return password
    password = getpass.getpass("New password: ")
    if getpass.getpass("The same again: ") != password:
        raise _refuse("the two passwords differ; nothing was changed")
    return password


@user_app.command("create")
def user_create(
    username: Annotated[str, typer.Argument(help="3-64 of a-z 0-9 . _ - (lower-cased)")],
    role: Annotated[list[str], typer.Option(help=_ROLE_HELP)],
    display_name: Annotated[str | None, typer.Option(help="shown in the console")] = None,
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="read the password from the first line of stdin")] = False,
) -> None:
    """Add a person who may sign in to the console (the first admin is made this way)."""
    directory = _directory()
    password = _new_password(password_stdin)
    _show_person(_people_call(directory.create, username, roles=role, password=password,
                              display_name=display_name))


@user_app.command("disable")
def user_disable(username: Annotated[str, typer.Argument()]) -> None:
    """Stop a person signing in; their sessions end at once."""
    _show_person(_people_call(_directory().disable, username))


@user_app.command("enable")
def user_enable(username: Annotated[str, typer.Argument()]) -> None:
    """Let a disabled person sign in again."""
    _show_person(_people_call(_directory().enable, username))


@user_app.command("reset-password")
def user_reset_password(
    username: Annotated[str, typer.Argument()],
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="read the password from the first line of stdin")] = False,
) -> None:
    """Set a person's password; their sessions end at once."""
    directory = _directory()
    _people_call(directory.get, username)  # a typo is told before the password is asked
    _show_person(_people_call(directory.reset_password, username,
                              _new_password(password_stdin)))


@user_app.command("roles")
def user_roles(
    username: Annotated[str, typer.Argument()],
    role: Annotated[list[str], typer.Option(help=_ROLE_HELP)],
) -> None:
    """Replace a person's roles (effective on their next request)."""
    _show_person(_people_call(_directory().set_roles, username, role))


@user_app.command("list")
def user_list(
    as_json: Annotated[bool, typer.Option("--json", help="one JSON line per person")] = False,
) -> None:
    """Everyone who may sign in, or could when enabled again."""
    everyone = _directory().people()
    if as_json:
        for person in everyone:
            _show_person(person)
        return
    table = Table("username", "name", "roles", "totp", "status", box=None, pad_edge=False)
    for p in everyone:
        table.add_row(p.username, p.display_name, ", ".join(sorted(r.value for r in p.roles)),
                      "on" if p.has_totp else "off", "enabled" if p.enabled else "DISABLED")
    Console().print(table)


@user_app.command("totp")
def user_totp(
    username: Annotated[str, typer.Argument()],
    off: Annotated[bool, typer.Option("--off", help="remove the second factor (a lost "
                                                    "phone); their sessions end")] = False,
) -> None:
    """Give a person a new TOTP second factor and print its provisioning URI, once: hand
    it to them privately (it is never shown again). Replaces any earlier one."""
    directory = _directory()
    if off:
        _show_person(_people_call(directory.turn_off_totp, username))
        return
    uri = _people_call(directory.turn_on_totp, username)
    err.print("Add this to the person's authenticator app now; it is not shown again:",
              highlight=False, soft_wrap=True)
    typer.echo(uri)


_NO_CALLBACK = ("no removal callback configured, so nothing can be removed: set "
                "CONSENTRY_REMOVAL_CALLBACK_URL and CONSENTRY_REMOVAL_CALLBACK_SECRET")


# -- the evidence vault -------------------------------------------------------------------

evidence_app = typer.Typer(help="The evidence vault: sealed items, legal holds, keys.",
                           no_args_is_help=True)
app.add_typer(evidence_app, name="evidence")


def _vault() -> Vault:
    return _gate().vault  # keys checked: a wrong or missing key fails here


def _by() -> str:
    return f"cli:{getpass.getuser()}"


def _evidence_call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    try:
        return fn(*args, **kwargs)
    except ConsentryError as exc:
        raise _refuse(str(exc)) from exc


@evidence_app.command("list")
def evidence_list(
    subject: Annotated[str | None, typer.Option(help="a check id or case number")] = None,
    account: Annotated[str | None, typer.Option(help="the platform's account id")] = None,
) -> None:
    """Sealed items (never their content), one JSON line each."""
    for item in _vault().items(subject=subject, account_id=account, limit=1000):
        _line({**dataclasses.asdict(item), "created_at": item.created_at.isoformat(),
               "retain_until": item.retain_until.isoformat()})


@evidence_app.command("open")
def evidence_open(
    item: Annotated[str, typer.Argument(help="the item's id (ev_...)")],
    why: Annotated[str, typer.Option(help="why it is opened (recorded in the audit chain)")],
    out: Annotated[Path, typer.Option(help="where to write the content (mode 0600)")],
) -> None:
    """Decrypt one item's content to a file; its metadata is printed. Recorded."""
    opened = _evidence_call(_vault().open, item, actor=_by(), why=why)
    if opened.content is not None:
        descriptor = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(opened.content)
    _line({"item": item, "written": str(out) if opened.content is not None else None,
           "metadata": opened.metadata})


@evidence_app.command("hold")
def evidence_hold(
    reason: Annotated[str, typer.Option(help="the legal basis or request reference")],
    item: Annotated[str | None, typer.Option(help="hold one item")] = None,
    account: Annotated[str | None, typer.Option(help="hold everything of an account")] = None,
) -> None:
    """Place a legal hold: the evidence is kept past its retention until lifted."""
    hold = _evidence_call(_vault().place_hold, item_id=item, account_id=account,
                          reason=reason, actor=_by())
    _line({"hold": hold, "item": item, "account": account})


@evidence_app.command("lift")
def evidence_lift(
    hold: Annotated[int, typer.Argument(help="the hold's number")],
    reason: Annotated[str, typer.Option(help="why it is lifted")],
) -> None:
    """Lift a legal hold."""
    _evidence_call(_vault().lift_hold, hold, reason=reason, actor=_by())
    _line({"hold": hold, "lifted": True})


@evidence_app.command("rotate")
def evidence_rotate() -> None:
    """Re-wrap every item's data key under the first key of CONSENTRY_EVIDENCE_KEYS."""
    _line(_vault().rotate(actor=_by()))


@evidence_app.command("purge")
def evidence_purge() -> None:
    """Purge items past retention that no hold covers (the worker does it too)."""
    _line({"purged": _vault().purge_expired()})


# -- law-enforcement requests -------------------------------------------------------------

le_app = typer.Typer(help="Law-enforcement preservation and disclosure requests.",
                     no_args_is_help=True)
app.add_typer(le_app, name="law-enforcement")


def _le_desk() -> LawEnforcementDesk:
    settings = Settings.from_env()
    gate = Gate(_database(settings), settings=settings)
    return LawEnforcementDesk(gate.db, gate.vault, signer_for(gate.db, settings))


@le_app.command("record")
def le_record(
    kind: Annotated[str, typer.Option(help="preservation or disclosure")],
    agency: Annotated[str, typer.Option(help="who asks")],
    reference: Annotated[str, typer.Option(help="their reference")],
    legal_basis: Annotated[str, typer.Option(help="the order or statute it rests on")],
    account: Annotated[str, typer.Option(help="the account whose evidence it covers")],
) -> None:
    """Record a request; the legal hold it asks for is placed at once."""
    found = _evidence_call(_le_desk().record, kind=kind, agency=agency, reference=reference,
                           legal_basis=legal_basis, account_id=account, actor=_by())
    _line({"request": found.id, "hold": found.hold_id, "status": found.status})


@le_app.command("list")
def le_list() -> None:
    """Every request, one JSON line each."""
    for found in _le_desk().requests():
        _line({"request": found.id, "kind": found.kind, "agency": found.agency,
               "reference": found.reference, "account": found.account_id,
               "status": found.status, "hold": found.hold_id,
               "package_sha256": found.package_sha256})


@le_app.command("disclose")
def le_disclose(
    request: Annotated[int, typer.Argument(help="the request's number")],
    out: Annotated[Path, typer.Option(help="where to write the encrypted package")],
) -> None:
    """Write a disclosure request's encrypted package; the passphrase is the first line
    of standard input (give it to the agency by another channel)."""
    passphrase = sys.stdin.readline().rstrip("\r\n")
    digest = _evidence_call(_le_desk().disclose, request, out, passphrase=passphrase,
                            actor=_by())
    _line({"request": request, "written": str(out), "sha256": digest})


# -- the audit chain ----------------------------------------------------------------------

audit_app = typer.Typer(help="The tamper-evident record: verify, checkpoint, export.",
                        no_args_is_help=True)
app.add_typer(audit_app, name="audit")
EXIT_TAMPERED = 1


def _signer() -> Signer:
    settings = Settings.from_env()
    return signer_for(_database(settings), settings)


@audit_app.command("verify")
def audit_verify(
    first: Annotated[int | None, typer.Option("--from", help="first link (default 1)")] = None,
    last: Annotated[int | None, typer.Option("--to", help="last link (default: the head)")
                    ] = None,
    sources: Annotated[bool, typer.Option(
        help="also check the audited rows still match their links")] = False,
) -> None:
    """Check every link (and signed checkpoint) in a range; name the first bad one.
    Exit 0 when intact, 1 when tampered with."""
    signer = _signer()
    report = verify(signer.db, first=first, last=last, public=signer.public,
                    sources=sources)
    _line(report.to_dict())
    if not report.ok:
        raise typer.Exit(EXIT_TAMPERED)


@audit_app.command("checkpoint")
def audit_checkpoint() -> None:
    """Sign the chain's head now (the worker also does it every 1,000 links or 10 min)."""
    made = _signer().checkpoint(force=True)
    _line({"signed": made is not None, **({"seq": made.seq, "hash": made.hash,
                                          "key_id": made.key_id} if made else {})})


@audit_app.command("public-key")
def audit_public_key() -> None:
    """The key that verifies checkpoints, to give to an auditor (base64, 32 bytes)."""
    signer = _signer()
    _line({"public_key": public_key_text(signer.public), "key_id": signer.key_id})


@audit_app.command("export")
def audit_export(
    out: Annotated[Path, typer.Option(help="the file to write (JSON lines)")],
    first: Annotated[int, typer.Option("--from", help="first link")] = 1,
    last: Annotated[int | None, typer.Option("--to", help="last link (default: the head)")
                    ] = None,
) -> None:
    """Write a range of links with its checkpoints for an outside party (extended to the
    next signed checkpoint)."""
    try:
        header = export(_signer(), out, first=first, last=last)
    except InvalidRequest as exc:
        raise _refuse(str(exc)) from exc
    _line({"written": str(out), **header})


@audit_app.command("verify-export")
def audit_verify_export(
    path: Annotated[Path, typer.Argument(help="an export from `consentry audit export`")],
    public_key: Annotated[str, typer.Option(help="the public key (base64), as "
                                                 "`consentry audit public-key` prints it")],
) -> None:
    """Check an export with the public key alone (no database needed)."""
    try:
        report = verify_export(path, public_key)
    except (OSError, ValueError, KeyError) as exc:
        raise _refuse(f"cannot read {path} as an audit export: {exc}") from exc
    _line(report.to_dict())
    if not report.ok:
        raise typer.Exit(EXIT_TAMPERED)


# Transparency reports, incident packs, the register of regulator requests (cli_report.py,
# which uses this module's helpers: hence imported here, after them).
from consentry.cli_report import report_app  # noqa: E402

app.add_typer(report_app, name="report")
# The likeness registry (cli_likeness.py).
from consentry.cli_likeness import likeness_app  # noqa: E402

app.add_typer(likeness_app, name="likeness")

from consentry.cli_provenance import provenance_app  # noqa: E402

app.add_typer(provenance_app, name="provenance")


def main() -> None:
    """The ``consentry`` command: a configuration the service cannot run with (a bad
    policy file, a malformed setting) is a one-line error and exit 2, not a traceback."""
    try:
        app()
    except ConfigurationError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        sys.exit(EXIT_BAD_INPUT)


if __name__ == "__main__":
    main()
