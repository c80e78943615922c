// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title Fund-flow ledger for post-loan management (贷后管理)
/// @notice A lender records each loan, each disbursement and the use it was declared for. Every later payment
/// out of that money is recorded as a child "lot" of the lot it spends, so each loan grows a tree of lots that
/// no single party can rewrite. Payees confirm or dispute what they received.
///
/// Units: every amount is an integer in the loan currency's minor unit (fen, cents) and must fit in a uint64.
/// Purposes: a purpose code is a uint8 in [0, 31]; a loan's allowed purposes are a uint32 bit set
/// (bit `p` set = purpose `p` allowed). A payment outside the set is recorded and flagged (`declaredUse`
/// false), never reverted: it happened, and hiding it would defeat monitoring.
///
/// Hash chain: every change to a loan extends that loan's chain, and the new head is public state
/// (`headOf`) and travels in the event, so one `eth_call` checks a whole mirrored trail:
///
///     head = keccak256(abi.encode(previousHead, uint8(kind), field1, field2, ...))
///
/// where `previousHead` is bytes32(0) for `LoanOpened`, `kind` is the event's {EventKind} value and the
/// fields are the event's fields in declaration order (indexed ones included, each ABI-encoded as its
/// declared Solidity type), leaving out `head` itself and, for the two events that create a lot
/// (`Disbursed`, `Paid`), leaving out `lotId`: a new lot's id IS the head its creation produced. That makes
/// lot ids unique, unguessable before the fact, and free (no counter in storage). `TrailAttested` is a
/// statement about the chain, not a change to the loan: it does not extend it.
///
/// Closing a loan (repaid or written off) stops disbursements, repayments, classification and restructuring,
/// but not payments out of lots, confirmations, disputes, collateral valuations or inspections: money already
/// paid out keeps moving and recovery work goes on, and the trail must keep recording both.
///
/// Roles (OpenZeppelin AccessControl): OPERATOR_ROLE registers organisations and grants the three business
/// roles; LENDER_ROLE opens and services loans for its organisation; ENTERPRISE_ROLE spends lots it holds and
/// confirms what it received; AUDITOR_ROLE attests trails. A loan belongs to the lender's organisation, so
/// any account of that bank holding LENDER_ROLE can service it.
interface IFundFlowLedger {
    /// @notice The kind tag mixed into each hash-chain step, so two kinds of change never hash alike.
    enum EventKind {
        None,
        LoanOpened,
        Disbursed,
        Paid,
        LotConfirmed,
        LotDisputed,
        Repaid,
        LoanClosed,
        RiskClassified,
        CollateralValued,
        InspectionRecorded,
        LoanRestructured
    }

    /// @notice Loan status. A loan is opened `Open`; its lender closes it as `Repaid` (nothing outstanding)
    /// or `WrittenOff`.
    enum LoanStatus {
        None,
        Open,
        Repaid,
        WrittenOff
    }

    /// @notice The five-category loan classification (五级分类).
    enum RiskClass {
        Normal, // 正常
        SpecialMention, // 关注
        Substandard, // 次级
        Doubtful, // 可疑
        Loss // 损失
    }

    /// @notice One entry of {payBatch}.
    struct Payment {
        bytes32 fromLot;
        address payee;
        uint256 amount;
        uint8 purpose;
        bytes32 evidenceHash;
    }

    /// @notice The state a loan keeps on chain. Everything else about it lives in its events.
    struct LoanView {
        bytes32 lenderOrg;
        address borrower;
        bytes32 borrowerRef;
        uint64 principal;
        uint64 disbursed;
        uint64 repaid;
        uint32 allowedPurposes;
        uint40 maturity;
        bytes3 currency;
        LoanStatus status;
        RiskClass riskClass;
        bytes32 termsHash;
        bytes32 head;
    }

    // ---------------------------------------------------------------- participants

    event OrganizationRegistered(bytes32 indexed orgId, bytes32 profileHash);
    event AccountAdded(bytes32 indexed orgId, address indexed account);
    event AccountRemoved(bytes32 indexed orgId, address indexed account);

    // ---------------------------------------------------------------- loan events (each extends the chain)

    event LoanOpened(
        bytes32 indexed loanId,
        bytes32 indexed lenderOrg,
        address indexed borrower,
        bytes32 borrowerRef,
        uint256 principal,
        bytes3 currency,
        uint32 allowedPurposes,
        uint40 maturity,
        bytes32 termsHash,
        bytes32 head
    );

    /// @notice The lender paid `amount` of the principal into a new lot held by `payee`. `entrusted` is true
    /// when the payee is not the borrower (受托支付, paid straight to the supplier). The new head is `lotId`.
    event Disbursed(
        bytes32 indexed loanId,
        bytes32 indexed lotId,
        address indexed payee,
        uint256 amount,
        uint8 purpose,
        bool declaredUse,
        bool entrusted,
        bytes32 evidenceHash
    );

    /// @notice `amount` of lot `parentLotId` was paid to `payee` as the new lot `lotId` (which is the new head).
    event Paid(
        bytes32 indexed loanId,
        bytes32 indexed lotId,
        address indexed payee,
        bytes32 parentLotId,
        uint256 amount,
        uint8 purpose,
        bool declaredUse,
        bytes32 evidenceHash
    );

    /// @notice The payee confirmed it received lot `lotId` (确权). The latest confirmation or dispute stands.
    event LotConfirmed(bytes32 indexed loanId, bytes32 indexed lotId, bytes32 evidenceHash, bytes32 head);

    /// @notice The payee disputed lot `lotId`. A later confirmation withdraws the dispute.
    event LotDisputed(bytes32 indexed loanId, bytes32 indexed lotId, bytes32 reasonHash, bytes32 head);

    event Repaid(bytes32 indexed loanId, uint256 amount, uint256 outstanding, bytes32 evidenceHash, bytes32 head);

    event LoanClosed(bytes32 indexed loanId, LoanStatus status, bytes32 reasonHash, bytes32 head);

    event RiskClassified(bytes32 indexed loanId, RiskClass riskClass, bytes32 reasonHash, bytes32 head);

    event CollateralValued(
        bytes32 indexed loanId,
        bytes32 indexed collateralId,
        uint256 value,
        bytes32 evidenceHash,
        bytes32 head
    );

    /// @notice A post-loan inspection: `kind` 0 = site visit, 1 = document review, 2 = interview; the report
    /// itself stays off chain.
    event InspectionRecorded(bytes32 indexed loanId, uint8 kind, bytes32 reportHash, bytes32 head);

    event LoanRestructured(bytes32 indexed loanId, uint40 maturity, bytes32 termsHash, bytes32 head);

    /// @notice An auditor verified the loan's trail up to `head` (the head at the time of attesting).
    event TrailAttested(bytes32 indexed loanId, bytes32 indexed auditorOrg, bytes32 head, bytes32 reportHash);

    // ---------------------------------------------------------------- errors

    error LedgerZeroId();
    error LedgerZeroAddress();
    error LedgerZeroAmount();
    error LedgerAmountTooLarge(uint256 amount, uint256 max);
    error LedgerInvalidPurpose(uint8 purpose);
    error LedgerEmptyPurposeSet();
    error LedgerInvalidCurrency(bytes3 currency);
    error LedgerMaturityInPast(uint40 maturity, uint256 nowTimestamp);
    error LedgerInvalidRiskClass(uint8 riskClass);
    error LedgerInvalidInspectionKind(uint8 kind);
    error LedgerInvalidClosingStatus(uint8 status);
    error LedgerEmptyBatch();
    error LedgerBatchTooLarge(uint256 size, uint256 max);

    error LedgerOrganizationExists(bytes32 orgId);
    error LedgerOrganizationNotFound(bytes32 orgId);
    error LedgerAccountAlreadyRegistered(address account, bytes32 orgId);
    error LedgerAccountNotRegistered(address account);

    error LedgerLoanExists(bytes32 loanId);
    error LedgerLoanNotFound(bytes32 loanId);
    error LedgerLoanNotOpen(bytes32 loanId, LoanStatus status);
    error LedgerNotLoanLender(bytes32 loanId, address account);
    error LedgerPrincipalExceeded(bytes32 loanId, uint256 undisbursed, uint256 requested);
    error LedgerRepaymentExceedsOutstanding(bytes32 loanId, uint256 outstanding, uint256 requested);
    error LedgerLoanOutstanding(bytes32 loanId, uint256 outstanding);

    error LedgerLotNotFound(bytes32 loanId, bytes32 lotId);
    error LedgerInsufficientFunds(bytes32 lotId, uint256 remaining, uint256 requested);
    error LedgerNotLotSpender(bytes32 lotId, address account);
    error LedgerNotLotPayee(bytes32 lotId, address account);
    error LedgerStaleHead(bytes32 loanId, bytes32 currentHead, bytes32 attestedHead);

    // ---------------------------------------------------------------- participants

    /// @notice Operator: register an organisation. `profileHash` commits to its off-chain profile.
    function registerOrganization(bytes32 orgId, bytes32 profileHash) external;

    /// @notice Operator: attach an account (signing address) to a registered organisation.
    function addAccount(bytes32 orgId, address account) external;

    /// @notice Operator: detach an account and revoke its business roles at once. Works while paused, so a
    /// compromised key can always be cut off.
    function removeAccount(address account) external;

    /// @notice Operator: freeze every ledger write (reads, role revocation and account removal still work).
    function pause() external;

    function unpause() external;

    // ---------------------------------------------------------------- loans

    /// @notice Lender: open a loan for its organisation. `borrowerRef` is a salted hash (no personal data);
    /// `borrower` is the borrower's account, used to tell entrusted from self-paid disbursements.
    function openLoan(
        bytes32 loanId,
        address borrower,
        bytes32 borrowerRef,
        uint256 principal,
        bytes3 currency,
        uint32 allowedPurposes,
        uint40 maturity,
        bytes32 termsHash
    ) external returns (bytes32 head);

    /// @notice Lender: pay part of the principal into a new lot held by `payee`.
    function disburse(
        bytes32 loanId,
        address payee,
        uint256 amount,
        uint8 purpose,
        bytes32 evidenceHash
    ) external returns (bytes32 lotId);

    /// @notice Lot holder (ENTERPRISE_ROLE) or the servicing lender: pay part of a lot to `payee` as a child lot.
    function pay(
        bytes32 loanId,
        bytes32 fromLot,
        address payee,
        uint256 amount,
        uint8 purpose,
        bytes32 evidenceHash
    ) external returns (bytes32 lotId);

    /// @notice {pay} for many payments of one loan in one transaction; all or nothing.
    function payBatch(bytes32 loanId, Payment[] calldata payments) external returns (bytes32[] memory lotIds);

    /// @notice Payee of the lot (holding ENTERPRISE_ROLE): confirm receipt.
    function confirmLot(bytes32 loanId, bytes32 lotId, bytes32 evidenceHash) external;

    /// @notice Payee of the lot (holding ENTERPRISE_ROLE): dispute it.
    function disputeLot(bytes32 loanId, bytes32 lotId, bytes32 reasonHash) external;

    /// @notice Lender: record a principal repayment; it may not exceed what is outstanding.
    function repay(bytes32 loanId, uint256 amount, bytes32 evidenceHash) external;

    /// @notice Lender: close the loan as `Repaid` (requires nothing outstanding) or `WrittenOff`. `status` is a
    /// {LoanStatus} value, taken as uint8 so a bad value gets {LedgerInvalidClosingStatus}, not a bare revert.
    function closeLoan(bytes32 loanId, uint8 status, bytes32 reasonHash) external;

    /// @notice Lender: set the five-category risk class ({RiskClass} value as uint8), with the hash of the
    /// written reason.
    function classify(bytes32 loanId, uint8 riskClass, bytes32 reasonHash) external;

    /// @notice Lender: record a collateral valuation.
    function valueCollateral(bytes32 loanId, bytes32 collateralId, uint256 value, bytes32 evidenceHash) external;

    /// @notice Lender: record a post-loan inspection.
    function recordInspection(bytes32 loanId, uint8 kind, bytes32 reportHash) external;

    /// @notice Lender: record a restructuring agreed with the borrower: new maturity and terms.
    function restructure(bytes32 loanId, uint40 maturity, bytes32 termsHash) external;

    /// @notice Auditor: attest that it verified the loan's trail up to `head`, which must be the current head.
    function attest(bytes32 loanId, bytes32 head, bytes32 reportHash) external;

    // ---------------------------------------------------------------- reads

    function headOf(bytes32 loanId) external view returns (bytes32);

    function getLoan(bytes32 loanId) external view returns (LoanView memory);

    /// @notice A lot's holder (its payee), what remains of it, and the purposes its loan allows.
    function getLot(
        bytes32 loanId,
        bytes32 lotId
    ) external view returns (address holder, uint64 remaining, uint32 allowedPurposes);

    function organizationOf(address account) external view returns (bytes32 orgId);

    function organizationExists(bytes32 orgId) external view returns (bool);
}
