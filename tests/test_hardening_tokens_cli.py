"""`fundflow tokens create --expires-days` and `fundflow tokens revoke`: the token stops working at once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from eth_account import Account
from typer.testing import CliRunner

from ledger.chain.participants import Directory, Participant
from ledger.config import get_settings
from ledger.store.db import create_db_engine
from ledger.store.offchain import find_token, hash_token, token_fingerprint

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("FUNDFLOW_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    Directory(tmp_path / "participants.json").put(
        Participant(
            name="Bank A",
            role="lender",
            org_id="0x" + "11" * 32,
            profile_salt="00",
            accounts={"bank-a": Account.create().address},
        )
    )
    yield tmp_path
    get_settings.cache_clear()


def _fundflow(*args: str) -> tuple[int, str, str]:
    from fundflow.cli.main import app

    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_tokens_create_with_expiry_then_revoke_by_fingerprint(env: Path) -> None:
    code, out, err = _fundflow("tokens", "create", "Bank A", "--expires-days", "2")
    assert code == 0, err
    token = out.strip()
    fingerprint = token_fingerprint(hash_token(token))
    assert f"token {fingerprint} for Bank A" in err and "expires" in err
    engine = create_db_engine(get_settings().database_url)
    row = find_token(engine, token)
    assert row is not None and row.expires_at is not None
    assert (row.expires_at.replace(tzinfo=UTC) - datetime.now(UTC)).days == 1

    code, _, err = _fundflow("tokens", "revoke", fingerprint)
    assert code == 0, err
    assert f"revoked token {fingerprint} of Bank A (bank-a)" in err
    assert find_token(engine, token) is None
    assert token not in err

    code, _, err = _fundflow("tokens", "revoke", fingerprint)
    assert code != 0 and "no active token matches" in err
    engine.dispose()


def test_tokens_revoke_refuses_a_too_short_fingerprint(env: Path) -> None:
    code, _, err = _fundflow("tokens", "revoke", "abc")
    assert code != 0 and "too short" in err
