// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {IFundFlowLedger, LoanId, LotId, OrgId} from "./interfaces/IFundFlowLedger.sol";

/// @title FundFlowLedger
/// @notice See {IFundFlowLedger} for the model, the hash-chain encoding and the roles.
/// @dev Who may call what is in each signature: `onlyRole` (OpenZeppelin) for the operator, a lender opening
/// a loan and the auditor, `onlyServicer` for a lender servicing its organisation's loan, `onlyPayee` for the
/// payee of a lot. The one exception is spending a lot: `_pay` checks it per payment (`_checkSpender`) with
/// the lot word it has already loaded, because one {payBatch} spends many lots and a modifier would read each
/// lot twice (measured: 216 gas more per {pay}, 210 per batched payment).
/// Every head is computed by `_extend`.
contract FundFlowLedger is IFundFlowLedger, AccessControl, Pausable {
    bytes32 public constant OPERATOR_ROLE = keccak256("OPERATOR_ROLE");
    bytes32 public constant LENDER_ROLE = keccak256("LENDER_ROLE");
    bytes32 public constant ENTERPRISE_ROLE = keccak256("ENTERPRISE_ROLE");
    bytes32 public constant AUDITOR_ROLE = keccak256("AUDITOR_ROLE");

    /// @notice Most payments one {payBatch} call accepts (keeps a batch well inside a block).
    uint256 public constant MAX_BATCH = 500;

    uint8 private constant _MAX_PURPOSE = 31;
    uint8 private constant _MAX_INSPECTION_KIND = 2;

    /// @dev What the payee has said about a lot; it only moves forward (see {IFundFlowLedger}'s "Answers").
    enum Answer {
        None,
        Disputed,
        Confirmed
    }

    /// @dev Slot 0 is all a payment touches: it reads and rewrites its parent's slot 0 and writes one new
    /// slot 0, nothing else about lots. The loan's allowed purposes are copied into every lot so a payment can
    /// flag its purpose without reading the loan. Which loan a lot belongs to is the outer mapping key.
    /// Slot 0 is full (160 + 64 + 32 bits), so the payee's answer has slot 1 to itself, written only by
    /// {confirmLot} and {disputeLot}: payments cost the same, and a lot's first answer pays for one new slot
    /// (narrowing amounts or purposes to free two bits would change the protocol).
    struct Lot {
        address holder; // the payee it was paid to; the only account (besides the lender) that may spend it
        uint64 remaining;
        uint32 allowedPurposes;
        // slot 1
        Answer answer;
    }

    /// @dev Packed so a disbursement reads slots 0-2 and writes only slot 2; terms and the borrower reference
    /// are cold (written at open and restructure).
    struct Loan {
        OrgId lenderOrg;
        // slot 1
        address borrower;
        uint64 principal;
        uint32 allowedPurposes;
        // slot 2
        uint64 disbursed;
        uint64 repaid;
        uint40 maturity;
        bytes3 currency;
        LoanStatus status;
        RiskClass riskClass;
        // slots 3-4
        bytes32 termsHash;
        bytes32 borrowerRef;
    }

    /// @dev Static payload of {LoanOpened}, encoded as a struct to stay within the stack limit;
    /// `abi.encode` of an all-static struct equals encoding its fields one after another.
    struct OpenPayload {
        LoanId loanId;
        OrgId lenderOrg;
        address borrower;
        bytes32 borrowerRef;
        uint256 principal;
        bytes3 currency;
        uint32 allowedPurposes;
        uint40 maturity;
        bytes32 termsHash;
    }

    mapping(LoanId loanId => bytes32 head) private _heads;
    mapping(LoanId loanId => Loan) private _loans;
    mapping(LoanId loanId => mapping(LotId lotId => Lot)) private _lots;
    mapping(address account => OrgId orgId) private _orgOf;
    mapping(OrgId orgId => bool) private _orgExists;

    /// @dev The caller holds LENDER_ROLE and belongs to the organisation the loan belongs to.
    modifier onlyServicer(LoanId loanId) {
        _checkServicer(loanId);
        _;
    }

    /// @dev The caller is the payee of the lot and holds ENTERPRISE_ROLE.
    modifier onlyPayee(LoanId loanId, LotId lotId) {
        _checkPayee(loanId, lotId);
        _;
    }

    constructor(address admin) {
        if (admin == address(0)) revert LedgerZeroAddress();
        _setRoleAdmin(LENDER_ROLE, OPERATOR_ROLE);
        _setRoleAdmin(ENTERPRISE_ROLE, OPERATOR_ROLE);
        _setRoleAdmin(AUDITOR_ROLE, OPERATOR_ROLE);
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(OPERATOR_ROLE, admin);
    }

    // ================================================================ participants

    /// @inheritdoc IFundFlowLedger
    function registerOrganization(OrgId orgId, bytes32 profileHash) external onlyRole(OPERATOR_ROLE) whenNotPaused {
        if (orgId.isZero()) revert LedgerZeroId();
        if (_orgExists[orgId]) revert LedgerOrganizationExists(orgId);
        _orgExists[orgId] = true;
        emit OrganizationRegistered(orgId, profileHash);
    }

    /// @inheritdoc IFundFlowLedger
    function addAccount(OrgId orgId, address account) external onlyRole(OPERATOR_ROLE) whenNotPaused {
        if (account == address(0)) revert LedgerZeroAddress();
        if (!_orgExists[orgId]) revert LedgerOrganizationNotFound(orgId);
        OrgId current = _orgOf[account];
        if (!current.isZero()) revert LedgerAccountAlreadyRegistered(account, current);
        _orgOf[account] = orgId;
        emit AccountAdded(orgId, account);
    }

    /// @inheritdoc IFundFlowLedger
    function removeAccount(address account) external onlyRole(OPERATOR_ROLE) {
        OrgId orgId = _orgOf[account];
        if (orgId.isZero()) revert LedgerAccountNotRegistered(account);
        _orgOf[account] = OrgId.wrap(0); // `delete` does not apply to user-defined value types
        _revokeRole(LENDER_ROLE, account);
        _revokeRole(ENTERPRISE_ROLE, account);
        _revokeRole(AUDITOR_ROLE, account);
        emit AccountRemoved(orgId, account);
    }

    /// @notice Granting is a write and stops while paused; revoking is not blocked, so a compromised key can
    /// always be cut off.
    function grantRole(bytes32 role, address account) public override whenNotPaused {
        super.grantRole(role, account);
    }

    /// @inheritdoc IFundFlowLedger
    function pause() external onlyRole(OPERATOR_ROLE) {
        _pause();
    }

    /// @inheritdoc IFundFlowLedger
    function unpause() external onlyRole(OPERATOR_ROLE) {
        _unpause();
    }

    /// @dev Business roles only go to accounts of a registered organisation: every action is then traceable
    /// to an organisation, and a loan can belong to one.
    function _grantRole(bytes32 role, address account) internal override returns (bool) {
        if ((role == LENDER_ROLE || role == ENTERPRISE_ROLE || role == AUDITOR_ROLE) && _orgOf[account].isZero()) {
            revert LedgerAccountNotRegistered(account);
        }
        return super._grantRole(role, account);
    }

    // ================================================================ loans

    /// @inheritdoc IFundFlowLedger
    function openLoan(
        LoanId loanId,
        address borrower,
        bytes32 borrowerRef,
        uint256 principal,
        bytes3 currency,
        uint32 allowedPurposes,
        uint40 maturity,
        bytes32 termsHash
    ) external onlyRole(LENDER_ROLE) whenNotPaused returns (bytes32 head) {
        if (loanId.isZero() || borrowerRef == 0) revert LedgerZeroId();
        Loan storage loan = _loans[loanId];
        if (loan.status != LoanStatus.None) revert LedgerLoanExists(loanId);
        if (borrower == address(0)) revert LedgerZeroAddress();
        _checkAmount(principal);
        if (currency == 0) revert LedgerInvalidCurrency(currency);
        if (allowedPurposes == 0) revert LedgerEmptyPurposeSet();
        if (maturity <= block.timestamp) revert LedgerMaturityInPast(maturity, block.timestamp);

        OpenPayload memory p = OpenPayload({
            loanId: loanId,
            lenderOrg: _orgOf[msg.sender],
            borrower: borrower,
            borrowerRef: borrowerRef,
            principal: principal,
            currency: currency,
            allowedPurposes: allowedPurposes,
            maturity: maturity,
            termsHash: termsHash
        });
        // A loan that was never opened is all zeros (no function sets status back to None), so only the
        // non-zero fields are written: disbursed, repaid and riskClass (Normal) start at zero.
        loan.lenderOrg = p.lenderOrg;
        loan.borrower = borrower;
        loan.principal = uint64(principal);
        loan.allowedPurposes = allowedPurposes;
        loan.maturity = maturity;
        loan.currency = currency;
        loan.status = LoanStatus.Open;
        loan.termsHash = termsHash;
        loan.borrowerRef = borrowerRef;
        // The chain starts from zero: a new loan has no head yet (and reading it would cost a cold SLOAD).
        head = _extend(bytes32(0), abi.encode(EventKind.LoanOpened, p));
        _heads[loanId] = head;
        _emitLoanOpened(p, head);
    }

    /// @inheritdoc IFundFlowLedger
    function disburse(
        LoanId loanId,
        address payee,
        uint256 amount,
        uint8 purpose,
        bytes32 evidenceHash
    ) external whenNotPaused onlyServicer(loanId) returns (LotId lotId) {
        Loan storage loan = _loans[loanId];
        _requireOpen(loanId, loan.status);
        if (payee == address(0)) revert LedgerZeroAddress();
        _checkAmount(amount);
        uint256 undisbursed;
        unchecked {
            undisbursed = loan.principal - loan.disbursed; // disbursed never exceeds principal
        }
        if (amount > undisbursed) revert LedgerPrincipalExceeded(loanId, undisbursed, amount);
        uint32 allowed = loan.allowedPurposes;
        bool declaredUse = _isDeclared(purpose, allowed);
        bool entrusted = payee != loan.borrower;

        unchecked {
            loan.disbursed += uint64(amount); // at most principal: checked against undisbursed above
        }
        lotId = LotId.wrap(
            _extendLoan(
                loanId,
                abi.encode(EventKind.Disbursed, loanId, payee, amount, purpose, declaredUse, entrusted, evidenceHash)
            )
        );
        _storeLot(_lots[loanId][lotId], payee, uint64(amount), allowed);
        emit Disbursed(loanId, lotId, payee, amount, purpose, declaredUse, entrusted, evidenceHash);
    }

    /// @inheritdoc IFundFlowLedger
    function pay(
        LoanId loanId,
        LotId fromLot,
        address payee,
        uint256 amount,
        uint8 purpose,
        bytes32 evidenceHash
    ) external whenNotPaused returns (LotId lotId) {
        lotId = _pay(loanId, _heads[loanId], fromLot, payee, amount, purpose, evidenceHash);
        _heads[loanId] = LotId.unwrap(lotId);
    }

    /// @inheritdoc IFundFlowLedger
    function payBatch(
        LoanId loanId,
        Payment[] calldata payments
    ) external whenNotPaused returns (LotId[] memory lotIds) {
        uint256 n = payments.length;
        if (n == 0) revert LedgerEmptyBatch();
        if (n > MAX_BATCH) revert LedgerBatchTooLarge(n, MAX_BATCH);
        lotIds = new LotId[](n);
        // The head is carried in memory through the batch and stored once: each payment still extends the
        // chain by one step, exactly as n separate calls would.
        bytes32 head = _heads[loanId];
        for (uint256 i; i < n; ++i) {
            Payment calldata p = payments[i];
            LotId lotId = _pay(loanId, head, p.fromLot, p.payee, p.amount, p.purpose, p.evidenceHash);
            lotIds[i] = lotId;
            head = LotId.unwrap(lotId);
        }
        _heads[loanId] = head;
    }

    /// @inheritdoc IFundFlowLedger
    function confirmLot(
        LoanId loanId,
        LotId lotId,
        bytes32 evidenceHash
    ) external whenNotPaused onlyPayee(loanId, lotId) {
        _answer(loanId, lotId, Answer.Confirmed);
        bytes32 head = _extendLoan(loanId, abi.encode(EventKind.LotConfirmed, loanId, lotId, evidenceHash));
        emit LotConfirmed(loanId, lotId, evidenceHash, head);
    }

    /// @inheritdoc IFundFlowLedger
    function disputeLot(
        LoanId loanId,
        LotId lotId,
        bytes32 reasonHash
    ) external whenNotPaused onlyPayee(loanId, lotId) {
        _answer(loanId, lotId, Answer.Disputed);
        bytes32 head = _extendLoan(loanId, abi.encode(EventKind.LotDisputed, loanId, lotId, reasonHash));
        emit LotDisputed(loanId, lotId, reasonHash, head);
    }

    /// @inheritdoc IFundFlowLedger
    function repay(LoanId loanId, uint256 amount, bytes32 evidenceHash) external whenNotPaused onlyServicer(loanId) {
        Loan storage loan = _loans[loanId];
        _requireOpen(loanId, loan.status);
        _checkAmount(amount);
        uint256 outstanding = loan.disbursed - loan.repaid;
        if (amount > outstanding) revert LedgerRepaymentExceedsOutstanding(loanId, outstanding, amount);
        loan.repaid += uint64(amount);
        outstanding -= amount;
        bytes32 head = _extendLoan(loanId, abi.encode(EventKind.Repaid, loanId, amount, outstanding, evidenceHash));
        emit Repaid(loanId, amount, outstanding, evidenceHash, head);
    }

    /// @inheritdoc IFundFlowLedger
    function closeLoan(LoanId loanId, uint8 status, bytes32 reasonHash) external whenNotPaused onlyServicer(loanId) {
        Loan storage loan = _loans[loanId];
        _requireOpen(loanId, loan.status);
        if (status != uint8(LoanStatus.Repaid) && status != uint8(LoanStatus.WrittenOff)) {
            revert LedgerInvalidClosingStatus(status);
        }
        if (status == uint8(LoanStatus.Repaid)) {
            uint256 outstanding = loan.disbursed - loan.repaid;
            if (outstanding != 0) revert LedgerLoanOutstanding(loanId, outstanding);
        }
        LoanStatus newStatus = LoanStatus(status);
        loan.status = newStatus;
        bytes32 head = _extendLoan(loanId, abi.encode(EventKind.LoanClosed, loanId, newStatus, reasonHash));
        emit LoanClosed(loanId, newStatus, reasonHash, head);
    }

    /// @inheritdoc IFundFlowLedger
    function classify(LoanId loanId, uint8 riskClass, bytes32 reasonHash) external whenNotPaused onlyServicer(loanId) {
        Loan storage loan = _loans[loanId];
        _requireOpen(loanId, loan.status);
        if (riskClass > uint8(RiskClass.Loss)) revert LedgerInvalidRiskClass(riskClass);
        RiskClass newClass = RiskClass(riskClass);
        loan.riskClass = newClass;
        bytes32 head = _extendLoan(loanId, abi.encode(EventKind.RiskClassified, loanId, newClass, reasonHash));
        emit RiskClassified(loanId, newClass, reasonHash, head);
    }

    /// @inheritdoc IFundFlowLedger
    function valueCollateral(
        LoanId loanId,
        bytes32 collateralId,
        uint256 value,
        bytes32 evidenceHash
    ) external whenNotPaused onlyServicer(loanId) {
        if (collateralId == 0) revert LedgerZeroId();
        if (value > type(uint64).max) revert LedgerAmountTooLarge(value, type(uint64).max);
        bytes32 head = _extendLoan(
            loanId,
            abi.encode(EventKind.CollateralValued, loanId, collateralId, value, evidenceHash)
        );
        emit CollateralValued(loanId, collateralId, value, evidenceHash, head);
    }

    /// @inheritdoc IFundFlowLedger
    function recordInspection(
        LoanId loanId,
        uint8 kind,
        bytes32 reportHash
    ) external whenNotPaused onlyServicer(loanId) {
        if (kind > _MAX_INSPECTION_KIND) revert LedgerInvalidInspectionKind(kind);
        bytes32 head = _extendLoan(loanId, abi.encode(EventKind.InspectionRecorded, loanId, kind, reportHash));
        emit InspectionRecorded(loanId, kind, reportHash, head);
    }

    /// @inheritdoc IFundFlowLedger
    function restructure(
        LoanId loanId,
        uint40 maturity,
        bytes32 termsHash
    ) external whenNotPaused onlyServicer(loanId) {
        Loan storage loan = _loans[loanId];
        _requireOpen(loanId, loan.status);
        if (maturity <= block.timestamp) revert LedgerMaturityInPast(maturity, block.timestamp);
        loan.maturity = maturity;
        loan.termsHash = termsHash;
        bytes32 head = _extendLoan(loanId, abi.encode(EventKind.LoanRestructured, loanId, maturity, termsHash));
        emit LoanRestructured(loanId, maturity, termsHash, head);
    }

    /// @inheritdoc IFundFlowLedger
    function attest(LoanId loanId, bytes32 head, bytes32 reportHash) external onlyRole(AUDITOR_ROLE) whenNotPaused {
        bytes32 current = _heads[loanId];
        if (current == 0) revert LedgerLoanNotFound(loanId);
        if (head != current) revert LedgerStaleHead(loanId, current, head);
        emit TrailAttested(loanId, _orgOf[msg.sender], head, reportHash);
    }

    // ================================================================ the post-loan file (issue 19)

    /// @dev The highest record kind {fileRecord} accepts (0 guarantee given, 1 guarantee released,
    /// 2 recovery after write-off, 3 asset-preservation case, 4-6 engagement of an appraiser, law firm or
    /// collection agency, 7 engagement ended, 8 collateral item). 9 is an appraiser's ({fileAppraisal}).
    uint8 private constant _MAX_RECORD_KIND = 8;
    uint8 private constant _ENGAGE_FIRST = 4;
    uint8 private constant _ENGAGEMENT_ENDED = 7;
    uint8 private constant _APPRAISAL = 9;

    /// @dev Third-party roles per loan and organisation (bit 0 appraiser, 1 law firm, 2 collection agency).
    mapping(LoanId loanId => mapping(OrgId orgId => uint8 roles)) private _engaged;

    /// @inheritdoc IFundFlowLedger
    function fileRecord(
        LoanId loanId,
        uint8 recordKind,
        bytes32 recordId,
        bytes32 contentHash
    ) external whenNotPaused onlyServicer(loanId) {
        if (recordKind > _MAX_RECORD_KIND) revert LedgerInvalidRecordKind(recordKind);
        if (recordId == 0 || contentHash == 0) revert LedgerZeroId();
        if (recordKind >= _ENGAGE_FIRST && recordKind <= _ENGAGEMENT_ENDED) {
            // an engagement names a registered organisation, so every third party's act is traceable
            OrgId orgId = OrgId.wrap(recordId);
            if (!_orgExists[orgId]) revert LedgerOrganizationNotFound(orgId);
            _engaged[loanId][orgId] = recordKind == _ENGAGEMENT_ENDED
                ? 0
                : _engaged[loanId][orgId] | uint8(1 << (recordKind - _ENGAGE_FIRST));
        }
        _fileRecord(loanId, recordKind, recordId, contentHash);
    }

    /// @inheritdoc IFundFlowLedger
    function fileAppraisal(LoanId loanId, bytes32 itemId, bytes32 contentHash) external whenNotPaused {
        // an unregistered account's org is zero, never engaged; a removed account loses it at once
        if (_engaged[loanId][_orgOf[msg.sender]] & 1 == 0) revert LedgerNotEngagedAppraiser(loanId, msg.sender);
        if (itemId == 0 || contentHash == 0) revert LedgerZeroId();
        _fileRecord(loanId, _APPRAISAL, itemId, contentHash);
    }

    /// @inheritdoc IFundFlowLedger
    function engagementOf(LoanId loanId, OrgId orgId) external view returns (uint8) {
        return _engaged[loanId][orgId];
    }

    function _fileRecord(LoanId loanId, uint8 recordKind, bytes32 recordId, bytes32 contentHash) private {
        bytes32 head = _extendLoan(
            loanId,
            abi.encode(EventKind.RecordFiled, loanId, recordKind, recordId, contentHash, msg.sender)
        );
        emit RecordFiled(loanId, recordKind, recordId, contentHash, msg.sender, head);
    }

    // ================================================================ reads

    /// @inheritdoc IFundFlowLedger
    function headOf(LoanId loanId) external view returns (bytes32) {
        return _heads[loanId];
    }

    /// @inheritdoc IFundFlowLedger
    function getLoan(LoanId loanId) external view returns (LoanView memory v) {
        Loan storage loan = _loans[loanId];
        if (loan.status == LoanStatus.None) revert LedgerLoanNotFound(loanId);
        v = LoanView({
            lenderOrg: loan.lenderOrg,
            borrower: loan.borrower,
            borrowerRef: loan.borrowerRef,
            principal: loan.principal,
            disbursed: loan.disbursed,
            repaid: loan.repaid,
            allowedPurposes: loan.allowedPurposes,
            maturity: loan.maturity,
            currency: loan.currency,
            status: loan.status,
            riskClass: loan.riskClass,
            termsHash: loan.termsHash,
            head: _heads[loanId]
        });
    }

    /// @inheritdoc IFundFlowLedger
    function getLot(
        LoanId loanId,
        LotId lotId
    ) external view returns (address holder, uint64 remaining, uint32 allowedPurposes) {
        Lot storage lot = _lots[loanId][lotId];
        if (lot.holder == address(0)) revert LedgerLotNotFound(loanId, lotId);
        return (lot.holder, lot.remaining, lot.allowedPurposes);
    }

    /// @inheritdoc IFundFlowLedger
    function organizationOf(address account) external view returns (OrgId) {
        return _orgOf[account];
    }

    /// @inheritdoc IFundFlowLedger
    function organizationExists(OrgId orgId) external view returns (bool) {
        return _orgExists[orgId];
    }

    // ================================================================ the hash chain

    /// @dev The one place a head is computed. `step` is `abi.encode(kind, fields...)`; the new head is
    /// `keccak256(abi.encode(previous, kind, fields...))`, which (every argument being static) is
    /// `keccak256(abi.encodePacked(previous, step))`. Hashed in place: `previous` briefly takes the place of
    /// `step`'s length word, which sits right before its contents, so nothing is copied.
    function _extend(bytes32 previous, bytes memory step) private pure returns (bytes32 head) {
        assembly ("memory-safe") {
            let length := mload(step)
            mstore(step, previous)
            head := keccak256(step, add(length, 0x20))
            mstore(step, length)
        }
    }

    /// @dev {_extend} from the loan's stored head, storing the result: one change, one step.
    function _extendLoan(LoanId loanId, bytes memory step) private returns (bytes32 head) {
        head = _extend(_heads[loanId], step);
        _heads[loanId] = head;
    }

    // ================================================================ internals

    /// @dev One payment: checks, parent debit, child lot, event. Returns the new head (= the child's id); the
    /// caller stores it, so a batch writes the head slot once.
    function _pay(
        LoanId loanId,
        bytes32 head,
        LotId fromLot,
        address payee,
        uint256 amount,
        uint8 purpose,
        bytes32 evidenceHash
    ) private returns (LotId lotId) {
        mapping(LotId lotId => Lot) storage lots = _lots[loanId];
        Lot storage parent = lots[fromLot];
        (address holder, uint64 remaining, uint32 allowed) = _loadLot(parent);
        if (holder == address(0)) revert LedgerLotNotFound(loanId, fromLot);
        _checkSpender(loanId, fromLot, holder);
        if (payee == address(0)) revert LedgerZeroAddress();
        _checkAmount(amount);
        if (amount > remaining) revert LedgerInsufficientFunds(fromLot, remaining, amount);
        bool declaredUse = _isDeclared(purpose, allowed);

        unchecked {
            _storeLot(parent, holder, remaining - uint64(amount), allowed); // checked against remaining above
        }
        lotId = LotId.wrap(
            _extend(
                head,
                abi.encode(EventKind.Paid, loanId, payee, fromLot, amount, purpose, declaredUse, evidenceHash)
            )
        );
        _storeLot(lots[lotId], payee, uint64(amount), allowed);
        emit Paid(loanId, lotId, payee, fromLot, amount, purpose, declaredUse, evidenceHash);
    }

    /// @dev Records the payee's answer, refusing one that repeats or goes back: nothing follows a
    /// confirmation, and a dispute is said once.
    function _answer(LoanId loanId, LotId lotId, Answer answer) private {
        Lot storage lot = _lots[loanId][lotId];
        Answer current = lot.answer;
        if (current == Answer.Confirmed) revert LedgerLotAlreadyConfirmed(loanId, lotId);
        if (current == answer) revert LedgerLotAlreadyDisputed(loanId, lotId); // Disputed twice
        lot.answer = answer;
    }

    /// @dev One SLOAD for the lot's slot 0 (all a payment needs); the layout is the `Lot` struct's (holder in
    /// the low 160 bits, then remaining, then allowedPurposes), which is what Solidity's own accessors (getLot)
    /// read.
    function _loadLot(Lot storage lot) private view returns (address holder, uint64 remaining, uint32 allowed) {
        uint256 word;
        assembly ("memory-safe") {
            word := sload(lot.slot)
        }
        holder = address(uint160(word));
        remaining = uint64(word >> 160);
        allowed = uint32(word >> 224);
    }

    /// @dev One SSTORE for the lot's slot 0 (Solidity's member-wise struct writes re-read the slot).
    function _storeLot(Lot storage lot, address holder, uint64 remaining, uint32 allowed) private {
        uint256 word = uint256(uint160(holder)) | (uint256(remaining) << 160) | (uint256(allowed) << 224);
        assembly ("memory-safe") {
            sstore(lot.slot, word)
        }
    }

    function _emitLoanOpened(OpenPayload memory p, bytes32 head) private {
        emit LoanOpened(
            p.loanId,
            p.lenderOrg,
            p.borrower,
            p.borrowerRef,
            p.principal,
            p.currency,
            p.allowedPurposes,
            p.maturity,
            p.termsHash,
            head
        );
    }

    // ================================================================ access checks

    /// @dev {onlyServicer}: LENDER_ROLE first (so an outsider learns nothing about the loan), then the loan
    /// must exist and belong to the caller's organisation.
    function _checkServicer(LoanId loanId) private view {
        _checkRole(LENDER_ROLE);
        OrgId lenderOrg = _loans[loanId].lenderOrg;
        if (lenderOrg.isZero()) revert LedgerLoanNotFound(loanId);
        if (!_orgOf[msg.sender].equals(lenderOrg)) revert LedgerNotLoanLender(loanId, msg.sender);
    }

    /// @dev {onlyPayee}: the lot must exist, the caller must be its payee, and hold ENTERPRISE_ROLE, like it
    /// spends: revoking the role (or removing the account) stops a cut-off key from rewriting what it said
    /// it received.
    function _checkPayee(LoanId loanId, LotId lotId) private view {
        address holder = _lots[loanId][lotId].holder;
        if (holder == address(0)) revert LedgerLotNotFound(loanId, lotId);
        if (holder != msg.sender) revert LedgerNotLotPayee(lotId, msg.sender);
        _checkRole(ENTERPRISE_ROLE);
    }

    /// @dev The holder spends with ENTERPRISE_ROLE (so revoking it freezes the holder at once); otherwise only
    /// a lender of the loan's organisation may. Called per payment by `_pay` with the lot it already loaded.
    function _checkSpender(LoanId loanId, LotId lotId, address holder) private view {
        if (holder == msg.sender) {
            _checkRole(ENTERPRISE_ROLE);
            return;
        }
        if (!hasRole(LENDER_ROLE, msg.sender) || !_orgOf[msg.sender].equals(_loans[loanId].lenderOrg)) {
            revert LedgerNotLotSpender(lotId, msg.sender);
        }
    }

    // ================================================================ argument checks

    function _requireOpen(LoanId loanId, LoanStatus status) private pure {
        if (status != LoanStatus.Open) revert LedgerLoanNotOpen(loanId, status);
    }

    function _checkAmount(uint256 amount) private pure {
        if (amount == 0) revert LedgerZeroAmount();
        if (amount > type(uint64).max) revert LedgerAmountTooLarge(amount, type(uint64).max);
    }

    /// @dev Reverts on a code outside [0, 31]; otherwise tells whether the loan allows it.
    function _isDeclared(uint8 purpose, uint32 allowed) private pure returns (bool) {
        if (purpose > _MAX_PURPOSE) revert LedgerInvalidPurpose(purpose);
        return (allowed >> purpose) & 1 == 1;
    }

    // ================================================================ loan servicing (issue 18)

    uint8 private constant _MAX_TERMS_CHANGE = 4;

    /// @inheritdoc IFundFlowLedger
    function repayAllocated(
        LoanId loanId,
        uint256 principal,
        uint256 interest,
        uint256 penalty,
        bytes32 evidenceHash
    ) external whenNotPaused onlyServicer(loanId) {
        Loan storage loan = _loans[loanId];
        _requireOpen(loanId, loan.status);
        // Each part fits the amount type; zero parts are fine, an all-zero repayment is not.
        if (principal > type(uint64).max) revert LedgerAmountTooLarge(principal, type(uint64).max);
        if (interest > type(uint64).max) revert LedgerAmountTooLarge(interest, type(uint64).max);
        if (penalty > type(uint64).max) revert LedgerAmountTooLarge(penalty, type(uint64).max);
        if (principal + interest + penalty == 0) revert LedgerZeroAmount();
        uint256 outstanding = loan.disbursed - loan.repaid;
        if (principal > outstanding) revert LedgerRepaymentExceedsOutstanding(loanId, outstanding, principal);
        if (principal != 0) loan.repaid += uint64(principal); // interest-only payments leave the slot alone
        outstanding -= principal;
        bytes32 head = _extendLoan(
            loanId,
            abi.encode(EventKind.RepaymentApplied, loanId, principal, interest, penalty, outstanding, evidenceHash)
        );
        emit RepaymentApplied(loanId, principal, interest, penalty, outstanding, evidenceHash, head);
    }

    /// @inheritdoc IFundFlowLedger
    function changeTerms(
        LoanId loanId,
        uint40 maturity,
        bytes32 termsHash,
        uint8 change,
        bool financialDifficulty
    ) external whenNotPaused onlyServicer(loanId) {
        Loan storage loan = _loans[loanId];
        _requireOpen(loanId, loan.status);
        if (change > _MAX_TERMS_CHANGE) revert LedgerInvalidTermsChange(change);
        if (maturity <= block.timestamp) revert LedgerMaturityInPast(maturity, block.timestamp);
        // What stood before the change goes into the event: days past due are never reset by it.
        uint40 previousMaturity = loan.maturity;
        uint256 outstanding = loan.disbursed - loan.repaid;
        loan.maturity = maturity;
        loan.termsHash = termsHash;
        bytes32 head = _extendLoan(
            loanId,
            abi.encode(
                EventKind.TermsChanged,
                loanId,
                maturity,
                termsHash,
                change,
                financialDifficulty,
                previousMaturity,
                outstanding
            )
        );
        emit TermsChanged(
            loanId,
            maturity,
            termsHash,
            change,
            financialDifficulty,
            previousMaturity,
            outstanding,
            head
        );
    }
}
