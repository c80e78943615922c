// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {OrgId} from "./interfaces/IFundFlowLedger.sol";
import {ISupplyChainVouchers} from "./interfaces/ISupplyChainVouchers.sol";

/// @notice What this contract asks of the ledger: identity, roles and the pause flag. The ledger implements
/// all four (`hasRole` and `paused` from OpenZeppelin's AccessControl and Pausable).
interface ILedgerDirectory {
    function organizationOf(address account) external view returns (OrgId);

    function organizationExists(OrgId orgId) external view returns (bool);

    function hasRole(bytes32 role, address account) external view returns (bool);

    function paused() external view returns (bool);
}

/// @title SupplyChainVouchers
/// @notice See {ISupplyChainVouchers} for the model, the discount formula and the hash-chain encoding.
/// @dev A separate contract beside the ledger (whose runtime size has little room left): it reads identity,
/// roles and the pause flag from the ledger, so the operator registers organisations once.
/// A part's state is one storage word (holder, remaining, state), read and written whole by a split, the one
/// operation that must stay as cheap as a ledger payment.
contract SupplyChainVouchers is ISupplyChainVouchers {
    bytes32 public constant LENDER_ROLE = keccak256("LENDER_ROLE");
    bytes32 public constant ENTERPRISE_ROLE = keccak256("ENTERPRISE_ROLE");

    /// @notice Most pieces one {splitTransfer} call creates (keeps a call well inside a block).
    uint256 public constant MAX_SPLIT = 100;

    uint256 private constant _BPS = 10_000;
    uint256 private constant _DAY = 86_400;
    uint256 private constant _YEAR_DAYS = 360;

    /// @dev One word: holder (160) | remaining (64) | state (8) | the discount rate asked (24, only while
    /// financing is requested: rates are below 10,000 bps). A part's face value and parent are in its event
    /// (the mirror keeps them); the chain keeps what later actions check.
    struct Part {
        address holder;
        uint64 remaining;
        PartState state;
    }

    /// @dev Slot 0 the issuer; slot 1 amounts, maturity and currency; slot 2 the invoice. A split touches none
    /// of it.
    struct Voucher {
        OrgId coreOrg;
        // slot 1
        uint64 faceValue;
        uint64 settled;
        uint64 maturity;
        bytes3 currency;
        // slot 2
        bytes32 invoiceHash;
    }

    struct Line {
        OrgId bankOrg;
        // slot 1
        uint64 limit;
        uint64 outstanding;
        uint64 expiry;
        // slot 2
        bytes32 termsHash;
    }

    ILedgerDirectory private immutable _ledger;

    mapping(bytes32 voucherId => bytes32 head) private _heads;
    mapping(bytes32 voucherId => Voucher) private _vouchers;
    mapping(bytes32 voucherId => mapping(uint32 partId => Part)) private _parts;
    /// @dev The bank a part's holder asked, while it waits for the bank's answer (the rate is in the part).
    mapping(bytes32 voucherId => mapping(uint32 partId => OrgId bankOrg)) private _requestedBank;
    mapping(OrgId coreOrg => Line) private _lines;

    modifier whenLedgerNotPaused() {
        _checkNotPaused();
        _;
    }

    constructor(address ledgerAddress) {
        if (ledgerAddress == address(0)) revert VoucherZeroAddress();
        _ledger = ILedgerDirectory(ledgerAddress);
    }

    // ================================================================ credit lines

    /// @inheritdoc ISupplyChainVouchers
    function setCreditLine(
        OrgId coreOrg,
        uint64 limit,
        uint64 expiry,
        bytes32 termsHash
    ) external whenLedgerNotPaused {
        OrgId bankOrg = _requireRole(LENDER_ROLE);
        if (OrgId.unwrap(coreOrg) == 0) revert VoucherZeroId();
        if (!_ledger.organizationExists(coreOrg)) revert VoucherOrganizationNotFound(coreOrg);
        if (expiry <= block.timestamp) revert CreditLineExpiryInPast(expiry, block.timestamp);
        Line storage line = _lines[coreOrg];
        OrgId holder = line.bankOrg;
        if (OrgId.unwrap(holder) != 0 && OrgId.unwrap(holder) != OrgId.unwrap(bankOrg)) {
            revert CreditLineHeldByOtherBank(coreOrg, holder);
        }
        uint64 outstanding = line.outstanding;
        if (limit < outstanding) revert CreditLineBelowOutstanding(coreOrg, outstanding, limit);
        line.bankOrg = bankOrg;
        line.limit = limit;
        line.expiry = expiry;
        line.termsHash = termsHash;
        emit CreditLineSet(coreOrg, bankOrg, limit, outstanding, expiry, termsHash);
    }

    // ================================================================ vouchers

    /// @inheritdoc ISupplyChainVouchers
    function issueVoucher(
        bytes32 voucherId,
        address holder,
        uint64 faceValue,
        uint64 maturity,
        bytes3 currency,
        bytes32 invoiceHash
    ) external whenLedgerNotPaused {
        OrgId coreOrg = _requireRole(ENTERPRISE_ROLE);
        if (voucherId == 0 || invoiceHash == 0) revert VoucherZeroId();
        if (holder == address(0)) revert VoucherZeroAddress();
        if (faceValue == 0) revert VoucherZeroAmount();
        if (currency == 0) revert VoucherInvalidCurrency(currency);
        if (maturity <= block.timestamp) revert VoucherMaturityInPast(maturity, block.timestamp);
        Voucher storage v = _vouchers[voucherId];
        if (OrgId.unwrap(v.coreOrg) != 0) revert VoucherExists(voucherId);

        Line storage line = _lines[coreOrg];
        if (OrgId.unwrap(line.bankOrg) == 0) revert CreditLineNotFound(coreOrg);
        uint64 expiry = line.expiry;
        if (block.timestamp > expiry) revert CreditLineExpired(coreOrg, expiry);
        uint64 outstanding = line.outstanding;
        uint64 limit = line.limit;
        // 确权 within the line: outstanding + face never exceeds the limit (both fit uint64, so no overflow
        // in uint256)
        if (uint256(outstanding) + faceValue > limit) {
            revert CreditLineExceeded(coreOrg, outstanding, limit, faceValue);
        }
        outstanding += faceValue;
        line.outstanding = outstanding;

        v.coreOrg = coreOrg;
        v.faceValue = faceValue;
        v.maturity = maturity;
        v.currency = currency;
        v.invoiceHash = invoiceHash;
        _parts[voucherId][1] = Part({holder: holder, remaining: faceValue, state: PartState.Held});

        bytes32 head = _extend(
            bytes32(0),
            abi.encode(
                VoucherEventKind.VoucherIssued,
                voucherId,
                coreOrg,
                holder,
                faceValue,
                maturity,
                currency,
                invoiceHash,
                outstanding
            )
        );
        _heads[voucherId] = head;
        emit VoucherIssued(voucherId, coreOrg, holder, faceValue, maturity, currency, invoiceHash, outstanding, head);
    }

    /// @inheritdoc ISupplyChainVouchers
    function splitTransfer(
        bytes32 voucherId,
        uint32 partId,
        address[] calldata to,
        uint64[] calldata amounts
    ) external whenLedgerNotPaused {
        uint256 n = to.length;
        if (n == 0 || n != amounts.length || n > MAX_SPLIT) revert VoucherBadSplit(n, amounts.length);
        Part storage parent = _parts[voucherId][partId];
        (address holder, uint64 remaining, PartState state) = _loadPart(parent);
        if (holder == address(0)) revert VoucherPartNotFound(voucherId, partId);
        if (holder != msg.sender) revert VoucherNotPartHolder(voucherId, partId, msg.sender);
        if (state != PartState.Held && state != PartState.Financed) {
            revert VoucherPartWrongState(voucherId, partId, state);
        }
        // The head is carried in memory through the split and stored once, as the ledger's payBatch does.
        bytes32 head = _heads[voucherId];
        mapping(uint32 partId => Part) storage parts = _parts[voucherId];
        for (uint256 i; i < n; ++i) {
            // Read straight from calldata (both lengths are checked above); a word that does not fit its
            // type is refused as the ABI decoder would.
            uint256 toWord;
            uint256 amountWord;
            assembly ("memory-safe") {
                toWord := calldataload(add(to.offset, shl(5, i)))
                amountWord := calldataload(add(amounts.offset, shl(5, i)))
            }
            if (toWord >> 160 != 0 || amountWord >> 64 != 0) revert VoucherBadSplit(n, n);
            address recipient = address(uint160(toWord));
            uint64 amount = uint64(amountWord);
            if (recipient == address(0)) revert VoucherZeroAddress();
            if (amount == 0) revert VoucherZeroAmount();
            if (amount > remaining) revert VoucherInsufficientRemaining(voucherId, partId, remaining, amount);
            unchecked {
                remaining -= amount; // checked above
            }
            head = _stepTransferred(head, voucherId, partId, recipient, amount);
            // The new part's number is the low 32 bits of the head its creation produced (no counter in
            // storage, as the ledger's lot ids). Its word is read first: a number already taken (about one
            // chance in 2^32 per existing part) or 0 is refused. The read makes the write warm, so it is free.
            uint32 child = uint32(uint256(head));
            Part storage slot = parts[child];
            if (child == 0 || _loadWord(slot) != 0) revert VoucherPartIdTaken(voucherId, child);
            _storePart(slot, recipient, amount, PartState.Held);
            emit PartTransferred(voucherId, partId, recipient, amount, head);
        }
        _storePart(parent, holder, remaining, state);
        _heads[voucherId] = head;
    }

    // ================================================================ financing (贴现)

    /// @inheritdoc ISupplyChainVouchers
    function requestFinancing(
        bytes32 voucherId,
        uint32 partId,
        OrgId bankOrg,
        uint32 discountRateBps
    ) external whenLedgerNotPaused {
        Part storage part = _parts[voucherId][partId];
        (address holder, uint64 remaining, PartState state) = _loadPart(part);
        if (holder == address(0)) revert VoucherPartNotFound(voucherId, partId);
        if (holder != msg.sender) revert VoucherNotPartHolder(voucherId, partId, msg.sender);
        if (state != PartState.Held) revert VoucherPartWrongState(voucherId, partId, state);
        if (remaining == 0) revert VoucherInsufficientRemaining(voucherId, partId, 0, 1);
        uint64 maturity = _vouchers[voucherId].maturity;
        if (block.timestamp >= maturity) revert VoucherMatured(voucherId, maturity);
        if (!_ledger.organizationExists(bankOrg)) revert VoucherOrganizationNotFound(bankOrg);
        if (discountRateBps == 0 || discountRateBps >= _BPS) revert VoucherInvalidRate(discountRateBps);
        _requestedBank[voucherId][partId] = bankOrg;
        _storeRequested(part, holder, remaining, discountRateBps);
        bytes32 head = _extendVoucher(
            voucherId,
            abi.encode(VoucherEventKind.FinancingRequested, voucherId, partId, bankOrg, discountRateBps)
        );
        emit FinancingRequested(voucherId, partId, bankOrg, discountRateBps, head);
    }

    /// @inheritdoc ISupplyChainVouchers
    function acceptFinancing(bytes32 voucherId, uint32 partId, bytes32 paymentRef) external whenLedgerNotPaused {
        Part storage part = _parts[voucherId][partId];
        (address seller, uint64 face, PartState state) = _loadPart(part);
        if (seller == address(0)) revert VoucherPartNotFound(voucherId, partId);
        if (state != PartState.FinancingRequested) revert VoucherPartWrongState(voucherId, partId, state);
        OrgId bankOrg = _requestedBank[voucherId][partId];
        uint32 rateBps = _requestedRate(part);
        if (
            !_ledger.hasRole(LENDER_ROLE, msg.sender) ||
            OrgId.unwrap(_ledger.organizationOf(msg.sender)) != OrgId.unwrap(bankOrg)
        ) revert VoucherNotRequestedBank(voucherId, partId, msg.sender);
        uint64 maturity = _vouchers[voucherId].maturity;
        if (block.timestamp >= maturity) revert VoucherMatured(voucherId, maturity);

        (uint32 days_, uint64 interest) = discount(face, rateBps, maturity - block.timestamp);
        uint64 paid = face - interest;
        _requestedBank[voucherId][partId] = OrgId.wrap(0); // `delete` does not apply to a user-defined type
        _storePart(part, msg.sender, face, PartState.Financed); // the rate asked is cleared with it
        bytes32 head = _extendVoucher(
            voucherId,
            abi.encode(
                VoucherEventKind.PartFinanced,
                voucherId,
                partId,
                msg.sender,
                seller,
                face,
                rateBps,
                days_,
                interest,
                paid,
                paymentRef
            )
        );
        _emitFinanced(voucherId, partId, seller, face, rateBps, days_, interest, paid, paymentRef, head);
    }

    /// @notice The discount a bank takes on `face` at `rateBps` a year with `secondsToMaturity` to run:
    /// days = ceil(seconds / 86400); interest = face × rate × days / 360, half up to the fen (贴现利息 =
    /// 票面金额 × 年贴现率 × 贴现天数 / 360). Interest is capped at the face, so `paid` is never negative.
    function discount(
        uint64 face,
        uint32 rateBps,
        uint256 secondsToMaturity
    ) public pure returns (uint32 days_, uint64 interest) {
        uint256 d = (secondsToMaturity + _DAY - 1) / _DAY;
        uint256 denominator = _BPS * _YEAR_DAYS;
        uint256 i = (uint256(face) * rateBps * d + denominator / 2) / denominator;
        if (i > face) i = face; // a tenor beyond 360 / rate years would discount to nothing, never below
        days_ = d > type(uint32).max ? type(uint32).max : uint32(d);
        interest = uint64(i);
    }

    // ================================================================ settlement

    /// @inheritdoc ISupplyChainVouchers
    function settle(bytes32 voucherId, uint32 partId, bytes32 paymentRef) external whenLedgerNotPaused {
        Voucher storage v = _vouchers[voucherId];
        OrgId coreOrg = v.coreOrg;
        if (OrgId.unwrap(coreOrg) == 0) revert VoucherNotFound(voucherId);
        if (
            !_ledger.hasRole(ENTERPRISE_ROLE, msg.sender) ||
            OrgId.unwrap(_ledger.organizationOf(msg.sender)) != OrgId.unwrap(coreOrg)
        ) revert VoucherNotCoreEnterprise(voucherId, msg.sender);
        Part storage part = _parts[voucherId][partId];
        (address holder, uint64 amount, PartState state) = _loadPart(part);
        if (holder == address(0)) revert VoucherPartNotFound(voucherId, partId);
        if (state == PartState.Settled) revert VoucherPartWrongState(voucherId, partId, state);
        if (amount == 0) revert VoucherNothingToSettle(voucherId, partId);
        uint64 maturity = v.maturity;
        // No early settlement: a part may have been financed at a discount priced to maturity, and paying
        // early would change what its holder bought.
        if (block.timestamp < maturity) revert VoucherNotMatured(voucherId, maturity, block.timestamp);

        if (state == PartState.FinancingRequested) _requestedBank[voucherId][partId] = OrgId.wrap(0);
        _storePart(part, holder, 0, PartState.Settled);
        v.settled += amount;
        Line storage line = _lines[coreOrg];
        line.outstanding -= amount; // issued under the line, so never more than outstanding
        bytes32 head = _extendVoucher(
            voucherId,
            abi.encode(VoucherEventKind.PartSettled, voucherId, partId, holder, amount, paymentRef)
        );
        emit PartSettled(voucherId, partId, holder, amount, paymentRef, head);
    }

    // ================================================================ reads

    /// @inheritdoc ISupplyChainVouchers
    function ledger() external view returns (address) {
        return address(_ledger);
    }

    /// @inheritdoc ISupplyChainVouchers
    function headOf(bytes32 voucherId) external view returns (bytes32) {
        return _heads[voucherId];
    }

    /// @inheritdoc ISupplyChainVouchers
    function getVoucher(bytes32 voucherId) external view returns (VoucherView memory) {
        Voucher storage v = _vouchers[voucherId];
        if (OrgId.unwrap(v.coreOrg) == 0) revert VoucherNotFound(voucherId);
        return
            VoucherView({
                coreOrg: v.coreOrg,
                faceValue: v.faceValue,
                settled: v.settled,
                maturity: v.maturity,
                currency: v.currency,
                invoiceHash: v.invoiceHash,
                head: _heads[voucherId]
            });
    }

    /// @inheritdoc ISupplyChainVouchers
    function getPart(
        bytes32 voucherId,
        uint32 partId
    ) external view returns (address holder, uint64 remaining, PartState state) {
        (holder, remaining, state) = _loadPart(_parts[voucherId][partId]);
        if (holder == address(0)) revert VoucherPartNotFound(voucherId, partId);
    }

    /// @inheritdoc ISupplyChainVouchers
    function financingRequestOf(
        bytes32 voucherId,
        uint32 partId
    ) external view returns (OrgId bankOrg, uint32 discountRateBps) {
        return (_requestedBank[voucherId][partId], _requestedRate(_parts[voucherId][partId]));
    }

    /// @inheritdoc ISupplyChainVouchers
    function creditLineOf(OrgId coreOrg) external view returns (CreditLineView memory) {
        Line storage line = _lines[coreOrg];
        return
            CreditLineView({
                bankOrg: line.bankOrg,
                limit: line.limit,
                outstanding: line.outstanding,
                expiry: line.expiry,
                termsHash: line.termsHash
            });
    }

    // ================================================================ internals

    /// @dev The ledger's `paused()`, called in assembly: the high-level call's return-data checks and
    /// decoding cost a split a few hundred gas it cannot spare (it must stay as cheap as a ledger payment).
    /// A failed call or a short answer counts as paused: writes stop rather than run unchecked.
    function _checkNotPaused() private view {
        address ledgerAddress = address(_ledger);
        bool paused;
        assembly ("memory-safe") {
            mstore(0, 0x5c975abb00000000000000000000000000000000000000000000000000000000) // paused()
            let ok := staticcall(gas(), ledgerAddress, 0, 4, 0, 32)
            paused := or(iszero(and(ok, gt(returndatasize(), 31))), iszero(iszero(mload(0))))
        }
        if (paused) revert VoucherLedgerPaused();
    }

    /// @dev The caller holds `role` on the ledger; returns its organisation.
    function _requireRole(bytes32 role) private view returns (OrgId orgId) {
        if (!_ledger.hasRole(role, msg.sender)) revert VoucherMissingRole(msg.sender, role);
        orgId = _ledger.organizationOf(msg.sender);
    }

    /// @dev The ledger's `_extend`: head = keccak256(abi.encodePacked(previous, step)), hashed in place.
    function _extend(bytes32 previous, bytes memory step) private pure returns (bytes32 head) {
        assembly ("memory-safe") {
            let length := mload(step)
            mstore(step, previous)
            head := keccak256(step, add(length, 0x20))
            mstore(step, length)
        }
    }

    /// @dev `_extend(head, abi.encode(PartTransferred, voucherId, parentPartId, to, amount))` written into
    /// scratch memory above the free-memory pointer (nothing allocated): the split runs it once per piece.
    function _stepTransferred(
        bytes32 previous,
        bytes32 voucherId,
        uint32 parentPartId,
        address to,
        uint64 amount
    ) private pure returns (bytes32 head) {
        uint256 kind = uint256(VoucherEventKind.PartTransferred);
        assembly ("memory-safe") {
            let p := mload(0x40)
            mstore(p, previous)
            mstore(add(p, 0x20), kind)
            mstore(add(p, 0x40), voucherId)
            mstore(add(p, 0x60), parentPartId)
            mstore(add(p, 0x80), to)
            mstore(add(p, 0xa0), amount)
            head := keccak256(p, 0xc0)
        }
    }

    function _extendVoucher(bytes32 voucherId, bytes memory step) private returns (bytes32 head) {
        head = _extend(_heads[voucherId], step);
        _heads[voucherId] = head;
    }

    function _loadWord(Part storage part) private view returns (uint256 word) {
        assembly ("memory-safe") {
            word := sload(part.slot)
        }
    }

    /// @dev One SLOAD for the part's word (holder low 160 bits, then remaining, then state).
    function _loadPart(Part storage part) private view returns (address holder, uint64 remaining, PartState state) {
        uint256 word;
        assembly ("memory-safe") {
            word := sload(part.slot)
        }
        holder = address(uint160(word));
        remaining = uint64(word >> 160);
        state = PartState(uint8(word >> 224));
    }

    /// @dev The rate asked, from the part's word (zero unless financing is requested).
    function _requestedRate(Part storage part) private view returns (uint32) {
        return uint32(_loadWord(part) >> 232);
    }

    /// @dev The part's word with financing requested at `rateBps` (below 10,000, so it fits the top 24 bits).
    function _storeRequested(Part storage part, address holder, uint64 remaining, uint32 rateBps) private {
        uint256 word = uint256(uint160(holder)) |
            (uint256(remaining) << 160) |
            (uint256(uint8(PartState.FinancingRequested)) << 224) |
            (uint256(rateBps) << 232);
        assembly ("memory-safe") {
            sstore(part.slot, word)
        }
    }

    /// @dev One SSTORE for the part's word.
    function _storePart(Part storage part, address holder, uint64 remaining, PartState state) private {
        uint256 word = uint256(uint160(holder)) | (uint256(remaining) << 160) | (uint256(uint8(state)) << 224);
        assembly ("memory-safe") {
            sstore(part.slot, word)
        }
    }

    function _emitFinanced(
        bytes32 voucherId,
        uint32 partId,
        address seller,
        uint64 face,
        uint32 rateBps,
        uint32 days_,
        uint64 interest,
        uint64 paid,
        bytes32 paymentRef,
        bytes32 head
    ) private {
        emit PartFinanced(voucherId, partId, msg.sender, seller, face, rateBps, days_, interest, paid, paymentRef, head);
    }
}
