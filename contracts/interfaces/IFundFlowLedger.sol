// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @notice A loan's id, chosen by its lender at {IFundFlowLedger-openLoan}; never zero.
/// @dev The id types below are user-defined value types: the ABI sees plain `bytes32` (selectors, event topics
/// and encodings are those of `bytes32`), but Solidity refuses to pass a lot id where a loan id is expected.
type LoanId is bytes32;

/// @notice A lot's id: the hash-chain head its creation produced (see the hash-chain note below).
type LotId is bytes32;

/// @notice An organisation's id, chosen by the operator at {IFundFlowLedger-registerOrganization}; never zero.
type OrgId is bytes32;

using IdLib for LoanId global;
using IdLib for OrgId global;

/// @notice What the ledger needs to ask of an id, and nothing more: ids are compared, never computed with.
library IdLib {
    /// @notice True for the zero loan id, which no loan has.
    function isZero(LoanId id) internal pure returns (bool) {
        return LoanId.unwrap(id) == 0;
    }

    /// @notice True for the zero organisation id, which stands for "no organisation" (an unregistered account).
    function isZero(OrgId id) internal pure returns (bool) {
        return OrgId.unwrap(id) == 0;
    }

    /// @notice True when both ids name the same organisation.
    function equals(OrgId a, OrgId b) internal pure returns (bool) {
        return OrgId.unwrap(a) == OrgId.unwrap(b);
    }
}

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
/// declared Solidity type, an id type as the bytes32 it wraps), leaving out `head` itself and, for the two
/// events that create a lot (`Disbursed`, `Paid`), leaving out `lotId`: a new lot's id IS the head its
/// creation produced. That makes lot ids unique, unguessable before the fact, and free (no counter in
/// storage). `TrailAttested` is a statement about the chain, not a change to the loan: it does not extend it.
///
/// Answers: the payee answers a lot at most once per kind and only forward, so each answer is one event and
/// one step of the chain: unanswered -> confirmed, or unanswered -> disputed -> confirmed. A confirmation is
/// final (confirming or disputing again reverts with {LedgerLotAlreadyConfirmed}); a dispute can be
/// withdrawn only by confirming (disputing again reverts with {LedgerLotAlreadyDisputed}), because a payee
/// that disputed a short delivery and then received the rest must be able to say so.
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
    /// @notice The kind tag mixed into each hash-chain step, so two kinds of change never hash alike. New kinds
    /// are appended (RepaymentApplied and TermsChanged, loan servicing), so earlier kinds keep their values.
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
        LoanRestructured,
        RecordFiled,
        RepaymentApplied,
        TermsChanged
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
        LotId fromLot;
        address payee;
        uint256 amount;
        uint8 purpose;
        bytes32 evidenceHash;
    }

    /// @notice The state a loan keeps on chain. Everything else about it lives in its events.
    struct LoanView {
        OrgId lenderOrg;
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

    /// @notice Emitted when the operator registers an organisation
    /// @param orgId The new organisation's id
    /// @param profileHash Hash of the organisation's off-chain profile
    event OrganizationRegistered(OrgId indexed orgId, bytes32 profileHash);

    /// @notice Emitted when the operator attaches an account to an organisation
    /// @param orgId The organisation the account now acts for
    /// @param account The signing address attached
    event AccountAdded(OrgId indexed orgId, address indexed account);

    /// @notice Emitted when the operator detaches an account (its business roles are revoked with it)
    /// @param orgId The organisation the account acted for
    /// @param account The signing address detached
    event AccountRemoved(OrgId indexed orgId, address indexed account);

    // ---------------------------------------------------------------- loan events (each extends the chain)

    /// @notice Emitted when a lender opens a loan; the first step of the loan's hash chain
    /// @param loanId The loan's id
    /// @param lenderOrg The lender's organisation, which owns and services the loan
    /// @param borrower The borrower's account
    /// @param borrowerRef Salted hash identifying the borrower off chain (no personal data)
    /// @param principal The principal, in the currency's minor unit
    /// @param currency ISO 4217 code as three ASCII bytes (e.g. "CNY")
    /// @param allowedPurposes Bit set of the purpose codes the loan may be spent on
    /// @param maturity Maturity as a Unix timestamp (seconds)
    /// @param termsHash Hash of the loan's terms
    /// @param head The loan's head after this step
    event LoanOpened(
        LoanId indexed loanId,
        OrgId indexed lenderOrg,
        address indexed borrower,
        bytes32 borrowerRef,
        uint256 principal,
        bytes3 currency,
        uint32 allowedPurposes,
        uint40 maturity,
        bytes32 termsHash,
        bytes32 head
    );

    /// @notice Emitted when the lender pays `amount` of the principal into a new lot held by `payee`.
    /// `entrusted` is true when the payee is not the borrower (受托支付, paid straight to the supplier).
    /// The new head is `lotId`.
    /// @param loanId The loan disbursed
    /// @param lotId The new lot's id, which is also the loan's new head
    /// @param payee The account that holds the new lot
    /// @param amount The amount disbursed, in the currency's minor unit
    /// @param purpose The purpose code declared for the money
    /// @param declaredUse True when the loan allows `purpose`
    /// @param entrusted True when `payee` is not the borrower
    /// @param evidenceHash Hash of the supporting documents
    event Disbursed(
        LoanId indexed loanId,
        LotId indexed lotId,
        address indexed payee,
        uint256 amount,
        uint8 purpose,
        bool declaredUse,
        bool entrusted,
        bytes32 evidenceHash
    );

    /// @notice Emitted when `amount` of lot `parentLotId` is paid to `payee` as the new lot `lotId` (which is
    /// the new head)
    /// @param loanId The loan the money belongs to
    /// @param lotId The new lot's id, which is also the loan's new head
    /// @param payee The account that holds the new lot
    /// @param parentLotId The lot the money was paid out of
    /// @param amount The amount paid, in the currency's minor unit
    /// @param purpose The purpose code declared for the payment
    /// @param declaredUse True when the loan allows `purpose`
    /// @param evidenceHash Hash of the supporting documents
    event Paid(
        LoanId indexed loanId,
        LotId indexed lotId,
        address indexed payee,
        LotId parentLotId,
        uint256 amount,
        uint8 purpose,
        bool declaredUse,
        bytes32 evidenceHash
    );

    /// @notice Emitted when the payee confirms it received lot `lotId` (收款确认), at most once per lot: a
    /// confirmation is final and withdraws an earlier dispute.
    /// @param loanId The loan the lot belongs to
    /// @param lotId The lot confirmed
    /// @param evidenceHash Hash of the receipt or other evidence
    /// @param head The loan's head after this step
    event LotConfirmed(LoanId indexed loanId, LotId indexed lotId, bytes32 evidenceHash, bytes32 head);

    /// @notice Emitted when the payee disputes lot `lotId`, at most once per lot and only before it confirms
    /// it. A later confirmation withdraws the dispute.
    /// @param loanId The loan the lot belongs to
    /// @param lotId The lot disputed
    /// @param reasonHash Hash of the written reason
    /// @param head The loan's head after this step
    event LotDisputed(LoanId indexed loanId, LotId indexed lotId, bytes32 reasonHash, bytes32 head);

    /// @notice Emitted when the lender records a principal repayment
    /// @param loanId The loan repaid
    /// @param amount The amount repaid, in the currency's minor unit
    /// @param outstanding What remains outstanding after this repayment (disbursed minus repaid)
    /// @param evidenceHash Hash of the supporting documents
    /// @param head The loan's head after this step
    event Repaid(LoanId indexed loanId, uint256 amount, uint256 outstanding, bytes32 evidenceHash, bytes32 head);

    /// @notice Emitted when the lender closes a loan; nothing but payments out of its lots, confirmations,
    /// disputes, collateral valuations and inspections is recorded for it afterwards
    /// @param loanId The loan closed
    /// @param status How it was closed: `Repaid` or `WrittenOff`
    /// @param reasonHash Hash of the written reason
    /// @param head The loan's head after this step
    event LoanClosed(LoanId indexed loanId, LoanStatus status, bytes32 reasonHash, bytes32 head);

    /// @notice Emitted when the lender sets the loan's five-category risk class
    /// @param loanId The loan classified
    /// @param riskClass The new class
    /// @param reasonHash Hash of the written reason
    /// @param head The loan's head after this step
    event RiskClassified(LoanId indexed loanId, RiskClass riskClass, bytes32 reasonHash, bytes32 head);

    /// @notice Emitted when the lender records a valuation of a collateral item
    /// @param loanId The loan the collateral secures
    /// @param collateralId The lender's id for the collateral item
    /// @param value The valuation, in the loan currency's minor unit
    /// @param evidenceHash Hash of the valuation report
    /// @param head The loan's head after this step
    event CollateralValued(
        LoanId indexed loanId,
        bytes32 indexed collateralId,
        uint256 value,
        bytes32 evidenceHash,
        bytes32 head
    );

    /// @notice Emitted when the lender records a post-loan inspection; the report itself stays off chain
    /// @param loanId The loan inspected
    /// @param kind 0 = site visit, 1 = document review, 2 = interview
    /// @param reportHash Hash of the inspection report
    /// @param head The loan's head after this step
    event InspectionRecorded(LoanId indexed loanId, uint8 kind, bytes32 reportHash, bytes32 head);

    /// @notice Emitted when the lender records a restructuring agreed with the borrower
    /// @param loanId The loan restructured
    /// @param maturity The new maturity as a Unix timestamp (seconds)
    /// @param termsHash Hash of the new terms
    /// @param head The loan's head after this step
    event LoanRestructured(LoanId indexed loanId, uint40 maturity, bytes32 termsHash, bytes32 head);

    /// @notice Emitted when an auditor attests that it verified the loan's trail up to `head`; does not
    /// extend the chain
    /// @param loanId The loan whose trail was verified
    /// @param auditorOrg The auditor's organisation
    /// @param head The head verified (the loan's head at the time of attesting)
    /// @param reportHash Hash of the audit report
    event TrailAttested(LoanId indexed loanId, OrgId indexed auditorOrg, bytes32 head, bytes32 reportHash);

    // ---------------------------------------------------------------- the post-loan file (issue 19)

    /// @notice Emitted when the lender files a record in the loan's post-loan file (a guarantee given or
    /// released); the record's details stay off chain as canonical JSON whose keccak256 is `contentHash`
    /// @param loanId The loan the record belongs to
    /// @param recordKind 0 = guarantee given, 1 = guarantee released, 2 = recovery after write-off,
    /// 3 = asset-preservation case filed or updated (the latest record with its id is the case);
    /// 4, 5, 6 = an organisation (`recordId` = its org id) engaged on the loan as appraiser, law firm or
    /// collection agency, 7 = every engagement of that organisation on the loan ended, 8 = a collateral item
    /// registered or changed (status, haircut, release, substitution; the latest record with its id is the
    /// item), 9 = a collateral valuation signed by an engaged appraiser ({fileAppraisal} only)
    /// @param recordId The record's id, chosen by the lender (a later record with the same id supersedes it)
    /// @param contentHash keccak256 of the record's canonical JSON
    /// @param actor The account that filed it
    /// @param head The loan's head after this step
    event RecordFiled(
        LoanId indexed loanId,
        uint8 indexed recordKind,
        bytes32 indexed recordId,
        bytes32 contentHash,
        address actor,
        bytes32 head
    );

    /// @notice Thrown when a post-loan file record kind is not 0 to 8 ({fileRecord}; 9 is {fileAppraisal}'s)
    /// @param recordKind The value given
    error LedgerInvalidRecordKind(uint8 recordKind);

    /// @notice Thrown when an account signs a collateral valuation on a loan its organisation is not engaged
    /// on as appraiser
    /// @param loanId The loan
    /// @param account The caller
    error LedgerNotEngagedAppraiser(LoanId loanId, address account);

    /// @notice Lender: file a record in the loan's post-loan file (the loan need not be open: a guarantee
    /// is released after repayment). `recordId` and `contentHash` must be set.
    function fileRecord(LoanId loanId, uint8 recordKind, bytes32 recordId, bytes32 contentHash) external;

    /// @notice Appraiser: sign a collateral valuation (record kind 9, `recordId` = the collateral item id) on
    /// a loan the caller's organisation is engaged on as appraiser (record kind 4 filed by the lender).
    function fileAppraisal(LoanId loanId, bytes32 itemId, bytes32 contentHash) external;

    /// @notice The third-party roles `orgId` is engaged in on `loanId`: bit 0 appraiser, 1 law firm,
    /// 2 collection agency (0: none)
    function engagementOf(LoanId loanId, OrgId orgId) external view returns (uint8);

    // ---------------------------------------------------------------- errors: arguments

    /// @notice Thrown when an id that must be set (organisation, loan, borrower reference, collateral) is zero
    error LedgerZeroId();

    /// @notice Thrown when an address that must be set (admin, account, borrower, payee) is the zero address
    error LedgerZeroAddress();

    /// @notice Thrown when an amount that must be positive (principal, disbursement, payment, repayment) is zero
    error LedgerZeroAmount();

    /// @notice Thrown when an amount does not fit in a uint64
    /// @param amount The amount given
    /// @param max The largest amount accepted (type(uint64).max)
    error LedgerAmountTooLarge(uint256 amount, uint256 max);

    /// @notice Thrown when a purpose code is outside [0, 31]
    /// @param purpose The code given
    error LedgerInvalidPurpose(uint8 purpose);

    /// @notice Thrown when a loan is opened with no allowed purpose
    error LedgerEmptyPurposeSet();

    /// @notice Thrown when a loan is opened without a currency code
    /// @param currency The code given
    error LedgerInvalidCurrency(bytes3 currency);

    /// @notice Thrown when a maturity (at opening or restructuring) is not after the current block
    /// @param maturity The maturity given
    /// @param nowTimestamp The current block's timestamp
    error LedgerMaturityInPast(uint40 maturity, uint256 nowTimestamp);

    /// @notice Thrown when a risk class is not a {RiskClass} value
    /// @param riskClass The value given
    error LedgerInvalidRiskClass(uint8 riskClass);

    /// @notice Thrown when an inspection kind is not 0, 1 or 2
    /// @param kind The value given
    error LedgerInvalidInspectionKind(uint8 kind);

    /// @notice Thrown when a loan is closed with a status other than `Repaid` or `WrittenOff`
    /// @param status The value given
    error LedgerInvalidClosingStatus(uint8 status);

    /// @notice Thrown when {payBatch} is called with no payments
    error LedgerEmptyBatch();

    /// @notice Thrown when {payBatch} is called with more payments than it accepts
    /// @param size The number of payments given
    /// @param max The most payments one batch accepts
    error LedgerBatchTooLarge(uint256 size, uint256 max);

    // ---------------------------------------------------------------- errors: participants

    /// @notice Thrown when an organisation id is registered twice
    /// @param orgId The id already registered
    error LedgerOrganizationExists(OrgId orgId);

    /// @notice Thrown when an account is attached to an organisation that is not registered
    /// @param orgId The unknown id
    error LedgerOrganizationNotFound(OrgId orgId);

    /// @notice Thrown when an account that already acts for an organisation is attached again
    /// @param account The account
    /// @param orgId The organisation it already acts for
    error LedgerAccountAlreadyRegistered(address account, OrgId orgId);

    /// @notice Thrown when an account that acts for no organisation is removed or granted a business role
    /// @param account The account
    error LedgerAccountNotRegistered(address account);

    // ---------------------------------------------------------------- errors: loans

    /// @notice Thrown when a loan is opened with an id already in use
    /// @param loanId The id in use
    error LedgerLoanExists(LoanId loanId);

    /// @notice Thrown when a loan id names no loan
    /// @param loanId The unknown id
    error LedgerLoanNotFound(LoanId loanId);

    /// @notice Thrown when a change that needs an open loan (disburse, repay, close, classify, restructure) is
    /// made to a closed one
    /// @param loanId The loan
    /// @param status Its status
    error LedgerLoanNotOpen(LoanId loanId, LoanStatus status);

    /// @notice Thrown when a lender services a loan that belongs to another organisation
    /// @param loanId The loan
    /// @param account The caller
    error LedgerNotLoanLender(LoanId loanId, address account);

    /// @notice Thrown when a disbursement exceeds what is left of the principal
    /// @param loanId The loan
    /// @param undisbursed What is left to disburse
    /// @param requested The amount asked for
    error LedgerPrincipalExceeded(LoanId loanId, uint256 undisbursed, uint256 requested);

    /// @notice Thrown when a repayment exceeds what is outstanding
    /// @param loanId The loan
    /// @param outstanding What is outstanding (disbursed minus repaid)
    /// @param requested The amount asked for
    error LedgerRepaymentExceedsOutstanding(LoanId loanId, uint256 outstanding, uint256 requested);

    /// @notice Thrown when a loan is closed as `Repaid` while something is still outstanding
    /// @param loanId The loan
    /// @param outstanding What is outstanding
    error LedgerLoanOutstanding(LoanId loanId, uint256 outstanding);

    // ---------------------------------------------------------------- errors: lots

    /// @notice Thrown when a lot id names no lot of the loan
    /// @param loanId The loan
    /// @param lotId The unknown lot id
    error LedgerLotNotFound(LoanId loanId, LotId lotId);

    /// @notice Thrown when a payment exceeds what remains of the lot it is paid out of
    /// @param lotId The lot paid out of
    /// @param remaining What remains of it
    /// @param requested The amount asked for
    error LedgerInsufficientFunds(LotId lotId, uint256 remaining, uint256 requested);

    /// @notice Thrown when a lot is spent by an account that neither holds it nor services its loan
    /// @param lotId The lot
    /// @param account The caller
    error LedgerNotLotSpender(LotId lotId, address account);

    /// @notice Thrown when a lot is confirmed or disputed by an account other than its payee
    /// @param lotId The lot
    /// @param account The caller
    error LedgerNotLotPayee(LotId lotId, address account);

    /// @notice Thrown when a lot its payee has already confirmed is confirmed or disputed again: a confirmation
    /// is final
    /// @param loanId The loan the lot belongs to
    /// @param lotId The lot already confirmed
    error LedgerLotAlreadyConfirmed(LoanId loanId, LotId lotId);

    /// @notice Thrown when a lot its payee has already disputed is disputed again; confirming it (which
    /// withdraws the dispute) is still allowed
    /// @param loanId The loan the lot belongs to
    /// @param lotId The lot already disputed
    error LedgerLotAlreadyDisputed(LoanId loanId, LotId lotId);

    /// @notice Thrown when an auditor attests a head that is no longer (or never was) the loan's head
    /// @param loanId The loan
    /// @param currentHead The loan's head now
    /// @param attestedHead The head the auditor verified
    error LedgerStaleHead(LoanId loanId, bytes32 currentHead, bytes32 attestedHead);

    // ---------------------------------------------------------------- participants

    /// @notice Operator: register an organisation. `profileHash` commits to its off-chain profile.
    function registerOrganization(OrgId orgId, bytes32 profileHash) external;

    /// @notice Operator: attach an account (signing address) to a registered organisation.
    function addAccount(OrgId orgId, address account) external;

    /// @notice Operator: detach an account and revoke its business roles at once. Works while paused, so a
    /// compromised key can always be cut off.
    function removeAccount(address account) external;

    /// @notice Operator: freeze every ledger write (reads, role revocation and account removal still work).
    function pause() external;

    /// @notice Operator: lift {pause}.
    function unpause() external;

    // ---------------------------------------------------------------- loans

    /// @notice Lender: open a loan for its organisation. `borrowerRef` is a salted hash (no personal data);
    /// `borrower` is the borrower's account, used to tell entrusted from self-paid disbursements.
    function openLoan(
        LoanId loanId,
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
        LoanId loanId,
        address payee,
        uint256 amount,
        uint8 purpose,
        bytes32 evidenceHash
    ) external returns (LotId lotId);

    /// @notice Lot holder (ENTERPRISE_ROLE) or the servicing lender: pay part of a lot to `payee` as a child lot.
    function pay(
        LoanId loanId,
        LotId fromLot,
        address payee,
        uint256 amount,
        uint8 purpose,
        bytes32 evidenceHash
    ) external returns (LotId lotId);

    /// @notice {pay} for many payments of one loan in one transaction; all or nothing.
    function payBatch(LoanId loanId, Payment[] calldata payments) external returns (LotId[] memory lotIds);

    /// @notice Payee of the lot (holding ENTERPRISE_ROLE): confirm receipt, once; withdraws an earlier dispute.
    /// Reverts with {LedgerLotAlreadyConfirmed} if the lot is already confirmed.
    function confirmLot(LoanId loanId, LotId lotId, bytes32 evidenceHash) external;

    /// @notice Payee of the lot (holding ENTERPRISE_ROLE): dispute it, once and before confirming it. Reverts
    /// with {LedgerLotAlreadyConfirmed} or {LedgerLotAlreadyDisputed} if the payee already answered so.
    function disputeLot(LoanId loanId, LotId lotId, bytes32 reasonHash) external;

    /// @notice Lender: record a principal repayment; it may not exceed what is outstanding.
    function repay(LoanId loanId, uint256 amount, bytes32 evidenceHash) external;

    /// @notice Lender: close the loan as `Repaid` (requires nothing outstanding) or `WrittenOff`. `status` is a
    /// {LoanStatus} value, taken as uint8 so a bad value gets {LedgerInvalidClosingStatus}, not a bare revert.
    function closeLoan(LoanId loanId, uint8 status, bytes32 reasonHash) external;

    /// @notice Lender: set the five-category risk class ({RiskClass} value as uint8), with the hash of the
    /// written reason.
    function classify(LoanId loanId, uint8 riskClass, bytes32 reasonHash) external;

    /// @notice Lender: record a collateral valuation.
    function valueCollateral(LoanId loanId, bytes32 collateralId, uint256 value, bytes32 evidenceHash) external;

    /// @notice Lender: record a post-loan inspection.
    function recordInspection(LoanId loanId, uint8 kind, bytes32 reportHash) external;

    /// @notice Lender: record a restructuring agreed with the borrower: new maturity and terms.
    function restructure(LoanId loanId, uint40 maturity, bytes32 termsHash) external;

    /// @notice Auditor: attest that it verified the loan's trail up to `head`, which must be the current head.
    function attest(LoanId loanId, bytes32 head, bytes32 reportHash) external;

    // ---------------------------------------------------------------- reads

    /// @notice The loan's current head (zero for an unknown loan).
    function headOf(LoanId loanId) external view returns (bytes32);

    /// @notice The state the loan keeps on chain; reverts with {LedgerLoanNotFound} for an unknown loan.
    function getLoan(LoanId loanId) external view returns (LoanView memory);

    /// @notice A lot's holder (its payee), what remains of it, and the purposes its loan allows.
    function getLot(
        LoanId loanId,
        LotId lotId
    ) external view returns (address holder, uint64 remaining, uint32 allowedPurposes);

    /// @notice The organisation an account acts for (zero if none).
    function organizationOf(address account) external view returns (OrgId orgId);

    /// @notice Whether an organisation id is registered.
    function organizationExists(OrgId orgId) external view returns (bool);

    // ================================================================ loan servicing (issue 18)

    /// @notice Emitted when the lender records a repayment and how it was applied: to penalty interest, to
    /// interest and to principal (the order is the lender's setting; the split is worked out off chain from the
    /// loan's schedule and recorded here so the mirror and an auditor see the same split). Only `principal`
    /// lowers what is outstanding.
    /// @param loanId The loan repaid
    /// @param principal The part applied to principal, in the currency's minor unit
    /// @param interest The part applied to contractual interest
    /// @param penalty The part applied to penalty interest on overdue amounts
    /// @param outstanding Principal outstanding after this repayment (disbursed minus repaid)
    /// @param evidenceHash Hash of the supporting documents
    /// @param head The loan's head after this step
    event RepaymentApplied(
        LoanId indexed loanId,
        uint256 principal,
        uint256 interest,
        uint256 penalty,
        uint256 outstanding,
        bytes32 evidenceHash,
        bytes32 head
    );

    /// @notice Emitted when the lender changes a loan's terms: an extension, a grace period, another change of
    /// terms, or a release or substitution of collateral; `financialDifficulty` says whether the debtor is in
    /// financial difficulty, which makes the loan a restructured asset under the 2023 classification rules.
    /// @param loanId The loan whose terms changed
    /// @param maturity The maturity after the change, a Unix timestamp (seconds)
    /// @param termsHash Hash of the new terms
    /// @param change 0 = extension, 1 = grace period, 2 = other change of terms, 3 = collateral released,
    /// 4 = collateral substituted
    /// @param financialDifficulty Whether the change is granted to a debtor in financial difficulty
    /// @param previousMaturity The maturity before the change (days past due count on from it if it had passed)
    /// @param outstanding Principal outstanding at the change (disbursed minus repaid)
    /// @param head The loan's head after this step
    event TermsChanged(
        LoanId indexed loanId,
        uint40 maturity,
        bytes32 termsHash,
        uint8 change,
        bool financialDifficulty,
        uint40 previousMaturity,
        uint256 outstanding,
        bytes32 head
    );

    /// @notice Thrown when a change of terms names a kind outside 0-4
    /// @param change The kind given
    error LedgerInvalidTermsChange(uint8 change);

    /// @notice Lender: record a repayment split into principal, interest and penalty interest (amounts may be
    /// zero, not all of them); `principal` may not exceed what is outstanding.
    function repayAllocated(
        LoanId loanId,
        uint256 principal,
        uint256 interest,
        uint256 penalty,
        bytes32 evidenceHash
    ) external;

    /// @notice Lender: change the loan's terms (see {TermsChanged}); days past due are not reset by it.
    function changeTerms(
        LoanId loanId,
        uint40 maturity,
        bytes32 termsHash,
        uint8 change,
        bool financialDifficulty
    ) external;
}
