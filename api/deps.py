"""Dependencies of the routes, as `Annotated` aliases: `SessionDep`, `ParticipantDep`, `LedgerDep`.

Those that neither block nor touch the database are `async def`: FastAPI runs a plain `def` dependency in
the thread pool, a hop that costs more than they do."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated

from eth_account.signers.local import LocalAccount
from fastapi import Depends, Header, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session

from api.guards import admit_participant
from api.services import Services
from ledger.chain.contract import LedgerContract
from ledger.chain.participants import THIRD_PARTY_ROLES
from ledger.errors import AuthenticationError, PermissionDeniedError
from ledger.mirror.read import Mirror
from ledger.store.offchain import ApiToken, find_token

__all__ = [
    "AlertId",
    "Caller",
    "IdempotencyKeyDep",
    "Offset",
    "LedgerDep",
    "ParticipantDep",
    "ServicesDep",
    "SessionDep",
    "WaitDep",
    "caller_for_token",
]


async def get_services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


ServicesDep = Annotated[Services, Depends(get_services)]


def get_session(services: ServicesDep) -> Iterator[Session]:
    with Session(services.engine) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


async def get_ledger(services: ServicesDep) -> LedgerContract:
    return services.ledger


LedgerDep = Annotated[LedgerContract, Depends(get_ledger)]


@dataclass
class Caller:
    """The authenticated participant account making the request."""

    name: str
    role: str  # lender, enterprise or auditor; or a third party: appraiser, law_firm, collection_agency
    org_id: str
    key_name: str
    address: str
    org_accounts: set[str] = field(default_factory=set)
    services: Services | None = field(default=None, repr=False)
    # a third party: the loans its organisation is engaged on in its role (from the mirrored chain records)
    engaged_loans: frozenset[str] = frozenset()

    def signer(self) -> LocalAccount:
        """The account's key, unlocked from the encrypted keystore (cached in memory by the keystore)."""
        assert self.services is not None
        return self.services.keystore.unlock(self.key_name)

    def require(self, *roles: str, action: str) -> None:
        if self.role not in roles:
            wanted = " or ".join(roles)
            raise PermissionDeniedError(
                f"Only {wanted}s can {action}; {self.name} is registered as {self.role}.",
                hint="Use a token of a participant with that role.",
            )


_bearer = HTTPBearer(auto_error=False, description="API token from `fundflow tokens create NAME`")


def get_caller(
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    if credentials is None or not credentials.credentials:
        raise AuthenticationError("This endpoint needs an API token.")
    token = find_token(services.engine, credentials.credentials)
    if token is None:
        raise AuthenticationError("The API token is unknown or has been revoked.")
    caller = caller_for_token(services, token)
    admit_participant(caller.name)  # keyed on who the token proved to be, not on the header as sent
    return caller


def caller_for_token(services: Services, token: ApiToken) -> Caller:
    """The caller an active token row stands for (the API's bearer tokens and the dashboard's sessions)."""
    participant = services.directory.get().find(token.participant)
    if participant is None or participant.accounts.get(token.key_name) != token.address:
        raise AuthenticationError(
            f"The token's account ({token.participant}/{token.key_name}) is no longer registered.",
            hint="Ask the operator for a new token.",
        )
    accounts = set(participant.accounts.values())
    engaged: set[str] = set()
    with services.engine.connect() as conn:
        accounts |= set(Mirror(conn).org_accounts(participant.org_id))
        if participant.role in THIRD_PARTY_ROLES:
            engaged = Mirror(conn).engaged_loans(participant.org_id, participant.role)
    return Caller(
        name=participant.name,
        role=participant.role,
        org_id=participant.org_id,
        key_name=token.key_name,
        address=token.address,
        org_accounts=accounts,
        services=services,
        engaged_loans=frozenset(engaged),
    )


ParticipantDep = Annotated[Caller, Depends(get_caller)]


async def get_idempotency_key(
    idempotency_key: Annotated[
        str | None,
        Header(
            max_length=255,
            description="Any unique string (a UUID). A retry with the same key and body returns the first "
            "answer without recording again; the same key with another body is refused (409).",
            examples=["5c0b2a4e-8d5e-4f0a-9a3c-2f1e0d9c8b7a"],
        ),
    ] = None,
) -> str | None:
    return idempotency_key


IdempotencyKeyDep = Annotated[str | None, Depends(get_idempotency_key)]


async def get_wait(
    wait: Annotated[
        bool, Query(description="Answer only once the indexer has mirrored the write (read your own writes).")
    ] = False,
    fundflow_wait: Annotated[bool, Header(description="Same as ?wait=true.")] = False,
) -> bool:
    return wait or fundflow_wait


WaitDep = Annotated[bool, Depends(get_wait)]


# SQL's OFFSET is a signed 64-bit integer: a larger one is a 422 here, not a driver overflow (a 500).
Offset = Annotated[int, Query(ge=0, le=2**63 - 1, description="rows to skip")]

# Row ids are signed 64-bit in SQL: a larger one is a 422, not a driver overflow.
AlertId = Annotated[int, Path(ge=1, le=2**63 - 1)]
