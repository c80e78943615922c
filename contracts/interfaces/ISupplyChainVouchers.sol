// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {OrgId} from "./IFundFlowLedger.sol";

/// @title Supply-chain vouchers (应收账款电子凭证) beside the fund-flow ledger
/// @notice A core enterprise (核心企业) acknowledges what it owes a supplier by issuing a voucher against an
/// invoice or contract hash (确权), within the credit line a bank granted it. The holder splits its part and
/// transfers the pieces to its own suppliers (face value is conserved, as the ledger's lots conserve money);
/// any holder may ask a bank to finance its part at a discount (贴现); at maturity the core enterprise settles
/// each part to whoever holds it, which frees that much of its line.
///
/// Identity and roles are the ledger's: this contract asks the ledger it was built with for an account's
/// organisation (`organizationOf`), its roles (`hasRole` with LENDER_ROLE / ENTERPRISE_ROLE) and whether it is
/// paused; a paused ledger stops every write here too.
///
/// Units: amounts are integers in the currency's minor unit (fen) and fit a uint64; currency is three ASCII
/// bytes (ISO 4217). Times are Unix seconds. A voucher's id (bytes32) is chosen by its issuer. Its root part
/// (the whole face value) is part 1; a part split off is numbered by the low 32 bits of the head its creation
/// produced (so no counter is stored, as the ledger's lot ids are heads); a number already taken is refused
/// ({VoucherPartIdTaken}, about one chance in 2^32 per existing part: split again with another amount).
///
/// Discount (贴现利息 = 票面金额 × 年贴现率 × 贴现天数 / 360, the Chinese bill-discount convention): when a bank
/// accepts, `days` = whole days from the block's time to maturity, a started day counting as one
/// (ceil((maturity - now) / 86400)); `interest` = remaining × rateBps × days / (10,000 × 360), rounded half up
/// to the fen; `paid` = remaining − interest. The part passes whole to the accepting bank account.
///
/// Hash chain: every change to a voucher extends that voucher's chain, exactly like a loan's:
///
///     head = keccak256(abi.encode(previousHead, uint8(kind), field1, field2, ...))
///
/// where `previousHead` is bytes32(0) for `VoucherIssued`, `kind` is the event's {VoucherEventKind} value and
/// the fields are the event's fields in declaration order (indexed ones included, an id type as the bytes32
/// it wraps), leaving out `head`. A split into n parts is n `PartTransferred` steps. `CreditLineSet` is about
/// an organisation, not a voucher: it does not extend any chain.
interface ISupplyChainVouchers {
    /// @notice The kind tag mixed into each hash-chain step.
    enum VoucherEventKind {
        None,
        VoucherIssued,
        PartTransferred,
        FinancingRequested,
        PartFinanced,
        PartSettled
    }

    /// @notice Where a part stands. `Held` parts may be split, transferred and offered for financing;
    /// a part split down to nothing stays `Held` with nothing remaining.
    enum PartState {
        None,
        Held,
        FinancingRequested,
        Financed,
        Settled
    }

    /// @notice A voucher as kept on chain.
    struct VoucherView {
        OrgId coreOrg;
        uint64 faceValue;
        uint64 settled;
        uint64 maturity;
        bytes3 currency;
        bytes32 invoiceHash;
        bytes32 head;
    }

    /// @notice A core enterprise's credit line as kept on chain.
    struct CreditLineView {
        OrgId bankOrg;
        uint64 limit;
        uint64 outstanding;
        uint64 expiry;
        bytes32 termsHash;
    }

    // ---------------------------------------------------------------- events

    /// @notice Emitted when a bank sets (grants or changes) a core enterprise's credit line
    /// @param coreOrg The core enterprise's organisation
    /// @param bankOrg The granting bank's organisation
    /// @param limit Most the core enterprise may have outstanding in vouchers, in fen
    /// @param outstanding What it has outstanding when the line is set, in fen
    /// @param expiry Last moment (Unix seconds) vouchers may be issued under the line
    /// @param termsHash Hash of the line's terms
    event CreditLineSet(
        OrgId indexed coreOrg,
        OrgId indexed bankOrg,
        uint64 limit,
        uint64 outstanding,
        uint64 expiry,
        bytes32 termsHash
    );

    /// @notice Emitted when a core enterprise issues a voucher (确权); its root part is part 1, held by `holder`
    /// @param voucherId The voucher's id
    /// @param coreOrg The issuing core enterprise's organisation
    /// @param holder The supplier that holds the root part
    /// @param faceValue The face value, in fen
    /// @param maturity When the core enterprise pays (Unix seconds)
    /// @param currency ISO 4217 code as three ASCII bytes
    /// @param invoiceHash Hash of the invoice or contract the payable stems from
    /// @param lineOutstanding The core enterprise's outstanding vouchers after this one, in fen
    /// @param head The voucher's head after this step
    event VoucherIssued(
        bytes32 indexed voucherId,
        OrgId indexed coreOrg,
        address indexed holder,
        uint64 faceValue,
        uint64 maturity,
        bytes3 currency,
        bytes32 invoiceHash,
        uint64 lineOutstanding,
        bytes32 head
    );

    /// @notice Emitted when a holder splits its part and transfers a piece, once per new part
    /// The new part's number is `uint32(uint256(head))`, the head's low 32 bits; it is not repeated in the
    /// event (a data word a split cannot afford: it must cost no more than a ledger payment).
    /// @param voucherId The voucher
    /// @param parentPartId The part it was split from
    /// @param to The account that holds the new part
    /// @param amount The new part's face value, in fen
    /// @param head The voucher's head after this step; its low 32 bits are the new part's number
    event PartTransferred(
        bytes32 indexed voucherId,
        uint32 parentPartId,
        address indexed to,
        uint64 amount,
        bytes32 head
    );

    /// @notice Emitted when a part's holder asks a bank to finance (discount) the part
    /// @param voucherId The voucher
    /// @param partId The part offered
    /// @param bankOrg The bank asked
    /// @param discountRateBps The yearly discount rate asked, in basis points
    /// @param head The voucher's head after this step
    event FinancingRequested(
        bytes32 indexed voucherId,
        uint32 partId,
        OrgId indexed bankOrg,
        uint32 discountRateBps,
        bytes32 head
    );

    /// @notice Emitted when the asked bank accepts: it pays `paid` to the former holder and now holds the part
    /// @param voucherId The voucher
    /// @param partId The part financed
    /// @param bank The bank account that accepted and now holds the part
    /// @param seller The former holder, paid the discounted amount
    /// @param face The part's remaining face value discounted, in fen
    /// @param discountRateBps The yearly discount rate, in basis points
    /// @param discountDays Days from acceptance to maturity (a started day counts)
    /// @param interest face × rate × days / 360, half up to the fen
    /// @param paid face − interest, what the seller receives
    /// @param paymentRef Reference of the bank's payment
    /// @param head The voucher's head after this step
    event PartFinanced(
        bytes32 indexed voucherId,
        uint32 partId,
        address indexed bank,
        address seller,
        uint64 face,
        uint32 discountRateBps,
        uint32 discountDays,
        uint64 interest,
        uint64 paid,
        bytes32 paymentRef,
        bytes32 head
    );

    /// @notice Emitted when the core enterprise pays a part's remaining face value to its holder
    /// @param voucherId The voucher
    /// @param partId The part settled
    /// @param holder Who was paid
    /// @param amount What was paid, in fen
    /// @param paymentRef Reference of the core enterprise's payment
    /// @param head The voucher's head after this step
    event PartSettled(
        bytes32 indexed voucherId,
        uint32 partId,
        address indexed holder,
        uint64 amount,
        bytes32 paymentRef,
        bytes32 head
    );

    // ---------------------------------------------------------------- errors

    /// @notice Thrown when any write is sent while the ledger is paused
    error VoucherLedgerPaused();

    /// @notice Thrown when an id or hash that must be set is zero
    error VoucherZeroId();

    /// @notice Thrown when an account argument is the zero address
    error VoucherZeroAddress();

    /// @notice Thrown when an amount is zero
    error VoucherZeroAmount();

    /// @notice Thrown when a currency code is empty
    /// @param currency The code given
    error VoucherInvalidCurrency(bytes3 currency);

    /// @notice Thrown when the caller lacks the ledger role the action needs
    /// @param account The caller
    /// @param role The role it lacks (LENDER_ROLE or ENTERPRISE_ROLE)
    error VoucherMissingRole(address account, bytes32 role);

    /// @notice Thrown when an organisation is not registered on the ledger
    /// @param orgId The organisation named
    error VoucherOrganizationNotFound(OrgId orgId);

    /// @notice Thrown when a lender sets a line another bank granted ({setCreditLine})
    /// @param coreOrg The core enterprise
    /// @param bankOrg The bank that holds the line
    error CreditLineHeldByOtherBank(OrgId coreOrg, OrgId bankOrg);

    /// @notice Thrown when {setCreditLine} asks a limit below what is outstanding
    /// @param coreOrg The core enterprise
    /// @param outstanding Its outstanding vouchers, in fen
    /// @param limit The limit asked, in fen
    error CreditLineBelowOutstanding(OrgId coreOrg, uint64 outstanding, uint64 limit);

    /// @notice Thrown when {setCreditLine} gets an expiry that is not in the future
    /// @param expiry The expiry given
    /// @param nowTime The block's time
    error CreditLineExpiryInPast(uint64 expiry, uint256 nowTime);

    /// @notice Thrown when {issueVoucher} is called by an organisation without a credit line
    /// @param coreOrg The caller's organisation
    error CreditLineNotFound(OrgId coreOrg);

    /// @notice Thrown when {issueVoucher} is called after the line expired
    /// @param coreOrg The core enterprise
    /// @param expiry When its line expired
    error CreditLineExpired(OrgId coreOrg, uint64 expiry);

    /// @notice Thrown when {issueVoucher} would take outstanding + face value beyond the line
    /// @param coreOrg The core enterprise
    /// @param outstanding Its outstanding vouchers, in fen
    /// @param limit Its line, in fen
    /// @param faceValue The voucher's face value, in fen
    error CreditLineExceeded(OrgId coreOrg, uint64 outstanding, uint64 limit, uint64 faceValue);

    /// @notice Thrown when {issueVoucher} is given an id already taken
    /// @param voucherId The id
    error VoucherExists(bytes32 voucherId);

    /// @notice Thrown when no voucher has this id
    /// @param voucherId The id
    error VoucherNotFound(bytes32 voucherId);

    /// @notice Thrown when {issueVoucher} gets a maturity that is not in the future
    /// @param maturity The maturity given
    /// @param nowTime The block's time
    error VoucherMaturityInPast(uint64 maturity, uint256 nowTime);

    /// @notice Thrown when the voucher has no such part
    /// @param voucherId The voucher
    /// @param partId The part number
    error VoucherPartNotFound(bytes32 voucherId, uint32 partId);

    /// @notice Thrown when the caller does not hold the part
    /// @param voucherId The voucher
    /// @param partId The part
    /// @param account The caller
    error VoucherNotPartHolder(bytes32 voucherId, uint32 partId, address account);

    /// @notice Thrown when {splitTransfer}'s `to` and `amounts` differ in length, are empty or exceed MAX_SPLIT
    /// @param recipients How many recipients were given
    /// @param amounts How many amounts were given
    error VoucherBadSplit(uint256 recipients, uint256 amounts);

    /// @notice Thrown when a split's new part number (from its head) is 0 or already taken
    /// @param voucherId The voucher
    /// @param partId The number taken
    error VoucherPartIdTaken(bytes32 voucherId, uint32 partId);

    /// @notice Thrown when a split's pieces, or a financing, ask more than the part's remaining face value
    /// @param voucherId The voucher
    /// @param partId The part
    /// @param remaining What the part has left, in fen
    /// @param amount What was asked, in fen
    error VoucherInsufficientRemaining(bytes32 voucherId, uint32 partId, uint64 remaining, uint256 amount);

    /// @notice Thrown when the part is not in the state the action needs
    /// @param voucherId The voucher
    /// @param partId The part
    /// @param state The state it is in
    error VoucherPartWrongState(bytes32 voucherId, uint32 partId, PartState state);

    /// @notice Thrown when financing is asked or accepted at or after the voucher's maturity
    /// @param voucherId The voucher
    /// @param maturity Its maturity
    error VoucherMatured(bytes32 voucherId, uint64 maturity);

    /// @notice Thrown when {requestFinancing} asks a rate of zero or of 100 % or more
    /// @param discountRateBps The rate given
    error VoucherInvalidRate(uint32 discountRateBps);

    /// @notice Thrown when {acceptFinancing} is called by anyone but a lender of the bank asked
    /// @param voucherId The voucher
    /// @param partId The part
    /// @param account The caller
    error VoucherNotRequestedBank(bytes32 voucherId, uint32 partId, address account);

    /// @notice Thrown when {settle} is called by anyone but an enterprise account of the issuing core enterprise
    /// @param voucherId The voucher
    /// @param account The caller
    error VoucherNotCoreEnterprise(bytes32 voucherId, address account);

    /// @notice Thrown when {settle} is called before maturity: the core enterprise pays at maturity, not before
    /// @param voucherId The voucher
    /// @param maturity Its maturity
    /// @param nowTime The block's time
    error VoucherNotMatured(bytes32 voucherId, uint64 maturity, uint256 nowTime);

    /// @notice Thrown when {settle} finds the part has nothing left to pay (split away entirely)
    /// @param voucherId The voucher
    /// @param partId The part
    error VoucherNothingToSettle(bytes32 voucherId, uint32 partId);

    // ---------------------------------------------------------------- writes

    /// @notice A lender sets the credit line of core enterprise `coreOrg` (one line per core enterprise, kept
    /// by the bank that first granted it). Reverts {CreditLineBelowOutstanding} below what is outstanding.
    function setCreditLine(OrgId coreOrg, uint64 limit, uint64 expiry, bytes32 termsHash) external;

    /// @notice An enterprise account of a core enterprise with a live line issues a voucher (确权) to `holder`.
    function issueVoucher(
        bytes32 voucherId,
        address holder,
        uint64 faceValue,
        uint64 maturity,
        bytes3 currency,
        bytes32 invoiceHash
    ) external;

    /// @notice The holder of part `partId` splits off `amounts[i]` to `to[i]`, each a new part; the part keeps
    /// what is left. The new parts' numbers are in the `PartTransferred` events.
    function splitTransfer(bytes32 voucherId, uint32 partId, address[] calldata to, uint64[] calldata amounts) external;

    /// @notice The holder of a held part asks bank `bankOrg` to finance it at `discountRateBps` a year.
    function requestFinancing(bytes32 voucherId, uint32 partId, OrgId bankOrg, uint32 discountRateBps) external;

    /// @notice A lender of the bank asked accepts: the part passes to it at the discount (see the formula).
    function acceptFinancing(bytes32 voucherId, uint32 partId, bytes32 paymentRef) external;

    /// @notice An account of the issuing core enterprise pays the part's remaining face value at or after
    /// maturity to whoever holds it; that much of the line is freed.
    function settle(bytes32 voucherId, uint32 partId, bytes32 paymentRef) external;

    // ---------------------------------------------------------------- reads

    /// @notice The ledger whose identities and roles this contract uses.
    function ledger() external view returns (address);

    /// @notice The voucher's current head (zero for an unknown voucher).
    function headOf(bytes32 voucherId) external view returns (bytes32);

    /// @notice A voucher as kept on chain; reverts {VoucherNotFound}.
    function getVoucher(bytes32 voucherId) external view returns (VoucherView memory);

    /// @notice A part's holder, remaining face value and state; reverts {VoucherPartNotFound}.
    function getPart(
        bytes32 voucherId,
        uint32 partId
    ) external view returns (address holder, uint64 remaining, PartState state);

    /// @notice The bank and rate a part's holder asked (zero when none is pending).
    function financingRequestOf(
        bytes32 voucherId,
        uint32 partId
    ) external view returns (OrgId bankOrg, uint32 discountRateBps);

    /// @notice A core enterprise's credit line (all zero when it has none).
    function creditLineOf(OrgId coreOrg) external view returns (CreditLineView memory);
}
