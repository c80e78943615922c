"""One exception handler: maps Fundflow's error tree (and the database being down) to HTTP answers.

Every error body has the same shape: `{"error": name, "message": sentence, "hint": what to do, ...}`; a
contract revert adds `args` (the custom error's decoded arguments) and a sentence a banker understands.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from ledger.chain.client import RpcError
from ledger.errors import (
    AttestationRefusedError,
    AuthenticationError,
    BundleError,
    ChainError,
    ConfigError,
    ConflictError,
    ContractRevertError,
    FundflowError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    StorageError,
    ValidationError,
    VerificationError,
)
from ledger.protocol.codes import LoanStatus
from ledger.protocol.money import format_amount

__all__ = ["ERROR_RESPONSES", "RETRY_AFTER_SECONDS", "explain_revert", "install_error_handlers"]

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5


def _money(value: Any) -> str:
    try:
        return format_amount(int(value), code=False)
    except (TypeError, ValueError):
        return str(value)


def _short(value: Any) -> str:
    text = str(value)
    return text[:10] + "…" if len(text) > 12 else text


_STATUS_NAMES = {int(s): s.en for s in LoanStatus}

# Custom error -> (HTTP status, sentence). 403: the caller may not do this; 422: the request itself is wrong;
# 409: the request is fine but the loan's current state refuses it.
_REVERTS: dict[str, tuple[int, Callable[[dict[str, Any]], str]]] = {
    "LedgerZeroId": (422, lambda a: "An identifier (loan, lot or organisation id) was all zeros."),
    "LedgerZeroAddress": (422, lambda a: "An account address was the zero address."),
    "LedgerZeroAmount": (422, lambda a: "The amount must be greater than zero."),
    "LedgerAmountTooLarge": (
        422,
        lambda a: (
            f"The amount {_money(a.get('amount'))} is larger than the ledger can record "
            f"({_money(a.get('max'))})."
        ),
    ),
    "LedgerInvalidPurpose": (
        422,
        lambda a: f"Purpose code {a.get('purpose')} does not exist; purpose codes run from 0 to 31.",
    ),
    "LedgerEmptyPurposeSet": (422, lambda a: "A loan must allow at least one purpose of use."),
    "LedgerInvalidCurrency": (422, lambda a: "The currency is not a three-letter ISO 4217 code."),
    "LedgerMaturityInPast": (
        422,
        lambda a: f"The maturity date ({a.get('maturity')}) is already in the past on the ledger's clock.",
    ),
    "LedgerInvalidRiskClass": (
        422,
        lambda a: f"Risk class {a.get('riskClass')} does not exist; use 0 (normal) to 4 (loss).",
    ),
    "LedgerInvalidInspectionKind": (422, lambda a: f"Inspection kind {a.get('kind')} does not exist."),
    "LedgerInvalidRecordKind": (
        422,
        lambda a: f"Post-loan file record kind {a.get('recordKind')} does not exist.",
    ),
    "LedgerInvalidClosingStatus": (422, lambda a: "A loan can only be closed as repaid or written off."),
    "LedgerEmptyBatch": (422, lambda a: "The batch contains no payments."),
    "LedgerBatchTooLarge": (
        422,
        lambda a: f"The batch holds {a.get('size')} payments; at most {a.get('max')} fit in one.",
    ),
    "LedgerOrganizationExists": (409, lambda a: "This organisation is already registered."),
    "LedgerOrganizationNotFound": (404, lambda a: "This organisation is not registered on the ledger."),
    "LedgerAccountAlreadyRegistered": (409, lambda a: "This account already belongs to an organisation."),
    "LedgerAccountNotRegistered": (
        403,
        lambda a: f"Account {a.get('account')} is not registered with any organisation on the ledger.",
    ),
    "LedgerLoanExists": (409, lambda a: "A loan with this id (or loan number) already exists."),
    "LedgerLoanNotFound": (404, lambda a: f"No loan {_short(a.get('loanId'))} exists on the ledger."),
    "LedgerLoanNotOpen": (
        409,
        lambda a: (
            f"The loan is {_STATUS_NAMES.get(int(a.get('status', 0)), 'closed')}, not open: "
            "nothing more can be recorded on it."
        ),
    ),
    "LedgerNotLoanLender": (
        403,
        lambda a: (
            "Only the bank that granted this loan can service it; your account belongs to another "
            "organisation."
        ),
    ),
    "LedgerPrincipalExceeded": (
        409,
        lambda a: (
            f"This disbursement of {_money(a.get('requested'))} would exceed the loan's principal: "
            f"only {_money(a.get('undisbursed'))} is left to disburse."
        ),
    ),
    "LedgerRepaymentExceedsOutstanding": (
        409,
        lambda a: (
            f"The repayment of {_money(a.get('requested'))} is more than the "
            f"{_money(a.get('outstanding'))} still outstanding."
        ),
    ),
    "LedgerLoanOutstanding": (
        409,
        lambda a: (
            f"The loan still has {_money(a.get('outstanding'))} outstanding, so it cannot be closed "
            "as repaid."
        ),
    ),
    "LedgerLotNotFound": (
        404,
        lambda a: f"No lot {_short(a.get('lotId'))} exists under loan {_short(a.get('loanId'))}.",
    ),
    "LedgerInsufficientFunds": (
        409,
        lambda a: (
            f"The payment of {_money(a.get('requested'))} is more than the "
            f"{_money(a.get('remaining'))} left in the lot it is paid from."
        ),
    ),
    "LedgerNotLotSpender": (
        403,
        lambda a: "Only the holder of this money, or the bank servicing the loan, can pay out of it.",
    ),
    "LedgerNotLotPayee": (
        403,
        lambda a: "Only the payee of this payment can confirm or dispute it.",
    ),
    "LedgerLotAlreadyConfirmed": (
        409,
        lambda a: (
            f"Payment {_short(a.get('lotId'))} is already confirmed, and a confirmation is final: it cannot "
            "be confirmed or disputed again."
        ),
    ),
    "LedgerLotAlreadyDisputed": (
        409,
        lambda a: (
            f"Payment {_short(a.get('lotId'))} is already disputed, and a payment is disputed only once: "
            "confirm it when the matter is settled."
        ),
    ),
    "LedgerStaleHead": (
        409,
        lambda a: (
            "The loan's trail changed since you read it: the head you attested is no longer the "
            "current one. Verify the trail again and attest its current head."
        ),
    ),
    "AccessControlUnauthorizedAccount": (
        403,
        lambda a: "Your account does not hold the role this action needs on the ledger.",
    ),
    "EnforcedPause": (
        409,
        lambda a: "The ledger is paused by the operator; no changes can be recorded until it resumes.",
    ),
}

# Supply-chain vouchers (issue 22): the voucher contract's refusals, in the same three kinds.
_VOUCHER_REVERTS: dict[str, tuple[int, Callable[[dict[str, Any]], str]]] = {
    "VoucherLedgerPaused": (
        409,
        lambda a: "The ledger is paused by the operator; vouchers cannot change now.",
    ),
    "VoucherZeroId": (422, lambda a: "An id or hash that must be set was all zeros."),
    "VoucherZeroAddress": (422, lambda a: "An account address was the zero address."),
    "VoucherZeroAmount": (422, lambda a: "The amount must be greater than zero."),
    "VoucherInvalidCurrency": (422, lambda a: "The currency is not a three-letter ISO 4217 code."),
    "VoucherMissingRole": (
        403,
        lambda a: f"Account {a.get('account')} lacks the ledger role this voucher action needs.",
    ),
    "VoucherOrganizationNotFound": (422, lambda a: "The organisation named is not registered on the ledger."),
    "CreditLineHeldByOtherBank": (
        403,
        lambda a: (
            "This core enterprise's credit line (授信额度) was granted by another bank; only that bank "
            "can change it."
        ),
    ),
    "CreditLineBelowOutstanding": (
        409,
        lambda a: (
            f"The line cannot go below what the core enterprise has outstanding in vouchers "
            f"({_money(a.get('outstanding'))}); {_money(a.get('limit'))} was asked."
        ),
    ),
    "CreditLineExpiryInPast": (422, lambda a: "The credit line's expiry must be in the future."),
    "CreditLineNotFound": (
        409,
        lambda a: (
            "This core enterprise has no credit line (授信额度): a bank grants one before it issues vouchers."
        ),
    ),
    "CreditLineExpired": (
        409,
        lambda a: "The core enterprise's credit line has expired; a bank must renew it.",
    ),
    "CreditLineExceeded": (
        409,
        lambda a: (
            f"Issuing {_money(a.get('faceValue'))} would take the core enterprise's outstanding vouchers "
            f"({_money(a.get('outstanding'))}) beyond its credit line of {_money(a.get('limit'))} (授信额度)."
        ),
    ),
    "VoucherExists": (
        409,
        lambda a: f"Voucher {_short(a.get('voucherId'))} already exists; choose another id.",
    ),
    "VoucherNotFound": (404, lambda a: f"There is no voucher {_short(a.get('voucherId'))}."),
    "VoucherMaturityInPast": (422, lambda a: "A voucher's maturity must be in the future."),
    "VoucherPartNotFound": (
        404,
        lambda a: f"Voucher {_short(a.get('voucherId'))} has no part {a.get('partId')}.",
    ),
    "VoucherNotPartHolder": (
        403,
        lambda a: f"Only the holder of part {a.get('partId')} can split, transfer or offer it for financing.",
    ),
    "VoucherBadSplit": (
        422,
        lambda a: (
            "A split names each recipient once with its amount (at least one, at most the contract's limit)."
        ),
    ),
    "VoucherInsufficientRemaining": (
        409,
        lambda a: (
            f"Part {a.get('partId')} has {_money(a.get('remaining'))} left; {_money(a.get('amount'))} was "
            "asked (face value is conserved across splits)."
        ),
    ),
    "VoucherPartWrongState": (
        409,
        lambda a: f"Part {a.get('partId')} is {_part_state(a.get('state'))}, which does not allow this.",
    ),
    "VoucherMatured": (409, lambda a: "The voucher has reached maturity: it can no longer be financed."),
    "VoucherInvalidRate": (422, lambda a: "The discount rate must be above 0 and below 100% (10,000 bps)."),
    "VoucherNotRequestedBank": (
        403,
        lambda a: (
            f"Only a lender of the bank the holder asked can accept financing of part {a.get('partId')}."
        ),
    ),
    "VoucherNotCoreEnterprise": (
        403,
        lambda a: "Only the core enterprise that issued the voucher settles its parts (到期兑付).",
    ),
    "VoucherNotMatured": (
        409,
        lambda a: "The voucher is not due yet: the core enterprise settles at or after maturity, not before.",
    ),
    "VoucherNothingToSettle": (
        409,
        lambda a: f"Part {a.get('partId')} has nothing left to settle: it was split away entirely.",
    ),
}
_REVERTS.update(_VOUCHER_REVERTS)


def _part_state(state: Any) -> str:
    from ledger.protocol.codes import PartState

    try:
        s = PartState(int(state))
    except (TypeError, ValueError):
        return f"in state {state}"
    return f"{s.label} ({s.label_zh})"


_REVERT_HINTS = {
    403: "Act with the account that holds the money or services the loan, or ask the operator for the role.",
    404: "Check the loan and lot ids (or the loan number).",
    409: "Read the loan's current state (GET /v1/loans/{loan}) and adjust the request.",
    422: "Correct the request; the ledger checks the same rules.",
}


def explain_revert(exc: ContractRevertError) -> tuple[int, str]:
    """The HTTP status and a plain sentence for a contract revert."""
    known = _REVERTS.get(exc.error_name)
    if known is None:
        return 409, f"The ledger refused the change ({exc.message})."
    status, sentence = known
    try:
        return status, sentence(exc.args_by_name)
    except Exception:  # a sentence must never turn a clear refusal into a 500
        return status, f"The ledger refused the change ({exc.message})."


def _body(error: str, message: str, hint: str | None, **extra: Any) -> dict[str, Any]:
    return {"error": error, "message": message, "hint": hint, **extra}


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**53:
        return str(value)
    return value


def error_response(exc: Exception) -> JSONResponse:
    """The HTTP answer for any exception the API lets escape a route."""
    headers: dict[str, str] = {}
    if isinstance(exc, ContractRevertError):
        status, sentence = explain_revert(exc)
        args = {k: _jsonable(v) for k, v in exc.args_by_name.items()}
        hint = _REVERT_HINTS.get(status, exc.hint)
        return JSONResponse(
            _body(exc.error_name, sentence, hint, args=args, detail=exc.message), status_code=status
        )
    if isinstance(exc, RpcError):
        return JSONResponse(
            _body("ChainRefused", f"The chain node refused the request: {exc.rpc_message}", exc.hint),
            status_code=502,
        )
    if isinstance(exc, ChainError):
        headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        body = _body("ChainUnavailable", f"The chain node cannot be reached: {exc.message}", exc.hint)
        body["hint"] = "Nothing was recorded. Retry later with the same Idempotency-Key; reads still work."
        return JSONResponse(body, status_code=503, headers=headers)
    if isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError):
        log.warning("database unavailable: %s", exc.__class__.__name__)
        return JSONResponse(
            _body("DatabaseUnavailable", "The database cannot be reached.", "Retry in a few seconds."),
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    if isinstance(exc, FundflowError):
        status = 500
        if isinstance(exc, AuthenticationError):
            status = 401
            headers["WWW-Authenticate"] = "Bearer"
        elif isinstance(exc, NotFoundError):
            status = 404
        elif isinstance(exc, PermissionDeniedError):
            status = 403
        elif isinstance(exc, PayloadTooLargeError):
            status = 413
        elif isinstance(exc, ValidationError):
            status = 422
        elif isinstance(exc, ConflictError):
            status = 409
        elif isinstance(exc, ConfigError):
            status = 500
        elif isinstance(exc, StorageError):
            status = 503  # disk full or read-only: temporary from the caller's side
            headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        elif isinstance(exc, AttestationRefusedError):
            status = 409  # the trail's state refuses the attestation; nothing was sent
        elif isinstance(exc, BundleError):
            status = 502  # the node's answers did not make a bundle that proves the trail
        elif isinstance(exc, VerificationError):
            # The check could not run (node behind the mirror, another chain or deployment). A check that
            # ran and found problems is a 200 with ok=false, never an error.
            status = 503
            headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        name = type(exc).__name__.removesuffix("Error") or "Error"
        return JSONResponse(_body(name, exc.message, exc.hint), status_code=status, headers=headers)
    log.exception("unexpected error", exc_info=exc)
    return JSONResponse(
        _body(
            "InternalError",
            "Something went wrong on the server.",
            "Retry; if it persists, tell the operator.",
        ),
        status_code=500,
    )


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


async def _validation_handler(request: Request, exc: RequestValidationError) -> JSONResponse:
    problems = []
    for err in exc.errors():
        message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        problems.append({"field": _field(tuple(err.get("loc", ()))), "problem": message})
    sentence = "; ".join(f"{p['field']}: {p['problem']}" for p in problems)
    return JSONResponse(
        _body(
            "Validation", f"The request is invalid: {sentence}", "Correct the fields listed.", fields=problems
        ),
        status_code=422,
    )


async def _handler(request: Request, exc: Exception) -> JSONResponse:
    return error_response(exc)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(FundflowError, _handler)
    app.add_exception_handler(sa.exc.OperationalError, _handler)
    app.add_exception_handler(sa.exc.InterfaceError, _handler)
    app.add_exception_handler(RequestValidationError, _validation_handler)  # type: ignore[arg-type]


_ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {"type": "string"},
        "message": {"type": "string"},
        "hint": {"type": "string", "nullable": True},
        "args": {"type": "object"},
    },
}

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {
        "description": "Missing or unknown API token",
        "content": {
            "application/json": {
                "example": _body(
                    "Unauthorized", "A valid API token is required.", "Send Authorization: Bearer <token>."
                )
            }
        },
    },
    403: {
        "description": "The caller lacks the role or ownership",
        "content": {
            "application/json": {
                "example": _body(
                    "PermissionDenied",
                    "Only lenders can open loans; Eastwind Auto Parts is an enterprise.",
                    "Ask the operator to grant the needed role, or act as the lot's holder or lender.",
                )
            }
        },
    },
    404: {
        "description": "Unknown or not visible to the caller",
        "content": {
            "application/json": {
                "example": _body(
                    "NotFound", "No loan LN-2026-0099 is visible to you.", "Check the identifier."
                )
            }
        },
    },
    409: {
        "description": "The ledger's state refuses the change, or an Idempotency-Key conflict",
        "content": {
            "application/json": {
                "example": _body(
                    "LedgerInsufficientFunds",
                    "The payment of 9,000.00 is more than the 5,000.00 left in the lot it is paid from.",
                    _REVERT_HINTS[409],
                    args={"lotId": "0x5f1c…", "remaining": 500000, "requested": 900000},
                )
            }
        },
    },
    422: {
        "description": "Invalid request",
        "content": {
            "application/json": {
                "example": _body(
                    "Validation",
                    "The request is invalid: amount: floats are refused",
                    "Correct the fields listed.",
                    fields=[{"field": "amount", "problem": "floats are refused"}],
                )
            }
        },
    },
    503: {
        "description": "Chain node or database unreachable; nothing was recorded",
        "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}},
        "content": {
            "application/json": {
                "example": _body(
                    "ChainUnavailable",
                    "The chain node cannot be reached.",
                    "Nothing was recorded. Retry later with the same Idempotency-Key; reads still work.",
                )
            }
        },
    },
}
