"""Faults: the database unavailable or read-only, the document store full or unusable. Each answers 503 with
Retry-After and a body naming the problem, and leaves nothing half-recorded."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from api_support import Api

from ledger.store.db import create_db_engine, sqlite_path

pytestmark = pytest.mark.slow


def test_database_unreachable_is_503_with_retry_after_and_nothing_is_sent(api: Api) -> None:
    loan = api.open_loan()["loan_id"]
    before = api.world.ledger.get_loan(loan)
    working = api.services.engine
    api.services.engine = create_db_engine("postgresql+psycopg://fundflow@127.0.0.1:1/none")
    try:
        body = {"payee": api.address("supplier"), "amount": "0.01", "purpose": 1}
        r = api.post("bank", f"/v1/loans/{loan}/disbursements", body, key="db-down")
        assert r.status_code == 503
        assert r.headers["Retry-After"] == "5"
        assert r.json() == {
            "error": "DatabaseUnavailable",
            "message": "The database cannot be reached.",
            "hint": "Retry in a few seconds.",
        }
        assert api.get("bank", "/v1/loans").status_code == 503
    finally:
        api.services.engine.dispose()
        api.services.engine = working
    assert api.world.ledger.get_loan(loan) == before  # nothing reached the chain


def test_read_only_database_refuses_an_idempotent_write_before_anything_is_sent(api: Api) -> None:
    loan = api.open_loan()["loan_id"]
    before = api.world.ledger.get_loan(loan)
    path = sqlite_path(api.services.engine.url)
    assert path is not None
    working = api.services.engine
    api.services.engine = sa.create_engine(f"sqlite:///file:{path}?mode=ro&uri=true")
    try:
        body = {"payee": api.address("supplier"), "amount": "0.01", "purpose": 1}
        r = api.post("bank", f"/v1/loans/{loan}/disbursements", body, key="db-ro")
        assert r.status_code == 503, r.text
        assert r.headers["Retry-After"] == "5" and r.json()["error"] == "DatabaseUnavailable"
        assert api.get("bank", f"/v1/loans/{loan}").status_code == 200  # reads still work
    finally:
        api.services.engine.dispose()
        api.services.engine = working
    assert api.world.ledger.get_loan(loan) == before
    with working.connect() as conn:
        assert (
            conn.execute(sa.text("select count(*) from idempotency_keys where key = 'db-ro'")).scalar() == 0
        )
    # the same key works once the database is back
    r = api.post("bank", f"/v1/loans/{loan}/disbursements", body, key="db-ro")
    assert r.status_code == 201, r.text


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs: a real ENOSPC. Needs root (these machines run tests as root)."""
    mount = tmp_path / "full"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs here ({done.stderr.decode().strip()}); the not-a-directory case still runs"
        )
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def _upload(api: Api, data: bytes) -> object:
    return api.http.post(
        "/v1/documents", content=data, headers=api.auth("supplier") | {"Content-Type": "application/pdf"}
    )


def test_disk_full_upload_fails_cleanly_with_no_partial_file_and_no_row(api: Api, full_disk: Path) -> None:
    api.services.settings.documents_dir = full_disk / "documents"
    (full_disk / "filler").write_bytes(b"\0" * (40 * 1024))
    r = _upload(api, os.urandom(48 * 1024))  # fits the upload limit, not the disk
    assert r.status_code == 503, r.text  # type: ignore[attr-defined]
    assert r.headers["Retry-After"] == "5"  # type: ignore[attr-defined]
    assert r.json() == {  # type: ignore[attr-defined]
        "error": "Storage",
        "message": "The document store cannot save the file (No space left on device).",
        "hint": "Nothing was stored. Retry later; if it persists, tell the operator "
        "(free space, permissions).",
    }
    assert os.listdir(full_disk / "documents") == []
    with api.services.engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from documents")).scalar() == 0
    (full_disk / "filler").unlink()
    assert _upload(api, b"small").status_code == 201  # type: ignore[attr-defined]


def test_document_store_that_is_not_a_directory_fails_cleanly(api: Api, tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the directory should be")
    api.services.settings.documents_dir = blocker / "documents"
    r = _upload(api, b"evidence")
    assert r.status_code == 503  # type: ignore[attr-defined]
    assert r.json()["message"] == "The document store cannot save the file (Not a directory)."  # type: ignore[attr-defined]
    with api.services.engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from documents")).scalar() == 0


def test_node_replaced_by_a_fresh_chain_indexer_refuses_and_health_reports_it(api: Api) -> None:
    from ledger.chain.client import ChainClient
    from ledger.chain.localchain import LocalChain
    from ledger.errors import ChainMismatchError
    from ledger.mirror.indexer import Indexer

    api.open_loan()
    assert api.http.get("/v1/health").json()["chain"]["mismatch"] is False
    original = api.services.client
    with LocalChain() as fresh:
        fresh_client = ChainClient(fresh.url)
        assert fresh_client.get_header(0).hash != original.get_header(0).hash
        api.services.client = fresh_client
        try:
            health = api.http.get("/v1/health").json()
            assert health["status"] == "degraded"
            assert health["chain"]["mismatch"] is True
            assert health["chain"]["error"].startswith("ChainMismatch: the node is chain 31337 with genesis ")
            assert "the indexer refuses to mix them" in health["chain"]["error"]
            # The indexer, restarted against the new chain, refuses to open the mirror.
            api.indexer.stop()
            try:
                with pytest.raises(
                    ChainMismatchError, match="this database mirrors chain 31337 with genesis"
                ):
                    Indexer(api.services.engine, fresh_client, api.world.deployment).open(wait=False)
            finally:
                api.indexer.indexer.open()  # hold the lock again: the fixture's teardown releases it
            loans_before = api.get("bank", "/v1/loans").json()["total"]
        finally:
            api.services.client = original
    assert loans_before == 1
    assert api.http.get("/v1/health").json()["status"] == "ok"
