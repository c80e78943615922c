// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @notice A plain OpenZeppelin ERC-20, deployed only by the gas benchmark: its transfer to a new holder is
/// the yardstick the ledger's operations are quoted against (one new storage slot, like a new lot).
contract ReferenceToken is ERC20 {
    constructor(uint256 supply) ERC20("Reference", "REF") {
        _mint(msg.sender, supply);
    }
}
