"""`fundflow visits record|list`: a lender records a site visit or an interview, and lists a loan's visits,
through the running API (the same write path, checks and policy as the dashboard's form). The token comes
from --token or FUNDFLOW_API_TOKEN; the API from --api (default: this machine's FUNDFLOW_API_HOST/PORT)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

import typer

from fundflow.cli.apiclient import ApiUrl, Token, get_json, post_write
from fundflow.cli.console import console, friendly_errors
from ledger.errors import ValidationError
from ledger.protocol.visits import VisitKind

__all__ = ["register_visit_commands"]


def record(
    loan: Annotated[str, typer.Argument(help="Loan number or id.")],
    kind: Annotated[VisitKind, typer.Option(help="What was done.")],
    visit_date: Annotated[str, typer.Option("--date", help="When (YYYY-MM-DD).")],
    attendee: Annotated[list[str], typer.Option(help="Who took part (repeat for each).")],
    findings: Annotated[str, typer.Option(help="What was found.")],
    place: Annotated[str, typer.Option(help="Where (needed for site visits and in-person interviews).")] = "",
    photo: Annotated[list[str] | None, typer.Option(help="Hash of an uploaded photo (repeat).")] = None,
    document: Annotated[list[str] | None, typer.Option(help="Hash of an uploaded document (repeat).")] = None,
    follow_up: Annotated[
        list[str] | None, typer.Option(help="ACTION|OWNER|YYYY-MM-DD: a follow-up action (repeat).")
    ] = None,
    token: Token = None,
    api: ApiUrl = None,
) -> None:
    """Record a site visit (实地走访), an in-person (当面访谈) or video interview (视频访谈) on a loan."""
    follow_ups = []
    for item in follow_up or []:
        parts = [p.strip() for p in item.split("|")]
        if len(parts) != 3:
            raise ValidationError(f"follow-up {item!r} is not ACTION|OWNER|YYYY-MM-DD")
        follow_ups.append({"action": parts[0], "owner": parts[1], "due_date": parts[2]})
    try:
        date.fromisoformat(visit_date)
    except ValueError as exc:
        raise ValidationError(f"--date {visit_date!r} is not a date", hint="write it as YYYY-MM-DD") from exc
    body = {
        "kind": kind.value,
        "visit_date": visit_date,
        "place": place,
        "attendees": attendee,
        "findings": findings,
        "photos": photo or [],
        "documents": document or [],
        "follow_ups": follow_ups,
    }
    result = post_write(api, token, f"/v1/loans/{loan}/visits", body, "visit")
    console.print(
        f"{kind.en} ({kind.zh}) of {visit_date} recorded on loan {loan}: "
        f"transaction {result.get('tx_hash')}, block {result.get('block_number')}; "
        f"report hash {result.get('report_hash')}",
        soft_wrap=True,
    )


def list_visits(
    loan: Annotated[str, typer.Argument(help="Loan number or id.")],
    token: Token = None,
    api: ApiUrl = None,
) -> None:
    """A loan's visits and interviews, and when the next site visit is due."""
    visits, schedule = get_json(api, token, f"/v1/loans/{loan}/visits", f"/v1/loans/{loan}/visit-schedule")
    if not visits:
        console.print("no visits recorded")
    for v in visits:  # plain lines: findings are prose and must not be cut by a table's column width
        report = v["report"] or {}
        console.print(
            f"{report.get('visit_date', '—')}  {v['kind_label']} ({v['kind_label_zh']})  "
            f"recorded on chain {v['recorded_on']}, block {v['block_number']}  report {v['report_status']}",
            highlight=False,
            soft_wrap=True,
        )
        if report:
            console.print(f"  findings: {report['findings']}", highlight=False, soft_wrap=True)
            for f in report.get("follow_ups", []):
                line = f"  follow-up: {f['action']} ({f['owner']}, by {f['due_date']})"
                console.print(line, highlight=False, soft_wrap=True)
    if schedule.get("site_visit_due"):
        late = f", {schedule['overdue_days']} day(s) overdue" if schedule["overdue_days"] else ""
        console.print(
            f"next site visit due {schedule['site_visit_due']} (every {schedule['interval_days']} days{late})"
        )


def register_visit_commands(app: typer.Typer) -> None:
    visits_app = typer.Typer(help="Visits and interviews of a loan (lender).", no_args_is_help=True)
    visits_app.command("record")(friendly_errors(record))
    visits_app.command("list")(friendly_errors(list_visits))
    app.add_typer(visits_app, name="visits")
