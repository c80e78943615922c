"""The Fundflow error tree.

Every error the product raises on purpose derives from `FundflowError` and carries a `hint`: what the
user should do about it. The API maps the tree to HTTP status codes in one place; the CLI prints the
message and the hint.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

__all__ = [
    "AttestationRefusedError",
    "AuthenticationError",
    "StorageError",
    "ChainError",
    "ChainMismatchError",
    "CompilerError",
    "ConfigError",
    "ConflictError",
    "ContractRevertError",
    "DeploymentError",
    "FundflowError",
    "IndexerError",
    "IndexerLockedError",
    "MirrorIntegrityError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "ReorgTooDeepError",
    "ValidationError",
    "VerificationError",
    "BundleError",
]


class FundflowError(Exception):
    """Root of every error Fundflow raises on purpose.

    `str(error)` is the message alone; show `hint` next to it (the CLI and the API both do).
    """

    default_hint: ClassVar[str | None] = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint


class ConfigError(FundflowError):
    """A setting is missing, malformed or unsafe for the environment."""

    default_hint = "Check the FUNDFLOW_* environment variables and the .env file."


class ChainError(FundflowError):
    """The chain node is unreachable, timed out, or answered something unusable."""

    default_hint = "Check that the node at FUNDFLOW_RPC_URL is running and reachable."


class ChainMismatchError(ChainError):
    """The node is reachable but is not the chain (or deployment) we were configured for."""

    default_hint = "Point FUNDFLOW_RPC_URL at the right chain, or redeploy and update the deployment file."


def _format_arg(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    return str(value)


class ContractRevertError(FundflowError):
    """A transaction or call reverted; the custom error's name and arguments are decoded.

    Unless `message` is given it is `Name(arg=value, ...)` with bytes as 0x-hex, e.g.
    `LedgerInsufficientFunds(lotId=0x..., remaining=5, requested=9)`.
    """

    default_hint = "The contract refused the change; the error name and arguments say why."

    def __init__(
        self,
        error_name: str,
        args_by_name: Mapping[str, Any] | None = None,
        *,
        selector: str = "",
        message: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.error_name = error_name
        self.args_by_name: dict[str, Any] = dict(args_by_name or {})
        self.selector = selector
        rendered = ", ".join(f"{name}={_format_arg(value)}" for name, value in self.args_by_name.items())
        super().__init__(message or f"{error_name}({rendered})", hint=hint)


class NotFoundError(FundflowError):
    """The requested loan, lot, participant or record does not exist."""

    default_hint = "Check the identifier; the mirror may also still be catching up with the chain."


class PermissionDeniedError(FundflowError):
    """The caller lacks the role or ownership the action needs."""

    default_hint = "Ask the operator to grant the needed role, or act as the lot's holder or lender."


class ValidationError(FundflowError):
    """Input is malformed or breaks a rule that is checked before anything is sent."""

    default_hint = "Correct the input and try again."


class AuthenticationError(FundflowError):
    """The request carries no API token, or one that is unknown or revoked."""

    default_hint = (
        "Send `Authorization: Bearer <token>`; the operator creates tokens with `fundflow tokens create`."
    )


class PayloadTooLargeError(ValidationError):
    """An upload is larger than the configured limit."""

    default_hint = "Upload a smaller file, or raise FUNDFLOW_DOCUMENT_MAX_BYTES."


class StorageError(FundflowError):
    """Off-chain storage (the document store) cannot save: disk full, read-only, missing directory."""

    default_hint = (
        "Nothing was stored. Retry later; if it persists, tell the operator (free space, permissions)."
    )


class ConflictError(FundflowError):
    """The request conflicts with one already made (an Idempotency-Key reused with another body, a loan
    number already taken, a request with the same key still in progress)."""

    default_hint = "Use a new Idempotency-Key for a new request, or resend exactly the original request."


class CompilerError(FundflowError):
    """Solidity compilation failed; the message lists solc's errors as file:line: message."""

    default_hint = "Fix the Solidity errors above; run `npm ci` if the compiler or imports are missing."


class DeploymentError(FundflowError):
    """Deploying the contracts failed or the deployment file is unusable."""

    default_hint = "Check the node and the operator key, then deploy again."


class IndexerError(FundflowError):
    """The indexer cannot go on safely: the mirror stops where it is rather than guess."""

    default_hint = "Read the message; the mirror keeps what it had and resumes once the cause is fixed."


class ReorgTooDeepError(IndexerError):
    """The chain reorganised deeper than the indexer is allowed to undo."""

    default_hint = (
        "Check the node (a fork or a restarted dev chain?). If the reorg is real, raise "
        "FUNDFLOW_MAX_REORG_DEPTH or rebuild the mirror into an empty database."
    )


class MirrorIntegrityError(IndexerError):
    """The events no longer add up (a loan's hash chain breaks, a lot overspends): the mirror is untrusted."""

    default_hint = (
        "Do not trust the mirror past its checkpoint; check the node and the deployment, then rebuild the "
        "mirror into an empty database."
    )


class IndexerLockedError(IndexerError):
    """Another indexer process already writes this database."""

    default_hint = "Only one indexer may write a database; stop the other one or wait for it to exit."


class VerificationError(FundflowError):
    """A trail could not be verified at all (verified and found wrong is a result, not an error)."""

    default_hint = "Check the loan id, that the mirror is indexed and that the node is the deployment chain."


class AttestationRefusedError(VerificationError):
    """An auditor asked to attest a trail that failed verification or grew after the block verified at."""

    default_hint = "Verify the trail again (`fundflow verify`); attest only a head that verifies."


class BundleError(VerificationError):
    """A proof bundle is malformed or does not prove what it claims; the message says where in the file."""

    default_hint = (
        "Do not trust this bundle: ask its producer for a fresh one (`fundflow bundle`), or verify the trail "
        "online with `fundflow verify`."
    )
