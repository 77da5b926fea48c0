// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";

/// @title LeptonRoles
/// @notice The roles of a lepton-ledger deployment. They are granted in the PartnerRegistry and every other
/// contract asks it, so one place decides who is coordinator, auditor, registrar or admin.
library LeptonRoles {
    bytes32 internal constant ADMIN = 0x00; // OpenZeppelin's DEFAULT_ADMIN_ROLE
    bytes32 internal constant COORDINATOR = keccak256("COORDINATOR_ROLE");
    bytes32 internal constant AUDITOR = keccak256("AUDITOR_ROLE");
    bytes32 internal constant REGISTRAR = keccak256("REGISTRAR_ROLE");

    /// @notice Whether `account` holds `role` in `registry` (the deployment's PartnerRegistry).
    function has(address registry, bytes32 role, address account) internal view returns (bool) {
        return IAccessControl(registry).hasRole(role, account);
    }
}
