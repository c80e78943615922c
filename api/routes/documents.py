"""Evidence documents (invoices, contracts, delivery notes): stored off chain under their keccak256 hash,
which is what goes on chain; downloadable, and verifiable later against the events that recorded the hash.

Upload the raw bytes as the request body (any Content-Type); the optional `X-Filename` header names it.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import Response

from api.deps import ParticipantDep, ServicesDep, SessionDep
from api.errors import ERROR_RESPONSES
from api.services import documents as documents_service
from ledger.errors import PayloadTooLargeError

__all__ = ["router"]

router = APIRouter(
    prefix="/v1/documents",
    tags=["documents"],
    responses={k: ERROR_RESPONSES[k] for k in (401, 404, 422, 503)},
)

_DOC = {
    "hash": "0x9c22ff5f21f0b81b113e63f7db6da94fedef11b2119b4088b89664fb9a3cb658",
    "size": 48213,
    "media_type": "application/pdf",
    "filename": "invoice-2026-0042.pdf",
}


@router.post(
    "",
    status_code=201,
    summary="Upload an evidence document; answers with its keccak256 hash to put on chain",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
    responses={201: {"content": {"application/json": {"example": _DOC}}}, 413: {"description": "Too large"}},
)
async def upload(
    request: Request,
    caller: ParticipantDep,
    services: ServicesDep,
    x_filename: Annotated[str | None, Header(max_length=255)] = None,
) -> dict[str, Any]:
    limit = services.settings.document_max_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"The document is {int(declared):,} bytes; the limit is {limit:,} bytes.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"The document is larger than the limit of {limit:,} bytes.")
        chunks.append(chunk)
    media_type = request.headers.get("content-type", "application/octet-stream")
    return documents_service.store(services, caller, b"".join(chunks), media_type, x_filename)


@router.get(
    "/{digest}", summary="Download a document", responses={200: {"content": {"application/octet-stream": {}}}}
)
def download(digest: str, caller: ParticipantDep, session: SessionDep, services: ServicesDep) -> Response:
    file = documents_service.download(session, services, caller, digest)
    return Response(file.data, media_type=file.media_type, headers=file.headers())


_VERIFY = {
    "hash": _DOC["hash"],
    "stored": True,
    "content_matches": True,
    "recorded": [
        {"event": "Paid", "loan_id": "0x2b…", "block_number": 31, "tx_hash": "0x8a…", "on_chain": True}
    ],
    "verified": True,
}


@router.get(
    "/{digest}/verify",
    summary="Re-hash the stored bytes and check the hash against the chain",
    responses={200: {"content": {"application/json": {"example": _VERIFY}}}},
)
def verify(digest: str, caller: ParticipantDep, session: SessionDep, services: ServicesDep) -> dict[str, Any]:
    return documents_service.verify(session, services, caller, digest)
