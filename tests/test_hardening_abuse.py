"""Abuse: every write tried by every wrong participant, by expired, forged and revoked tokens, and with a
valid token on another bank's loan: refused with the exact status and body, the refusal logged by token
fingerprint; no secret in any log line, error body or response of a whole run."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from api_support import CAST, Api

from ledger.store.offchain import create_token, hash_token, revoke_tokens, token_fingerprint

pytestmark = pytest.mark.slow

NAME = {attr: name for attr, name, _, _ in CAST}
ROLE = {attr: role for attr, _, role, _ in CAST}


def _setup(api: Api) -> dict[str, str]:
    """LN-1 (Bank A) with a lot at the supplier, paid on to supplier2 (a lot whose payee is supplier2)."""
    loan_id = api.open_loan(loan_number="LN-2026-0001", principal="10000.00")["loan_id"]
    supplier_lot = api.disburse("LN-2026-0001", "supplier", "5000.00")
    r = api.pay("supplier", "LN-2026-0001", supplier_lot, "supplier2", "100.00")
    assert r.status_code == 201, r.text
    # By id: loan numbers are per lender, so Bank B's "LN-2026-0001" would name no loan at all (404).
    return {"loan": loan_id, "supplier_lot": supplier_lot, "paid_lot": r.json()["lot_ids"][0]}


def _writes(api: Api, ids: dict[str, str]) -> dict[str, tuple[str, dict[str, Any]]]:
    zero = "0x" + "11" * 32
    loan = ids["loan"]
    return {
        "open_loan": (
            "/v1/loans",
            {
                "borrower": api.address("borrower"),
                "principal": "0.05",
                "allowed_purposes": [1],
                "maturity": "2099-01-01",
            },
        ),
        "disburse": (
            f"/v1/loans/{loan}/disbursements",
            {"payee": api.address("supplier"), "amount": "0.01", "purpose": 1},
        ),
        "restructure": (
            f"/v1/loans/{loan}/restructure",
            {
                "maturity": "2099-06-30",
                "terms": {"repayment_schedule": [{"due": "2099-06-30", "amount": "1.00"}]},
                "financial_difficulty": False,
            },
        ),
        "repay": (f"/v1/loans/{loan}/repayments", {"amount": "0.01"}),
        "classify": (f"/v1/loans/{loan}/classification", {"risk_class": 1, "reason": "abuse walk"}),
        "collateral": (f"/v1/loans/{loan}/collateral", {"collateral_id": zero, "value": "0.01"}),
        "pay": (
            "/v1/payments",
            {
                "loan": loan,
                "from_lot": ids["supplier_lot"],
                "payee": api.address("subsupplier"),
                "amount": "0.01",
                "purpose": 1,
            },
        ),
        "pay_batch": (
            "/v1/payments/batch",
            {
                "loan": loan,
                "payments": [
                    {
                        "from_lot": ids["supplier_lot"],
                        "payee": api.address("subsupplier"),
                        "amount": "0.01",
                        "purpose": 1,
                    }
                ],
            },
        ),
        "confirm": (f"/v1/lots/{ids['paid_lot']}/confirm", {"evidence_hash": zero}),
        "dispute": (f"/v1/lots/{ids['paid_lot']}/dispute", {"reason_hash": zero}),
        "attest": (f"/v1/loans/{loan}/attestations", {"report_hash": zero}),
    }


LENDER_ONLY = {
    "disburse": "disburse",
    "restructure": "restructure loans",
    "repay": "record repayments",
    "classify": "classify loans",
    "collateral": "value collateral",
}
ALLOWED = {
    "open_loan": {"bank", "bank2", "other_bank"},
    **{name: {"bank", "bank2"} for name in LENDER_ONLY},
    "pay": {"bank", "bank2", "supplier"},
    "pay_batch": {"bank", "bank2", "supplier"},
    "confirm": {"supplier2"},
    "dispute": {"supplier2"},
    "attest": {"auditor"},
}
NOT_SPENDER = "Only the holder of this money, or the bank servicing the loan, can pay out of it."


def _expected(endpoint: str, who: str) -> tuple[str, str]:
    """(error, message) of the refusal `who` gets from `endpoint`."""
    name, role = NAME[who], ROLE[who]
    if endpoint == "open_loan":
        return "PermissionDenied", f"Only lenders can open loans; {name} is registered as {role}."
    if endpoint in LENDER_ONLY:
        action = LENDER_ONLY[endpoint]
        if role == "lender":  # a bank, but not the one servicing this loan
            return "PermissionDenied", f"This loan is serviced by another bank; {name} cannot {action} on it."
        return "PermissionDenied", f"Only lenders can {action}; {name} is registered as {role}."
    if endpoint in ("pay", "pay_batch"):
        if role == "auditor":
            return (
                "PermissionDenied",
                f"Only lenders or enterprises can pay out of a lot; {name} is registered as {role}.",
            )
        return "LedgerNotLotSpender", NOT_SPENDER  # the contract refuses (roles are checked twice)
    if endpoint in ("confirm", "dispute"):
        verb = endpoint
        if role != "enterprise":
            return (
                "PermissionDenied",
                f"Only enterprises can {verb} payments; {name} is registered as {role}.",
            )
        return (
            "PermissionDenied",
            f"Only the payee of a payment can {verb} payments; this lot was paid to another organisation.",
        )
    return "PermissionDenied", f"Only auditors can attest trails; {name} is registered as {role}."


@pytest.mark.parametrize("endpoint", sorted(ALLOWED))
def test_every_wrong_participant_is_refused_with_the_exact_body_and_the_refusal_is_logged(
    api: Api, endpoint: str, caplog: pytest.LogCaptureFixture
) -> None:
    ids = _setup(api)
    path, body = _writes(api, ids)[endpoint]
    loan_before = api.get("bank", "/v1/loans/LN-2026-0001").json()
    caplog.set_level(logging.WARNING, logger="api.refusals")
    wrong = [who for who, _, _, _ in CAST if who not in ALLOWED[endpoint]]
    assert wrong
    for who in wrong:
        r = api.post(who, path, body, key=f"abuse-{who}")
        error, message = _expected(endpoint, who)
        assert r.status_code == 403, (who, r.text)
        assert (r.json()["error"], r.json()["message"]) == (error, message), who
        assert r.json()["hint"]
        fingerprint = token_fingerprint(hash_token(api.tokens[who]))
        assert f"refused POST {path} -> 403 (token {fingerprint})" in caplog.messages, who
    # nothing was recorded by any of them
    assert api.get("bank", "/v1/loans/LN-2026-0001?wait=true").json() == loan_before


def test_expired_forged_and_revoked_tokens_get_401_and_refusals_name_only_a_fingerprint(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="api.refusals")
    engine = api.services.engine
    bank = api.accounts["bank"].address
    expired = create_token(
        engine,
        participant="Bank A",
        key_name="bank",
        address=bank,
        expires_at=datetime.now(UTC) - timedelta(seconds=1),
    )
    later = create_token(
        engine,
        participant="Bank A",
        key_name="bank",
        address=bank,
        expires_at=datetime.now(UTC) + timedelta(days=1),
    )
    forged = "ff_" + api.tokens["bank"][3:-2] + ("AA" if not api.tokens["bank"].endswith("AA") else "BB")
    to_revoke = create_token(engine, participant="Bank A", key_name="bank", address=bank)
    assert api.http.get("/v1/loans", headers={"Authorization": f"Bearer {to_revoke}"}).status_code == 200
    revoked = revoke_tokens(engine, fingerprint=token_fingerprint(hash_token(to_revoke)))
    assert [r.token_hash for r in revoked] == [hash_token(to_revoke)]
    body = {
        "borrower": api.address("borrower"),
        "principal": "0.05",
        "allowed_purposes": [1],
        "maturity": "2099-01-01",
    }

    assert api.http.get("/v1/loans", headers={"Authorization": f"Bearer {later}"}).status_code == 200
    for token in (expired, forged, to_revoke, "", "not-even-a-token", "ff_" + "%00" * 10):
        r = api.http.post("/v1/loans", json=body, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401, r.text
        assert r.headers["WWW-Authenticate"] == "Bearer"
        assert r.json() == {
            "error": "Authentication",
            "message": "This endpoint needs an API token."
            if not token
            else "The API token is unknown or has been revoked.",
            "hint": "Send `Authorization: Bearer <token>`; the operator creates tokens with "
            "`fundflow tokens create`.",
        }
        if token:
            assert token not in r.text
    logged = "\n".join(caplog.messages)
    for token in (expired, forged, to_revoke):
        assert f"(token {token_fingerprint(hash_token(token))})" in logged
        assert token not in logged


def test_revoking_every_token_of_a_participant_refuses_it_at_once(api: Api) -> None:
    assert api.get("supplier", "/v1/participants/me").status_code == 200
    revoked = revoke_tokens(api.services.engine, participant="Supplier One")
    assert {r.key_name for r in revoked} == {"supplier"}
    assert api.get("supplier", "/v1/participants/me").status_code == 401
    assert api.get("supplier2", "/v1/participants/me").status_code == 200


def test_no_token_passphrase_private_key_or_webhook_secret_in_any_log_error_or_response(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    from ledger.chain.keystore import Keystore

    caplog.set_level(logging.DEBUG)  # root: every logger, uvicorn's and the app's included
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "fastapi", "api", "ledger", "httpx"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    settings = api.services.settings
    seen: list[str] = []

    def keep(r: Any) -> Any:
        seen.append(f"{r.status_code} {dict(r.headers)} {r.text}")
        return r

    fresh = create_token(
        api.services.engine, participant="Supplier One", key_name="supplier", address=api.address("supplier")
    )
    ids = _setup(api)
    keep(api.post("bank", f"/v1/loans/{ids['loan']}/repayments?wait=true", {"amount": "1.00"}, key="k1"))
    keep(api.post("bank", f"/v1/loans/{ids['loan']}/repayments?wait=true", {"amount": "1.00"}, key="k1"))
    keep(api.http.get("/v1/participants/me", headers={"Authorization": f"Bearer {fresh}"}))
    keep(api.post("supplier", "/v1/loans", {"principal": -1}))  # 422
    keep(
        api.post(
            "borrower",
            f"/v1/loans/{ids['loan']}/disbursements",
            {"payee": api.address("supplier"), "amount": "0.01", "purpose": 1},
        )
    )
    keep(api.http.get("/v1/loans", headers={"Authorization": f"Bearer {api.tokens['bank']}x"}))  # 401
    keep(
        api.post(
            "supplier",
            "/v1/payments",
            {
                "loan": ids["loan"],
                "from_lot": ids["supplier_lot"],
                "payee": api.address("subsupplier"),
                "amount": "99999999.00",
                "purpose": 1,
            },
        )
    )
    # A wrong keystore passphrase: the write fails without echoing what was tried or the real one.
    real = api.services.keystore
    wrong = "wrong-passphrase-" + "Z" * 12
    api.services.keystore = Keystore(real.directory, wrong, scrypt_n=1024)
    try:
        keep(api.post("bank2", f"/v1/loans/{ids['loan']}/repayments", {"amount": "1.00"}))
    finally:
        api.services.keystore = real
    assert any(s.startswith("500 ") or s.startswith("503 ") for s in seen[-1:]), seen[-1]

    secrets = {"passphrase": settings.passphrase(), "wrong passphrase": wrong, "fresh token": fresh}
    assert settings.webhook_secret is not None
    secrets["webhook secret"] = settings.webhook_secret.get_secret_value()
    for who, token in api.tokens.items():
        secrets[f"token of {who}"] = token
        secrets[f"token body of {who}"] = token.removeprefix("ff_")
    for who, account in api.accounts.items():
        key = account.key.hex()
        secrets[f"key of {who}"] = key.removeprefix("0x")
    logs = "\n".join(f"{r.name} {r.levelname} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert "refused" in logs and len(caplog.records) > 10  # the capture did see the run
    haystack = logs + "\n".join(seen)
    leaked = [what for what, value in secrets.items() if value and value in haystack]
    assert leaked == []
