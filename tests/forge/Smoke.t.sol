// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {Fixture} from "./utils/Fixture.sol";
import {IAgreementRegistry} from "../../interfaces/IAgreementRegistry.sol";

contract SmokeTest is Fixture {
    function test_activeAgreement() public {
        (uint256 id,) = activeAgreement(3, 1000e18);
        assertTrue(agreements.agreementState(id).status == IAgreementRegistry.AgreementStatus.Active, "active");
    }
}
