"""``consentry report``: the transparency report, the incident pack and the register of
regulator requests from the command line. Output is one JSON line per answer; bad input
is one line on stderr and exit 2; an incident pack whose audit proof does not verify is
written and exits 1."""

from __future__ import annotations

import getpass
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from consentry.audit.checkpoints import signer_for
from consentry.config import Settings
from consentry.errors import ConsentryError
from consentry.people import People
from consentry.people.roles import Role
from consentry.reporting.analytics import Window, export_checks
from consentry.reporting.documents import write_transparency
from consentry.reporting.incident import IncidentScope, build_incident, write_pack
from consentry.reporting.regulator_requests import RegulatorRegister
from consentry.reporting.transparency import Period, transparency_report_for
from consentry.store import Database
from consentry.store.clickhouse import configured_clickhouse

report_app = typer.Typer(help="Transparency reports, incident packs and the register of "
                              "regulator requests.", no_args_is_help=True)
err = Console(stderr=True)
EXIT_BAD_INPUT = 2
EXIT_UNVERIFIED = 1

From = Annotated[str, typer.Option("--from", help="first day (YYYY-MM-DD) or ISO time, UTC")]
To = Annotated[str, typer.Option("--to", help="end, exclusive (YYYY-MM-DD) or ISO time")]
By = Annotated[str, typer.Option("--by", help="the administrator making the change (a "
                                              "console username holding the admin role)")]


def _database() -> tuple[Database, Settings]:
    settings = Settings.from_env()
    db = Database.open(settings)
    db.migrate()
    return db, settings


def _line(payload: dict[str, Any]) -> None:
    print(json.dumps(payload, default=str))


def _refuse(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(EXIT_BAD_INPUT)


def _period(start: str, end: str) -> Period:
    try:
        return Period.parse(start, end)
    except ConsentryError as exc:
        raise _refuse(str(exc)) from exc


@report_app.command("transparency")
def transparency(start: From, end: To,
                 out: Annotated[Path, typer.Option(help="the folder to write to")]) -> None:
    """Write transparency.html (charts inline), .csv and .json for a period."""
    period = _period(start, end)
    db, settings = _database()
    try:
        report = transparency_report_for(db, period, settings)
        written = write_transparency(report, out)
    finally:
        db.dispose()
    _line({"written": [str(p) for p in written], "period_start": period.start,
           "period_end": period.end, "statements_of_reasons_sent":
           report.statements_of_reasons_sent, "checks_counted_on": report.checks_counted_on,
           "checks_on_database_from": report.checks_on_database_from})


@report_app.command("incident")
def incident(start: From, end: To,
             out: Annotated[Path, typer.Option(help="the zip to write")],
             clause: Annotated[str | None, typer.Option(help="only this clause (e.g. II-1)")
                               ] = None,
             surface: Annotated[str | None, typer.Option(
                 help="only generation, upload or output")] = None) -> None:
    """Write the incident pack for a period (a zip; written whole or not at all)."""
    try:
        scope = IncidentScope(_period(start, end), clause=clause, surface=surface)
    except ConsentryError as exc:
        raise _refuse(str(exc)) from exc
    db, settings = _database()
    try:
        built = build_incident(signer_for(db, settings), scope)
        digest = write_pack(built, out)
    finally:
        db.dispose()
    ok = bool(built.audit.verification.get("ok"))
    _line({"written": str(out), "sha256": digest, "totals": built.totals, "audit_ok": ok,
           "audit_links": built.audit.links})
    if not ok:
        raise typer.Exit(EXIT_UNVERIFIED)


@report_app.command("export-analytics")
def export_analytics(
        start: Annotated[str | None, typer.Option("--from", help="first day (YYYY-MM-DD) or "
                                                  "ISO time, UTC; with --to")] = None,
        end: Annotated[str | None, typer.Option("--to", help="end, exclusive")] = None,
) -> None:
    """Copy the checks of a period (all, without one) to the analytics engine again: for a
    check that committed after the scheduled export had passed its time. Safe to repeat:
    the engine keeps one row per check."""
    if (start is None) != (end is None):
        raise _refuse("give both --from and --to, or neither (every check)")
    window = None if start is None or end is None else _period(start, end)
    db, settings = _database()
    try:
        if not settings.clickhouse_url:
            raise _refuse("no analytics engine is configured: set CONSENTRY_CLICKHOUSE_URL "
                          "(chdb:///PATH or http://host:8123)")
        with configured_clickhouse(settings) as engine:
            sent = export_checks(db, engine, None if window is None
                                 else Window(window.start, window.end))
    finally:
        db.dispose()
    _line({"sent": sent, "period_start": window.start if window else None,
           "period_end": window.end if window else None})


# -- the register -------------------------------------------------------------------------


def _admin(db: Database, settings: Settings, username: str) -> str:
    """Who makes a change: an enabled console administrator, with the operating-system
    user who ran the command."""
    try:
        person = People.open(db, settings).directory.get(username)
    except ConsentryError as exc:
        raise _refuse(f"{username!r} is not a console person: {exc}") from exc
    if not person.enabled or Role.ADMIN not in person.roles:
        raise _refuse(f"only an administrator changes the register; {username!r} is not one")
    try:
        system = getpass.getuser()
    except (KeyError, OSError):
        system = "unknown"
    return f"user:{person.id}:{person.username} (cli:{system})"


def _time(text: str, field: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise _refuse(f"--{field}: {text!r} is not an ISO 8601 time") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


@report_app.command("requests")
def requests(all_: Annotated[bool, typer.Option("--all", help="closed ones too")] = False
             ) -> None:
    """Every open regulator request with its countdown, soonest deadline first (one JSON
    line each)."""
    db, _ = _database()
    try:
        register = RegulatorRegister(db)
        now = register.now()
        for r in register.requests(open_only=not all_):
            _line({"id": r.id, "regulator": r.regulator, "reference": r.reference,
                   "legal_basis": r.legal_basis, "deadline": r.deadline, "status": r.status,
                   "countdown": r.countdown(now), "seconds_left": int(r.seconds_left(now)),
                   "attachments": [{"file_name": a.file_name, "sha256": a.sha256,
                                    "kind": a.kind} for a in r.attachments]})
    finally:
        db.dispose()


@report_app.command("request-add")
def request_add(
    regulator: Annotated[str, typer.Option(help="e.g. Ofcom, European Commission")],
    reference: Annotated[str, typer.Option(help="the regulator's reference")],
    legal_basis: Annotated[str, typer.Option(help="e.g. 'OSA s.100', 'DSA Art. 67'")],
    questions: Annotated[str, typer.Option(help="what is asked")],
    deadline: Annotated[str, typer.Option(help="ISO 8601 time (UTC unless given)")],
    by: By,
) -> None:
    """Record a regulator's information request."""
    db, settings = _database()
    try:
        actor = _admin(db, settings, by)
        request_id = RegulatorRegister(db).record(
            regulator=regulator, reference=reference, legal_basis=legal_basis,
            questions=questions, deadline=_time(deadline, "deadline"), actor=actor)
    except ConsentryError as exc:
        raise _refuse(str(exc)) from exc
    finally:
        db.dispose()
    _line({"id": request_id, "status": "open", "recorded_by": actor})


@report_app.command("request-attach")
def request_attach(
    request_id: Annotated[int, typer.Argument(help="the request's id")],
    file: Annotated[Path, typer.Argument(help="the pack or report handed over")],
    by: By,
    kind: Annotated[str, typer.Option(help="incident_pack, transparency_report or other")
                    ] = "incident_pack",
    start: Annotated[str | None, typer.Option("--from", help="the period it covers")] = None,
    end: Annotated[str | None, typer.Option("--to", help="end of the period")] = None,
) -> None:
    """Attach a file produced for a request (its name and SHA-256 are recorded)."""
    if not file.is_file():
        raise _refuse(f"{file} is not a file")
    period = _period(start, end) if start and end else None
    db, settings = _database()
    try:
        actor = _admin(db, settings, by)
        attached = RegulatorRegister(db).attach(
            request_id, file, kind=kind, actor=actor,
            period_from=period.start if period else None,
            period_to=period.end if period else None)
    except ConsentryError as exc:
        raise _refuse(str(exc)) from exc
    finally:
        db.dispose()
    _line({"request": request_id, "file_name": attached.file_name, "sha256": attached.sha256,
           "kind": attached.kind, "attached_by": actor})


@report_app.command("request-status")
def request_status(
    request_id: Annotated[int, typer.Argument(help="the request's id")],
    status: Annotated[str, typer.Argument(help="open, answered or closed")],
    by: By,
) -> None:
    """Mark a request answered, closed, or open again."""
    db, settings = _database()
    try:
        actor = _admin(db, settings, by)
        RegulatorRegister(db).set_status(request_id, status, actor=actor)
    except ConsentryError as exc:
        raise _refuse(str(exc)) from exc
    finally:
        db.dispose()
    _line({"id": request_id, "status": status, "updated_by": actor})
