"""The web dashboard: server-rendered pages over the same service layer as the /v1 routes.

No JavaScript: the flow picture is inline SVG drawn on the server (`api.flow`), clicking a lot is a link, and
the few writes (confirm, dispute, acknowledge, resolve) are HTML forms that carry the session's CSRF token
and an idempotency key. Every read and write calls the same service functions as the /v1 routes
(`api.services.*`), so a page shows exactly what the API would answer the same caller, and writes take the
same write path (`api.writes.run_write`) and wait for the mirror before answering.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

from fastapi import APIRouter, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from pydantic import ValidationError as PydanticValidationError
from sqlmodel import Session

from api import charts, policy, sessions
from api.charts import svg_img
from api.cycles import render_cycle
from api.deps import AlertId, Caller, ServicesDep
from api.errors import error_response, explain_revert
from api.flow import FlowNode, FlowRoot, flow_nodes, render_flow
from api.guards import ASGIApp, Message, Receive, Scope, Send
from api.i18n import (
    ALERT_STATE_LABELS,
    RISK_CLASSES,
    RULE_LABELS,
    SEVERITY_LABELS,
    STATUSES,
    Translator,
    translator,
)
from api.schemas import ConfirmRequest, DisputeRequest, FinancingRequest, PaymentRefRequest
from api.services import Services
from api.services import alerts as alerts_service
from api.services import attestations as attestations_service
from api.services import audit as audit_service
from api.services import class_migration as migration_service
from api.services import collateral as collateral_service
from api.services import documents as documents_service
from api.services import guarantees as guarantees_service
from api.services import loans as loans_service
from api.services import lots as lots_service
from api.services import payments as payments_service
from api.services import portfolio as portfolio_service
from api.services import preservation as preservation_service
from api.services import register as register_service
from api.services import repayments as repayments_service
from api.services import risk as risk_service
from api.services import scores as scores_service
from api.services import visits as visits_service
from api.services import vouchers as vouchers_service
from api.services import writeoff as writeoff_service
from api.services.human import humanize, times_of
from api.services.rows import account_names, loan_numbers, org_names
from api.services.signers import signers
from api.writes import Write
from ledger.audit.workbook import XLSX_MEDIA_TYPE, loans_csv, loans_xlsx
from ledger.errors import (
    AuthenticationError,
    ContractRevertError,
    FundflowError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from ledger.monitoring.alerts import ALERT_STATES
from ledger.protocol.dates import day_start, iso_time
from ledger.protocol.money import format_amount
from ledger.protocol.purposes import describe
from ledger.protocol.visits import VisitDetails, VisitKind
from ledger.store.offchain import find_token

__all__ = ["SECURITY_HEADERS", "install", "router"]

PREFIX = "/dashboard"
HERE = Path(__file__).resolve().parent.parent
LANG_COOKIE = "fundflow_lang"

router = APIRouter(prefix=PREFIX, include_in_schema=False)

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
}

_env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def money(value: Any) -> str:
    """Minor units (fen) as an exact decimal with thousands separators."""
    return format_amount(int(value), code=False)


def short(value: Any, n: int = 10) -> str:
    text = str(value or "")
    return text if len(text) <= n + 2 else text[:n] + "…"


def when(iso: str | None, block: int | None = None, label: str = "block") -> Markup:
    """A block's time as a person reads it ("2026-12-06 21:18") with the block number one click away (a
    <details> needs no script); "–" when the mirror has not kept the block."""
    if block is None:
        return Markup("–")
    if not iso:
        return Markup('<span class="when">{} {}</span>').format(label, block)
    return Markup(
        '<details class="when"><summary><time datetime="{iso}">{shown}</time></summary>'
        "{label} {block}</details>"
    ).format(iso=iso, shown=iso[:16].replace("T", " "), label=label, block=block)


_env.filters["money"] = money
_env.filters["short"] = short
_env.globals["when"] = when


def install(app: FastAPI) -> None:
    """Mount the dashboard: its router, its static files, and security headers on every page."""
    from fastapi.staticfiles import StaticFiles

    app.include_router(router)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=HERE / "static"), name="dashboard-static")

    app.add_middleware(DashboardHeaders)  # type: ignore[arg-type]


_HEADERS_RAW = [(name.lower().encode(), value.encode()) for name, value in SECURITY_HEADERS.items()]


class DashboardHeaders:
    """SECURITY_HEADERS on every dashboard response that does not set them itself. Pure ASGI: Starlette's
    `@app.middleware("http")` (BaseHTTPMiddleware) cost every request, API calls included, an extra task
    and a response stream."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope.get("path", "").startswith(PREFIX):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in _HEADERS_RAW if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


# ---------------------------------------------------------------------------------------------- helpers


def _services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def _lang(request: Request) -> Translator:
    return translator(request.cookies.get(LANG_COOKIE))


def _render(
    request: Request, template: str, status_code: int = 200, caller: Caller | None = None, **ctx: Any
) -> HTMLResponse:
    t = _lang(request)
    cookie = request.cookies.get(sessions.COOKIE)
    csrf = sessions.csrf_token(_services(request), cookie) if caller is not None and cookie else ""
    html = _env.get_template(template).render(
        request=request,
        t=t,
        caller=caller,
        csrf=csrf,
        idem=secrets.token_hex(16),
        here=request.url.path + (f"?{request.url.query}" if request.url.query else ""),
        message=request.query_params.get("msg"),
        error=request.query_params.get("error"),
        STATUSES=STATUSES,
        RISK_CLASSES=RISK_CLASSES,
        zone=_services(request).settings.bank_timezone,
        may=lambda action: caller is not None and policy.allowed(caller, action),
        **ctx,
    )
    return HTMLResponse(html, status_code=status_code)


def _signin_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"{PREFIX}/signin?next={quote(target)}", status_code=303)


def _gate(request: Request, caller: Caller) -> None:
    """Ask the policy about the page or form itself (`policy.ROUTES`): an action on no loan in particular is
    decided here; one on a loan by the service the page calls, on the loan row."""
    route = request.scope.get("route")
    action = policy.ROUTES[f"{request.method} {getattr(route, 'path', request.url.path)}"]
    if action in policy.VOUCHER_POLICY:  # by role here; on a voucher by the service, on the voucher
        policy.require_voucher(caller, action)
    elif policy.POLICY[action].scope == "caller":
        policy.require(caller, action)


def _page(request: Request, build: Callable[[Caller, Session, Services], HTMLResponse]) -> Response:
    """Run a page builder for the signed-in caller: sign-in redirect without a session, an error page for
    Fundflow errors (same status codes as the API)."""
    services = _services(request)
    try:
        caller = sessions.session_caller(services, request.cookies.get(sessions.COOKIE))
    except AuthenticationError:
        return _signin_redirect(request)
    try:
        _gate(request, caller)
        with Session(services.engine) as session:
            return build(caller, session, services)
    except FundflowError as exc:
        status = error_response(exc).status_code
        return _render(request, "error.html", status_code=status, caller=caller, problem=exc)


@dataclass(frozen=True)
class Upload:
    """A file sent with a dashboard form (evidence for a confirmation or dispute)."""

    data: bytes
    filename: str | None
    media_type: str


async def _form(request: Request) -> dict[str, Any]:
    """A form's fields (str); a multipart form's chosen files as `Upload`s (empty file inputs left out)."""
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        out: dict[str, Any] = {}
        async with request.form(max_files=2, max_fields=20) as form:
            for key, value in form.multi_items():
                if isinstance(value, str):
                    out.setdefault(key, value)
                elif value.filename:
                    out[key] = Upload(await value.read(), value.filename, value.content_type or "")
        return out
    body = (await request.body()).decode("utf-8", errors="replace")
    return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}


def _local(target: str | None, default: str) -> str:
    """Only redirect within the dashboard (no open redirect)."""
    if target and target.startswith(PREFIX + "/") and not target.startswith("//") and "\\" not in target:
        return target
    return default


def _back(target: str, **params: str) -> RedirectResponse:
    base, _, query = target.partition("?")
    kept = {k: v[0] for k, v in parse_qs(query).items() if k not in ("msg", "error")}
    kept.update(params)
    return RedirectResponse(f"{base}?{urlencode(kept)}" if kept else base, status_code=303)


async def _write(
    request: Request, action: Callable[[Caller, Session, Services, dict[str, Any]], str]
) -> Response:
    """A form POST: session, CSRF check, then `action` in a worker thread; back to the page with a message."""
    services = _services(request)
    cookie = request.cookies.get(sessions.COOKIE)
    form = await _form(request)
    back = _local(form.get("back"), PREFIX + "/loans")
    try:
        caller = sessions.session_caller(services, cookie)
    except AuthenticationError:
        return _signin_redirect(request)
    if not sessions.valid_csrf(services, cookie, form.get("csrf")):
        return _render(
            request,
            "error.html",
            status_code=403,
            caller=caller,
            problem=ValidationError("The form expired or did not come from this dashboard; reload the page."),
        )

    def run() -> str:
        _gate(request, caller)
        with Session(services.engine) as session:
            return action(caller, session, services, form)

    try:
        message = await run_in_threadpool(run)
    except FundflowError as exc:
        # a contract's refusal in its plain sentence (the API's), not the raw custom error
        return _back(back, error=explain_revert(exc)[1] if isinstance(exc, ContractRevertError) else str(exc))
    return _back(back, msg=message)


# ---------------------------------------------------------------------------------------------- sign-in


@router.get("", response_class=HTMLResponse)
@router.get("/", response_class=HTMLResponse)
def home() -> RedirectResponse:
    return RedirectResponse(f"{PREFIX}/loans", status_code=303)


@router.get("/signin", response_class=HTMLResponse)
def signin_page(request: Request) -> HTMLResponse:
    return _signin_form(request, next=_local(request.query_params.get("next"), ""))


def _signin_form(request: Request, status_code: int = 200, **ctx: Any) -> HTMLResponse:
    """The sign-in page with a fresh sign-in CSRF token and the cookie it is bound to."""
    nonce = sessions.new_signin_nonce()
    response = _render(
        request,
        "signin.html",
        status_code=status_code,
        signin_csrf=sessions.signin_csrf_token(_services(request), nonce),
        **ctx,
    )
    response.set_cookie(
        sessions.SIGNIN_COOKIE,
        nonce,
        max_age=sessions.SIGNIN_SECONDS,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path=PREFIX + "/signin",
    )
    return response


@router.post("/signin", response_class=HTMLResponse)
async def signin(request: Request, services: ServicesDep) -> Response:
    form = await _form(request)
    next_page = _local(form.get("next"), "")
    if not sessions.same_origin_post(request):
        return _signin_form(
            request,
            status_code=403,
            next=next_page,
            signin_error="This sign-in did not come from this dashboard's own page; sign in here.",
        )
    if not sessions.valid_signin_csrf(
        services, request.cookies.get(sessions.SIGNIN_COOKIE), form.get("signin_csrf")
    ):
        return _signin_form(
            request,
            status_code=403,
            next=next_page,
            signin_error="The sign-in form expired or did not come from this dashboard; sign in again.",
        )
    token = form.get("token", "").strip()
    row = await run_in_threadpool(find_token, services.engine, token) if token else None
    if row is None:
        return _signin_form(
            request,
            status_code=401,
            next=next_page,
            signin_error="The API token is unknown, expired or revoked.",
        )
    response = RedirectResponse(next_page or f"{PREFIX}/loans", status_code=303)
    response.set_cookie(
        sessions.COOKIE,
        sessions.make_session(services, row.token_hash, token_expires=row.expires_at),
        max_age=sessions.SESSION_SECONDS,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path=PREFIX,
    )
    response.delete_cookie(sessions.SIGNIN_COOKIE, path=PREFIX + "/signin")
    return response


@router.post("/signout")
async def signout(request: Request) -> Response:
    services = _services(request)
    form = await _form(request)
    if not sessions.valid_csrf(services, request.cookies.get(sessions.COOKIE), form.get("csrf")):
        return RedirectResponse(f"{PREFIX}/loans", status_code=303)
    response = RedirectResponse(f"{PREFIX}/signin", status_code=303)
    response.delete_cookie(sessions.COOKIE, path=PREFIX)
    return response


@router.get("/lang/{lang}")
def set_language(lang: str, request: Request) -> RedirectResponse:
    response = RedirectResponse(_local(request.query_params.get("next"), f"{PREFIX}/loans"), status_code=303)
    response.set_cookie(
        LANG_COOKIE, "zh" if lang == "zh" else "en", max_age=365 * 86400, samesite="strict", path=PREFIX
    )
    return response


# ---------------------------------------------------------------------------------------------- loans


@router.get("/loans", response_class=HTMLResponse)
def loans_page(request: Request) -> Response:
    params = request.query_params
    q = (params.get("q") or "").strip()
    status = params.get("status") or ""
    risk = params.get("risk") or ""
    only_alerts = params.get("alerts") == "1"

    def build(caller: Caller, session: Session, services: Services) -> HTMLResponse:
        rows = loans_service.search_loans(
            session,
            services,
            caller,
            text=q,
            status=int(status) if status.isdigit() else None,
            risk_class=int(risk) if risk.isdigit() else None,
        )
        humanize(session, services.settings.bank_zone, rows)
        counts = alerts_service.open_alert_counts(session, caller, [r["loan_id"] for r in rows])
        if only_alerts:
            rows = [r for r in rows if counts.get(r["loan_id"])]
        return _render(
            request,
            "loans.html",
            caller=caller,
            loans=rows,
            names=account_names(services),
            alert_counts=counts,
            q=q,
            status=status,
            risk=risk,
            only_alerts=only_alerts,
        )

    return _page(request, build)


@router.get("/loans-export/{kind}")
def loans_export(kind: str, request: Request) -> Response:
    """The loans table as a file (CSV or Excel), in a person's terms: the same loans the page lists."""

    def build(caller: Caller, session: Session, services: Services) -> Response:
        if kind not in ("csv", "xlsx"):
            raise NotFoundError(f"there is no loans export called {kind!r}", hint="csv or xlsx")
        rows = loans_service.search_loans(session, services, caller)
        humanize(session, services.settings.bank_zone, rows)
        names, orgs = account_names(services), org_names(services)
        table = [
            {
                "loan_number": r["loan_number"] or "",
                "borrower": names.get(r["borrower"], ""),
                "lender": orgs.get(r["lender_org"], ""),
                "currency": r["currency"],
                "principal_yuan": r["principal_yuan"],
                "disbursed_yuan": r["disbursed_yuan"],
                "repaid_yuan": r["repaid_yuan"] or "",
                "outstanding_yuan": r["outstanding_yuan"] or "",
                "opened": r["block_time"] or "",
                "maturity_date": r["maturity_date"],
                "status": STATUSES.get(int(r["status"]), ("", ""))[0],
                "status_zh": STATUSES.get(int(r["status"]), ("", ""))[1],
                "risk_class": "" if r["risk_class"] is None else RISK_CLASSES[int(r["risk_class"])][0],
                "risk_class_zh": "" if r["risk_class"] is None else RISK_CLASSES[int(r["risk_class"])][1],
                "loan_id": r["loan_id"],
                "borrower_address": r["borrower"],
                "block_number": r["block_number"],
            }
            for r in rows
        ]
        name = f"fundflow-loans.{kind}"
        headers = {"Content-Disposition": f'attachment; filename="{name}"'}
        if kind == "csv":
            return Response(loans_csv(table), media_type="text/csv; charset=utf-8", headers=headers)
        return Response(loans_xlsx(table), media_type=XLSX_MEDIA_TYPE, headers=headers)

    return _page(request, build)  # type: ignore[arg-type]


@router.get("/loans/{loan}", response_class=HTMLResponse)
def loan_page(loan: str, request: Request) -> Response:
    selected_id = (request.query_params.get("lot") or "").lower() or None

    def build(caller: Caller, session: Session, services: Services) -> HTMLResponse:
        t = _lang(request)
        trail = loans_service.trail(session, services, caller, loan)
        row, loan_id, lots = trail.row, trail.row.loan_id, trail.lots
        zone = services.settings.bank_zone
        humanize(session, zone, [trail.loan, lots], trail.loan["currency"])
        alerts = alerts_service.readable(session, services, alerts_service.loan_alerts(session, caller, row))
        shows = {s: policy.allowed(caller, a, row) for s, a in policy.LOAN_PAGE_SECTIONS.items()}
        per_lot: dict[str, int] = {}
        for a in alerts:
            for lot_id in a.lot_ids or []:
                per_lot[str(lot_id).lower()] = per_lot.get(str(lot_id).lower(), 0) + 1
        names = account_names(services)
        # The picture draws the first DRAWN_DEPTH levels; the deeper part is summarised under it (the
        # table below lists every lot, and each is still a link to its detail).
        drawn, deeper = trail.within(loans_service.DRAWN_DEPTH)
        nodes = flow_nodes([_Row(d) for d in drawn], names, lambda code: describe(code, t.lang), per_lot)
        number = trail.loan.get("loan_number") or loan_id
        base = f"{PREFIX}/loans/{quote(str(number))}"
        picture = render_flow(
            nodes,
            href=lambda n: f"{base}?lot={n.lot_id}#lot-detail",
            money=money,
            labels=t.flat(),
            selected=selected_id,
            root=FlowRoot(
                lender=org_names(services).get(row.lender_org, short(row.lender_org)),
                borrower=names.get(row.borrower, short(row.borrower)),
                principal=f"{row.currency} {money(row.principal)}",
                opened=(trail.loan.get("block_time") or "")[:16].replace("T", " "),
            ),
        )
        # The table of lots, a page at a time (a trail can hold far more lots than a page can show).
        raw_page = request.query_params.get("page") or "1"
        page_no = int(raw_page) if raw_page.isdigit() and int(raw_page) > 0 else 1
        pages = max(1, -(-len(lots) // LOTS_PER_PAGE))
        page_no = min(page_no, pages)
        table = lots[(page_no - 1) * LOTS_PER_PAGE : page_no * LOTS_PER_PAGE]
        by_id = {d["lot_id"]: d for d in lots}
        selected = by_id.get(selected_id) if selected_id else None
        detail: dict[str, Any] | None = None
        if selected is not None:
            parent = by_id.get(selected["parent_lot_id"]) if selected["parent_lot_id"] else None
            hashes = [h for h in (selected["evidence_hash"], selected.get("confirmation_hash")) if h]
            stored = documents_service.stored(session, hashes)
            detail = {
                "lot": selected,
                "parent": parent,
                "payer": _signer_name(session, services, names, selected["transaction_hash"]),
                "alerts": [a for a in alerts if selected["lot_id"] in [x.lower() for x in a.lot_ids or []]],
                "documents": [
                    {"hash": h, "label": label, "stored": stored.get(h)}
                    for h, label in (
                        (selected["evidence_hash"], "evidence"),
                        (selected.get("confirmation_hash"), "confirmation"),
                    )
                    if h and int(h, 16) != 0
                ],
                "children": trail.children.get(selected["lot_id"], []),
            }
        return _render(
            request,
            "loan.html",
            caller=caller,
            loan=trail.loan,
            trail={"head": trail.head, "partial": trail.partial, **trail.counts()},
            lots=table,
            lots_page={"page": page_no, "pages": pages, "total": len(lots), "size": LOTS_PER_PAGE},
            names=names,
            orgs=org_names(services),
            picture=picture,
            deeper={
                "count": len(deeper),
                "drawn_levels": loans_service.DRAWN_DEPTH,
                "levels": trail.levels,
            },
            detail=detail,
            alerts=alerts,
            shows=shows,
            per_lot=per_lot,
            verification=_verification_with_time(
                session, services, audit_service.verification_summary(services, caller, row)
            ),
            attestations=humanize(
                session, zone, attestations_service.list_attestations(session, caller, loan_id)
            )
            if shows["attestations"]
            else [],
            repayments=humanize(session, zone, repayments_service.list_repayments(session, caller, loan_id))
            if shows["repayments"]
            else [],
            classifications=humanize(
                session, zone, risk_service.list_classifications(session, caller, loan_id)
            )
            if shows["classifications"]
            else [],
            servicing=risk_service.suggestion(session, services, caller, loan_id)
            if shows["servicing"]
            else None,
            behaviour_score=scores_service.loan_score(session, caller, row, zone),  # issue 21
            collateral=humanize(session, zone, collateral_service.list_collateral(session, caller, loan_id))
            if shows["collateral"]
            else [],
            purposes=[describe(c, t.lang) for c in range(32) if int(row.allowed_purposes) >> c & 1],
            describe=lambda code: describe(int(code), t.lang),
            base=base,
            visits=visits_service.list_visits(session, services, caller, loan_id) if shows["visits"] else [],
            visit_schedule=visits_service.visit_schedule(session, services, caller, loan_id)
            if shows["visits"]
            else {},
            visit_kinds=list(VisitKind),
            may_record_visit=policy.allowed(caller, "loan.record_visit", row),
            guarantees=guarantees_service.list_guarantees(session, caller, loan_id)
            if shows["guarantees"]
            else [],
            write_off_file=writeoff_service.write_off_file(session, caller, loan_id)
            if shows["write-off"]
            else None,
            preservation_cases=preservation_service.list_cases(session, caller, loan_id)
            if shows["preservation"]
            else [],
            register=register_service.list_register(session, caller, loan_id)
            if shows["collateral-register"]
            else None,
            engagements=register_service.list_engagements(session, caller, loan_id)
            if shows["engagements"]
            else None,
            may_appraise=policy.allowed(caller, "loan.appraise", row),
            may_write_off=policy.allowed(caller, "loan.write_off", row) and int(row.status) == 1,
            circles=[
                render_cycle(
                    [names.get(m, m[:6] + "…" + m[-4:]) for m in _checksummed(a.details.get("cycle", []))],
                )
                for a in alerts
                if a.rule == "guarantee_cycle" and a.state != "resolved"
            ],
        )

    return _page(request, build)


DOWNLOADS = ("report", "csv", "xlsx", "bundle")
LOTS_PER_PAGE = 200


@router.get("/loans/{loan}/download/{kind}")
def download(loan: str, kind: str, request: Request) -> Response:
    """The loan page's download buttons: the same files as /v1/loans/{loan}/report, export and bundle, for
    the signed-in caller (the same service functions decide who gets them)."""
    services = _services(request)
    try:
        caller = sessions.session_caller(services, request.cookies.get(sessions.COOKIE))
    except AuthenticationError:
        return _signin_redirect(request)
    try:
        if kind not in DOWNLOADS:
            raise NotFoundError(
                f"there is no download called {kind!r}", hint=f"one of {', '.join(DOWNLOADS)}"
            )
        with Session(services.engine) as session:
            if kind == "report":
                file = audit_service.report(session, services, caller, loan, None)
                name = f"fundflow-report-{loan}.html"
                return Response(
                    file.content,
                    media_type=file.media_type,
                    headers=file.all_headers() | {"Content-Disposition": f'inline; filename="{name}"'},
                )
            if kind == "bundle":
                file = audit_service.bundle(session, services, caller, loan, None)
            else:
                file = audit_service.export(session, services, caller, loan, kind, None)  # type: ignore[arg-type]
    except FundflowError as exc:
        status = error_response(exc).status_code
        return _render(request, "error.html", status_code=status, caller=caller, problem=exc)
    return Response(file.content, media_type=file.media_type, headers=file.all_headers())


def _checksummed(members: list[str]) -> list[str]:
    """Cycle members as the directory keys accounts (checksummed); off-ledger references as they are."""
    from eth_utils import to_checksum_address

    return [to_checksum_address(m) if len(m) == 42 else m for m in members]


class _Row:
    """A trail dict seen as a row (attribute access), for `flow_nodes`."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.__dict__.update(data)


@router.get("/documents/{digest}")
def document(digest: str, request: Request) -> Response:
    services = _services(request)
    try:
        caller = sessions.session_caller(services, request.cookies.get(sessions.COOKIE))
    except AuthenticationError:
        return _signin_redirect(request)
    try:
        with Session(services.engine) as session:
            file = documents_service.download(session, services, caller, digest)
    except FundflowError as exc:
        status = error_response(exc).status_code
        return _render(request, "error.html", status_code=status, caller=caller, problem=exc)
    return Response(file.data, media_type=file.media_type, headers=file.headers())


# ---------------------------------------------------------------------------------------------- portfolio


@router.get("/portfolio", response_class=HTMLResponse)
def portfolio_page(request: Request) -> Response:
    def build(caller: Caller, session: Session, services: Services) -> HTMLResponse:
        t = _lang(request)
        data = portfolio_service.portfolio(session, services, caller)
        zone = services.settings.bank_zone
        return _render(
            request,
            "portfolio.html",
            caller=caller,
            p=data,
            as_of=iso_time(data["as_of"], zone) if data["as_of"] else None,
            charts=_portfolio_charts(t, data),
        )

    return _page(request, build)


@router.get("/scores", response_class=HTMLResponse)
def scores_page(request: Request) -> Response:
    """The open loans by behaviour-score band (issue 21): a chart and a table, with the model card's link."""

    def build(caller: Caller, session: Session, services: Services) -> HTMLResponse:
        t = _lang(request)
        data = scores_service.portfolio_scores(session, caller, services.settings.bank_zone)
        zh = t.lang == "zh"
        bands = [b for b in data["bands"] if b["band"] != "unscored" or b["loans"]]
        labels = [b["band"] + "\n" + (b["band_zh"] if zh else b["band_en"]) for b in bands]
        counts = [b["loans"] for b in bands]
        chart = svg_img(
            charts.bar_chart(labels, counts, unit=t("loans")),
            "; ".join(f"{b['band']}: {b['loans']}" for b in bands),
            "chart-by-band",
        )
        return _render(request, "scores.html", caller=caller, p=data, chart=chart)

    return _page(request, build)


@router.get("/score-models/latest", response_class=HTMLResponse)
def model_card_page(request: Request) -> Response:
    """The newest behaviour-score model's card, as `fundflow score evaluate` writes it."""

    def build(caller: Caller, session: Session, services: Services) -> HTMLResponse:
        from ledger.scoring.modelcard import card_markdown  # pandas and numpy only when a card is shown

        card = scores_service.latest_card(session, caller)["card"]
        markdown = card_markdown(card) if card else ""
        return _render(request, "model_card.html", caller=caller, card=card, markdown=markdown)

    return _page(request, build)


def _portfolio_charts(t: Translator, data: dict[str, Any]) -> dict[str, Markup]:
    """The page's charts (matplotlib SVG as images), each with a text alternative saying what it shows."""
    zh = t.lang == "zh"
    yuan = "万元 (10,000 CNY)" if zh else "CNY 10,000"

    def wan(fen: int) -> float:
        return round(fen / 1_000_000, 2)  # fen -> 10,000 yuan, for an axis only; tables carry exact yuan

    out: dict[str, Markup] = {}
    classes = [RISK_CLASSES[c][1] + "\n" + RISK_CLASSES[c][0] for c in data["by_class"]]
    values = [wan(v) for v in data["by_class"].values()]
    out["by_class"] = svg_img(
        charts.bar_chart(classes, values, unit=yuan),
        "; ".join(f"{c.replace(chr(10), ' ')}: {v:,.2f}" for c, v in zip(classes, values, strict=True)),
        "chart-by-class",
    )
    buckets = list(data["overdue"])
    counts = [data["overdue"][b][0] for b in buckets]
    out["overdue"] = svg_img(
        charts.bar_chart([f"{b} {'天' if zh else 'days'}" for b in buckets], counts, unit=t("loans")),
        "; ".join(f"{b} days: {n}" for b, n in zip(buckets, counts, strict=True)),
        "chart-overdue",
    )
    if data["top"]:
        labels = [row["name"] or short(row["borrower"], 12) for row in data["top"]]
        amounts = [wan(row["outstanding"]) for row in data["top"]]
        out["top"] = svg_img(
            charts.bar_chart(labels, amounts, unit=yuan, horizontal=True),
            "; ".join(f"{n}: {v:,.2f}" for n, v in zip(labels, amounts, strict=True)),
            "chart-top",
        )
    severities = list(SEVERITY_LABELS)
    if data["alerts_by_rule"]:
        rules = list(data["alerts_by_rule"])
        series = {s: [data["alerts_by_rule"][r].get(s, 0) for r in rules] for s in severities}
        series = {(SEVERITY_LABELS[s][1] if zh else s): v for s, v in series.items() if any(v)}
        labels = [RULE_LABELS.get(r, (r, r))[1 if zh else 0] for r in rules]
        out["alerts_by_rule"] = svg_img(
            charts.stacked_bars(labels, series, unit=t("alerts"), horizontal=True),
            "; ".join(
                f"{label}: {sum(data['alerts_by_rule'][r].values())}"
                for label, r in zip(labels, rules, strict=True)
            ),
            "chart-alerts-rule",
        )
    if data["alerts_by_month"]:
        months = list(data["alerts_by_month"])
        series = {s: [data["alerts_by_month"][m].get(s, 0) for m in months] for s in severities}
        series = {(SEVERITY_LABELS[s][1] if zh else s): v for s, v in series.items() if any(v)}
        out["alerts_by_month"] = svg_img(
            charts.stacked_bars(months, series, unit=t("alerts")),
            "; ".join(f"{m}: {sum(data['alerts_by_month'][m].values())}" for m in months),
            "chart-alerts-month",
        )
    return out


# ---------------------------------------------------------------------------------------------- alerts


@router.get("/alerts", response_class=HTMLResponse)
def alerts_page(request: Request) -> Response:
    params = request.query_params
    state = params.get("state") or "unresolved"
    rule = params.get("rule") or ""
    severity = params.get("severity") or ""
    loan = (params.get("loan") or "").strip()
    since, until = _day(params.get("since")), _day(params.get("until"))

    def build(caller: Caller, session: Session, services: Services) -> HTMLResponse:
        zone = services.settings.bank_zone
        page = alerts_service.list_alerts(
            session,
            caller,
            state=state if state in ALERT_STATES else None,
            unresolved=state == "unresolved",
            rule=rule if rule in RULE_LABELS else None,
            severity=severity if severity in SEVERITY_LABELS else None,
            loan=loan or None,
            since=None if since is None else day_start(since, zone),
            until=None if until is None else day_start(since_next(until), zone),
            limit=500,
        )
        return _render(
            request,
            "alerts.html",
            caller=caller,
            alerts=alerts_service.readable(session, services, page.items),
            numbers=loan_numbers(session, [a.loan_id for a in page.items]),
            state=state,
            states=("unresolved", *ALERT_STATES, "all"),
            rule=rule,
            severity=severity,
            loan=loan,
            since=params.get("since") or "",
            until=params.get("until") or "",
            RULE_LABELS=RULE_LABELS,
            SEVERITY_LABELS=SEVERITY_LABELS,
            ALERT_STATE_LABELS=ALERT_STATE_LABELS,
            can_act=policy.allowed(caller, "alert.handle"),
        )

    return _page(request, build)


def _day(text: str | None) -> date | None:
    """A date filter's value ("2026-03-01"); anything else is no filter (the form only sends dates)."""
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


def since_next(day: date) -> date:
    return day + timedelta(days=1)


def _signer_name(session: Session, services: Services, names: dict[str, str], tx_hash: str) -> str | None:
    signer = signers(session, services, [tx_hash]).get(tx_hash.lower())
    return names.get(signer, signer) if signer else None


def _verification_with_time(
    session: Session, services: Services, summary: dict[str, Any] | None
) -> dict[str, Any] | None:
    if summary is not None and isinstance(summary.get("block"), int):
        summary["block_time"] = _iso_times(session, services, [summary["block"]]).get(summary["block"])
    return summary


def _iso_times(session: Session, services: Services, blocks: list[int]) -> dict[int, str]:
    zone = services.settings.bank_zone
    return {n: iso_time(ts, zone) for n, ts in times_of(session, blocks).items()}


@router.post("/alerts/{alert_id}/acknowledge")
async def acknowledge_alert(alert_id: AlertId, request: Request) -> Response:
    def action(caller: Caller, session: Session, services: Services, form: dict[str, str]) -> str:
        alerts_service.acknowledge_alert(session, services, caller, alert_id)
        return f"Alert {alert_id} acknowledged."

    return await _write(request, action)


@router.post("/alerts/{alert_id}/resolve")
async def resolve_alert(alert_id: AlertId, request: Request) -> Response:
    def action(caller: Caller, session: Session, services: Services, form: dict[str, str]) -> str:
        note = form.get("note", "")
        if not note:
            raise ValidationError("Say what was done about the alert.", hint="Write a note in the form.")
        alerts_service.resolve_alert(session, services, caller, alert_id, note)
        return f"Alert {alert_id} resolved."

    return await _write(request, action)


# ---------------------------------------------------------------------------------------------- migration


@router.get("/migration", response_class=HTMLResponse)
def migration_page(request: Request) -> Response:
    """The class migration matrix (迁徙率) for a period (default: the 90 days to the chain's date, UTC)."""

    def build(caller: Caller, session: Session, services: Services) -> HTMLResponse:
        try:
            end = date.fromisoformat(request.query_params["end"]) if request.query_params.get("end") else None
            start = (
                date.fromisoformat(request.query_params["start"])
                if request.query_params.get("start")
                else None
            )
        except ValueError as exc:
            raise ValidationError(
                "dates are YYYY-MM-DD", hint="e.g. ?start=2026-01-01&end=2026-03-31"
            ) from exc
        data = migration_service.migration(session, caller, start=start, end=end)
        return _render(request, "migration.html", caller=caller, m=data)

    return _page(request, build)


# ---------------------------------------------------------------------------------------------- received


@router.get("/received", response_class=HTMLResponse)
def received_page(request: Request) -> Response:
    def build(caller: Caller, session: Session, services: Services) -> HTMLResponse:
        items = payments_service.received(session, services, caller, limit=500)["items"]
        humanize(session, services.settings.bank_zone, items)
        payer = payments_service.payers(session, services, items)
        for i in items:
            i["payer"] = payer[i["lot_id"]]
        waiting = [i for i in items if i["confirmation"] == "unconfirmed"]
        answered = [i for i in items if i["confirmation"] != "unconfirmed"]
        return _render(
            request,
            "received.html",
            caller=caller,
            waiting=waiting,
            answered=answered,
            numbers=loan_numbers(session, [i["loan_id"] for i in items]),
            describe=lambda code: describe(int(code), _lang(request).lang),
        )

    return _page(request, build)


@router.post("/lots/{lot_id}/confirm")
async def confirm_lot(lot_id: str, request: Request) -> Response:
    def action(caller: Caller, session: Session, services: Services, form: dict[str, Any]) -> str:
        note = str(form.get("note") or "").strip() or None
        evidence = _evidence(services, caller, form.get("evidence"))
        write = Write(request, caller, services, form.get("idem") or None, wait=True, session=session)
        body = ConfirmRequest(note=note, evidence_hash=evidence)
        response = lots_service.confirm(session, write, lot_id, body)
        if response.status_code >= 300:
            raise ValidationError(f"The ledger refused the confirmation ({response.status_code}).")
        return f"Payment {short(lot_id)} confirmed on the ledger."

    return await _write(request, action)


@router.post("/lots/{lot_id}/dispute")
async def dispute_lot(lot_id: str, request: Request) -> Response:
    def action(caller: Caller, session: Session, services: Services, form: dict[str, Any]) -> str:
        reason = str(form.get("reason") or "").strip()
        if not reason:
            raise ValidationError("Say why you dispute the payment.", hint="Write the reason in the form.")
        evidence = _evidence(services, caller, form.get("evidence"))
        # The words and the file stay off chain (kept as documents); only their hash goes on chain.
        write = Write(request, caller, services, form.get("idem") or None, wait=True, session=session)
        body = DisputeRequest(reason=reason, evidence_hash=evidence)
        response = lots_service.dispute(session, write, lot_id, body)
        if response.status_code >= 300:
            raise ValidationError(f"The ledger refused the dispute ({response.status_code}).")
        return f"Payment {short(lot_id)} disputed on the ledger."

    return await _write(request, action)


def _evidence(services: Services, caller: Caller, upload: Any) -> str:
    """An evidence file sent with the form, kept as a document (its hash is what the chain records)."""
    if not isinstance(upload, Upload):
        return "0x" + "00" * 32
    if len(upload.data) > services.settings.document_max_bytes:
        raise ValidationError(
            f"The evidence file is larger than {services.settings.document_max_bytes:,} bytes.",
            hint="Send a smaller file (a scan at a lower resolution, or a PDF).",
        )
    policy.require(caller, "documents.upload")
    stored = documents_service.store(
        services, caller, upload.data, upload.media_type or "application/octet-stream", upload.filename
    )
    return str(stored["hash"])


# ---------------------------------------------------------------------------------------------- visits


def _visit_details(form: dict[str, str]) -> VisitDetails:
    """The visit form as the API's request body; a bad field is a ValidationError saying which."""
    from pydantic import ValidationError as PydanticValidationError

    follow_up = form.get("follow_up", "").strip()
    data: dict[str, Any] = {
        "kind": form.get("kind", ""),
        "visit_date": form.get("visit_date", ""),
        "place": form.get("place", ""),
        "attendees": [line.strip() for line in form.get("attendees", "").splitlines() if line.strip()],
        "findings": form.get("findings", ""),
        "follow_ups": [
            {
                "action": follow_up,
                "owner": form.get("follow_up_owner", "").strip(),
                "due_date": form.get("follow_up_due", ""),
            }
        ]
        if follow_up
        else [],
    }
    try:
        return VisitDetails.model_validate(data)
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "the form"
        raise ValidationError(
            f"The visit was not recorded: {where}: {first['msg']}.", hint="Correct the field and send again."
        ) from exc


@router.post("/loans/{loan}/visits")
async def record_visit(loan: str, request: Request) -> Response:
    def action(caller: Caller, session: Session, services: Services, form: dict[str, str]) -> str:
        visits_service.may_record(session, caller, loan)  # who may, before what was sent
        body = _visit_details(form)
        write = Write(request, caller, services, form.get("idem") or None, wait=True, session=session)
        response = visits_service.record_visit(session, write, loan, body)
        if response.status_code >= 300:
            raise ValidationError(f"The ledger refused the visit ({response.status_code}).")
        return f"{body.kind.en.capitalize()} of {body.visit_date.isoformat()} recorded on the ledger."

    return await _write(request, action)


@router.post("/loans/{loan}/collateral-register/{item_id}/appraisals")
async def appraise(loan: str, item_id: str, request: Request) -> Response:
    """An engaged appraiser signs a valuation from the loan page (the contract checks the engagement)."""
    from pydantic import ValidationError as PydanticValidationError

    from ledger.protocol.collateral import AppraisalDetails

    def action(caller: Caller, session: Session, services: Services, form: dict[str, str]) -> str:
        policy.require_role(caller, "loan.appraise")  # who may, before what was sent
        data = {k: form.get(k, "").strip() for k in ("value", "valued_on", "method")}
        try:
            body = AppraisalDetails.model_validate(data)
        except PydanticValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "the form"
            raise ValidationError(
                f"The valuation was not signed: {where}: {first['msg']}.",
                hint="Correct the field and send again.",
            ) from exc
        write = Write(request, caller, services, form.get("idem") or None, wait=True, session=session)
        response = register_service.appraise(session, write, loan, item_id, body)
        if response.status_code >= 300:
            raise ValidationError(f"The ledger refused the valuation ({response.status_code}).")
        return f"Valuation of {data['value']} signed on the ledger."

    return await _write(request, action)


@router.post("/loans/{loan}/write-off")
async def write_off(loan: str, request: Request) -> Response:
    def action(caller: Caller, session: Session, services: Services, form: dict[str, str]) -> str:
        reason = form.get("reason", "").strip()
        if not reason:
            raise ValidationError("Say why the loan is written off.", hint="Write the reason in the form.")
        write = Write(request, caller, services, form.get("idem") or None, wait=True, session=session)
        response = writeoff_service.write_off(session, write, loan, reason)
        if response.status_code >= 300:
            raise ValidationError(f"The ledger refused the write-off ({response.status_code}).")
        return "Loan written off on the ledger; its reason's hash is in the trail."

    return await _write(request, action)


# ---------------------------------------------------------------------------------------------- vouchers
# Supply-chain vouchers (issue 22): a page per role (the core enterprise's payables against its line, a
# supplier's parts with the finance form, a bank's financing book and exposure) and a page per voucher (its
# tree as a picture, with the forms its holder, its asked bank and its core enterprise may use).


@router.get("/vouchers", response_class=HTMLResponse)
def vouchers_page(request: Request) -> Response:
    def build(caller: Caller, session: Session, services: Services) -> HTMLResponse:
        view = vouchers_service.overview(session, services, caller)
        banks = [p.name for p in services.directory.get() if p.role == "lender"]
        return _render(request, "vouchers.html", caller=caller, view=view, banks=sorted(banks))

    return _page(request, build)


def _voucher_picture(t: Translator, v: dict[str, Any]) -> Markup:
    """The voucher's tree drawn as the fund-flow picture: a box per part (holder, yuan, state, date), the
    band to a child as wide as what was passed on; the root box is the core enterprise's acknowledgement."""
    nodes = [
        FlowNode(
            lot_id=f"part-{p['part_id']}",
            parent_lot_id=f"part-{p['parent_part_id']}" if p["parent_part_id"] else None,
            holder=p["holder_name"] or short(p["holder"]),
            amount=int(p["amount"]),
            remaining=int(p["remaining"]),
            purpose=f"{t('part')} {p['part_id']}",
            declared_use=p["status"] != "overdue",
            confirmation="",
            status=p["status_label_zh"] if t.lang == "zh" else p["status_label"],
            date=(p.get("block_time") or "")[:16].replace("T", " "),
        )
        for p in v["parts"]
    ]
    labels = t.flat() | {"flow_title": t("voucher_tree"), "": ""}
    return render_flow(
        nodes,
        href=lambda n: f"#{n.lot_id}",
        money=money,
        labels=labels,
        root=FlowRoot(
            lender=v["core_name"] or short(v["core_org"]),
            borrower=t("issued"),
            principal=f"{v['currency']} {money(v['face_value'])}",
            opened=(v.get("block_time") or "")[:16].replace("T", " "),
        ),
    )


@router.get("/vouchers/{voucher}", response_class=HTMLResponse)
def voucher_page(voucher: str, request: Request) -> Response:
    def build(caller: Caller, session: Session, services: Services) -> HTMLResponse:
        if not _VOUCHER_ID.fullmatch(voucher):
            raise NotFoundError(f"There is no voucher {voucher}.", hint="Vouchers have ids of 0x + 64 hex.")
        t = _lang(request)
        v = vouchers_service.voucher(session, services, caller, voucher)
        banks = [p.name for p in services.directory.get() if p.role == "lender"]
        try:  # who sees every branch sees it verified against the chain, as a loan's page shows
            check: dict[str, Any] | None = vouchers_service.verification(session, services, caller, voucher)
        except PermissionDeniedError:
            check = None
        return _render(
            request,
            "voucher.html",
            caller=caller,
            v=v,
            picture=_voucher_picture(t, v),
            check=check,
            banks=sorted(banks),
            org=caller.org_id.lower(),
        )

    return _page(request, build)


_VOUCHER_ID = re.compile(r"0x[0-9a-fA-F]{64}")
VOUCHER_EXPORTS = ("xlsx", "csv", "json")


@router.get("/vouchers/{voucher}/export")
def voucher_export(voucher: str, request: Request, format: str = "xlsx") -> Response:  # noqa: A002
    """The voucher page's download links: the same files as /v1/vouchers/{voucher}/export, for the signed-in
    caller (the same service function decides who gets them)."""
    services = _services(request)
    try:
        caller = sessions.session_caller(services, request.cookies.get(sessions.COOKIE))
    except AuthenticationError:
        return _signin_redirect(request)
    try:
        if not _VOUCHER_ID.fullmatch(voucher):
            raise NotFoundError(f"There is no voucher {voucher}.", hint="Vouchers have ids of 0x + 64 hex.")
        if format not in VOUCHER_EXPORTS:
            raise NotFoundError(
                f"there is no export format {format!r}", hint=f"one of {', '.join(VOUCHER_EXPORTS)}"
            )
        with Session(services.engine) as session:
            content, media_type, name = vouchers_service.export(session, services, caller, voucher, format)
    except FundflowError as exc:
        status = error_response(exc).status_code
        return _render(request, "error.html", status_code=status, caller=caller, problem=exc)
    return Response(
        content, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


def _part_no(part: str) -> int:
    if not part.isdigit() or not 1 <= int(part) < 2**32:
        raise ValidationError(f"There is no part {part!r}.", hint="Parts are numbered from 1.")
    return int(part)


def _voucher_write(
    request: Request, voucher: str, session: Session, services: Services, caller: Caller, form: dict[str, Any]
) -> Write:
    if not _VOUCHER_ID.fullmatch(voucher):
        raise NotFoundError(f"There is no voucher {voucher}.", hint="Vouchers have ids of 0x + 64 hex.")
    return Write(request, caller, services, form.get("idem") or None, wait=True, session=session)


@router.post("/vouchers/{voucher}/parts/{part}/financing")
async def voucher_ask_financing(voucher: str, part: str, request: Request) -> Response:
    def action(caller: Caller, session: Session, services: Services, form: dict[str, Any]) -> str:
        try:
            body = FinancingRequest(bank=form.get("bank") or "", discount_rate_bps=form.get("rate_bps") or 0)
        except PydanticValidationError:
            raise ValidationError(
                "Name a bank and a discount rate between 1 and 10000 basis points a year.",
                hint="e.g. 365 for 3.65% a year",
            ) from None
        write = _voucher_write(request, voucher, session, services, caller, form)
        vouchers_service.request_financing(session, write, voucher, _part_no(part), body)
        return f"Financing of part {part} asked of {body.bank}."

    return await _write(request, action)


@router.post("/vouchers/{voucher}/parts/{part}/financing/accept")
async def voucher_accept_financing(voucher: str, part: str, request: Request) -> Response:
    def action(caller: Caller, session: Session, services: Services, form: dict[str, Any]) -> str:
        write = _voucher_write(request, voucher, session, services, caller, form)
        response = vouchers_service.accept_financing(
            session, write, voucher, _part_no(part), PaymentRefRequest()
        )
        terms = json.loads(bytes(response.body)).get("financing") or {}
        return (
            f"Part {part} financed: discount interest {terms.get('interest_yuan')} over {terms.get('days')} "
            f"days, paid {terms.get('paid_yuan')}."
        )

    return await _write(request, action)


@router.post("/vouchers/{voucher}/parts/{part}/settle")
async def voucher_settle(voucher: str, part: str, request: Request) -> Response:
    def action(caller: Caller, session: Session, services: Services, form: dict[str, Any]) -> str:
        write = _voucher_write(request, voucher, session, services, caller, form)
        response = vouchers_service.settle(session, write, voucher, _part_no(part), PaymentRefRequest())
        paid = json.loads(bytes(response.body))
        return f"Part {part} settled (到期兑付): {paid.get('amount_yuan')} paid to its holder."

    return await _write(request, action)
