// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title IAgreementRegistry
/// @notice Partner agreements: the terms a coordinator proposes, each party's signature on the exact version
/// in force, and the lifecycle Proposed -> Active -> Terminated.
/// @dev Trust model. The terms in force are always the last version that every party signed and staked for:
/// a version comes into force (and the agreement becomes Active) once every party has signed it and holds at
/// least its required stake in the reward vault. An amendment is a pending version that changes nothing
/// until then: rounds, payouts, caps, the end and the stakes keep following the version in force, and a party
/// that never signs the amendment keeps every right it has under that version, leaving at its end included.
/// An amendment never comes into force while a round is open or after a party has exited. Every version names
/// its coordinator, the only account that may act on the agreement (amend, terminate, run rounds), and its
/// arbiter, the only account that rules on challenges of it. The parties themselves never change: each party's
/// privacy budget is tied to its position in the agreement, and letting an amendment re-seat parties would let
/// a budget be reset.
interface IAgreementRegistry {
    enum PayoutRule {
        Proportional, // to positive contribution scores
        Equal,
        BySampleCount
    }

    enum AgreementStatus {
        None,
        Proposed,
        Active,
        Terminated
    }

    /// @dev Everything the parties sign. `epsilonCap` is fixed point with 1e6 = 1.0 (so at most 4294.967295);
    /// `delta` is fixed point with 1e18 = 1.0. `coordinator` alone acts on the agreement; `arbiter` alone rules
    /// on its challenges; `maxSampleCount` bounds the sample count of every update (its weight in FedAvg and
    /// under the by-sample-count payout rule); `coordinatorBond` is what the coordinator must hold posted in the
    /// results court before it may open a round, slashed to the parties when a challenge of its results is upheld.
    // Field order is part of the ABI and of hashTerms, which parties sign, so it is not re-packed for storage.
    // solhint-disable-next-line gas-struct-packing
    struct Terms {
        bytes32 termsDigest;
        address[] parties;
        address rewardToken;
        uint256 rewardPerRound;
        PayoutRule payoutRule;
        uint32 epsilonCap;
        uint64 delta;
        uint256 requiredStake;
        uint64 start;
        uint64 end;
        uint32 maxRounds;
        address coordinator;
        address arbiter;
        uint64 maxSampleCount;
        uint256 coordinatorBond;
    }

    /// @dev The state of an agreement beside its terms. `version` is the latest version (pending when above
    /// `activeVersion`), `signatures` and `termsHash` are that version's; `activeVersion` is the version in
    /// force (0 until the first activation) and `coordinator` the coordinator who acts on the agreement now.
    /// `epsilonCap` is the cap of the terms in force (of the proposal before the first activation) and
    /// `partyCount` the number of parties: copies kept in `coordinator`'s storage word, so that a batch reads
    /// the terms it needs from two words ({batchTerms}). `epsilonLaneBits` is the width of each party's lane
    /// in the round ledger's packed epsilon words, fixed at the proposal from its cap (see {epsilonLaneBitsFor}).
    struct AgreementState {
        AgreementStatus status;
        uint32 version;
        uint32 signatures;
        uint32 activeVersion;
        uint64 proposedAt;
        address coordinator;
        uint32 epsilonCap;
        uint16 partyCount;
        uint8 epsilonLaneBits;
        bytes32 termsHash;
    }

    /// @dev What the round ledger needs on every call, without the party list.
    struct RoundConfig {
        AgreementStatus status;
        uint32 version;
        uint32 partyCount;
        uint32 epsilonCap;
        uint32 maxRounds;
        uint64 start;
        uint64 end;
        uint256 rewardPerRound;
        address rewardToken;
        address coordinator;
        address arbiter;
        uint64 maxSampleCount;
        uint8 epsilonLaneBits;
    }

    error AgreementRegistryUnknownAgreement(uint256 agreementId);
    error AgreementRegistryUnknownVersion(uint256 agreementId, uint32 version);
    error AgreementRegistryNoParties();
    error AgreementRegistryTooManyParties(uint256 count, uint256 max);
    error AgreementRegistryZeroParty(uint256 index);
    error AgreementRegistryDuplicateParty(address party);
    error AgreementRegistryZeroTermsDigest();
    error AgreementRegistryZeroRewardToken();
    error AgreementRegistryZeroEpsilonCap();
    error AgreementRegistryEpsilonCapOverLanes(uint32 epsilonCap, uint32 max);
    /// @dev delta must lie strictly between 0 and 1 (1e18).
    error AgreementRegistryInvalidDelta(uint64 delta);
    error AgreementRegistryInvalidPeriod(uint64 start, uint64 end);
    error AgreementRegistryZeroMaxRounds();
    error AgreementRegistryZeroMaxSampleCount();
    error AgreementRegistryZeroArbiter();
    /// @dev The coordinator named in the terms must hold the coordinator role (and, at proposal, be the caller).
    error AgreementRegistryInvalidCoordinator(address coordinator);
    /// @dev Only the agreement's own coordinator (of the version in force) may do this.
    error AgreementRegistryNotAgreementCoordinator(uint256 agreementId, address account);
    /// @dev The agreement has no pending version to sign: its latest version is already in force.
    error AgreementRegistryNothingToSign(uint256 agreementId);
    /// @dev A party that has exited cannot sign a new version.
    error AgreementRegistryPartyExited(uint256 agreementId, address party);
    /// @dev An amendment must keep the parties, in the same order.
    error AgreementRegistryPartiesChanged(uint256 agreementId);
    /// @dev An amendment must keep the reward token: the vault's books are in it.
    error AgreementRegistryRewardTokenChanged(uint256 agreementId);
    error AgreementRegistryNotParty(uint256 agreementId, address account);
    error AgreementRegistryPartnerNotApproved(address partner);
    error AgreementRegistryInvalidStatus(uint256 agreementId, AgreementStatus status);
    error AgreementRegistryAlreadySigned(uint256 agreementId, uint32 version, address party);
    error AgreementRegistryExpiredSignature(uint256 deadline);
    error AgreementRegistryInvalidSignature(address party);
    error AgreementRegistryAgreementEnded(uint256 agreementId, uint64 end);
    error AgreementRegistryNotEnded(uint256 agreementId, uint64 end);
    error AgreementRegistryAlreadyExited(uint256 agreementId, address party);
    error AgreementRegistryVaultAlreadySet(address vault);
    error AgreementRegistryZeroVault();
    error AgreementRegistryNotCoordinator(address account);
    error AgreementRegistryNotAdmin(address account);

    /// @notice Emitted once, when the admin binds the reward vault.
    event VaultSet(address indexed vault);
    /// @notice Emitted for a new agreement; the full terms are in the event so that indexers need no extra call.
    event AgreementProposed(uint256 indexed agreementId, address indexed coordinator, bytes32 termsHash, Terms terms);
    /// @notice Emitted for an amendment: `version` is the new, pending version, whose signatures start from zero.
    event AgreementAmended(uint256 indexed agreementId, uint32 version, bytes32 termsHash, Terms terms);
    /// @notice Emitted when `party` signs `version`; `relayed` when the signature came through {signBySig}.
    event AgreementSigned(uint256 indexed agreementId, uint32 version, address indexed party, bool relayed);
    /// @notice Emitted when `version` comes into force: every party has signed it and staked enough.
    event AgreementActivated(uint256 indexed agreementId, uint32 version);
    /// @notice Emitted when a coordinator terminates the agreement; `reasonDigest` commits to the published reason.
    event AgreementTerminated(uint256 indexed agreementId, address indexed coordinator, bytes32 reasonDigest);
    /// @notice Emitted when `party` leaves the agreement after its end.
    event PartyExited(uint256 indexed agreementId, address indexed party);

    /// @notice Binds the reward vault whose stakes gate activation. Once only.
    /// Requirements: the caller has the admin role; no vault was set; `vault` is non-zero.
    /// Emits {VaultSet}.
    function setVault(address vault) external;

    /// @notice Proposes a new agreement. Returns its id (ids start at 1).
    /// Requirements: the caller has the coordinator role and is the terms' coordinator; the terms are well
    /// formed (each refusal names the offending field).
    /// Emits {AgreementProposed}.
    function propose(Terms calldata terms) external returns (uint256 agreementId);

    /// @notice Proposes a new version of a Proposed or Active agreement's terms, replacing any earlier pending
    /// version. It changes nothing in force: it comes into force when every party has signed and staked for it.
    /// Requirements: the caller is the agreement's coordinator; the agreement is not Terminated; the parties are
    /// unchanged, and so is the reward token; the new coordinator holds the coordinator role; the terms are
    /// well formed; the epsilon cap fits the agreement's epsilon lanes ({epsilonLaneBitsFor} of the proposal).
    /// Emits {AgreementAmended}.
    function amend(uint256 agreementId, Terms calldata terms) external;

    /// @notice The caller signs the latest (pending) version of `agreementId`.
    /// Requirements: the agreement is not Terminated and has a pending version, not past that version's end;
    /// the caller is a party that has not exited, an approved partner, and has not signed this version.
    /// Emits {AgreementSigned}, and {AgreementActivated} when this completes activation.
    function sign(uint256 agreementId) external;

    /// @notice Records `party`'s EIP-712 signature of the current version; anyone may relay it. Smart-wallet
    /// parties sign through ERC-1271.
    /// Requirements: as {sign}, plus `deadline` has not passed and `signature` is `party`'s signature of
    /// `SignAgreement(agreementId, version, termsHash, party, nonces(party), deadline)` under this contract's
    /// domain (which binds the chain id). The nonce is consumed.
    /// Emits {AgreementSigned}, and {AgreementActivated} when this completes activation.
    function signBySig(uint256 agreementId, address party, uint256 deadline, bytes calldata signature) external;

    /// @notice Brings the pending version into force if every party has signed it and staked enough, no round
    /// is open and no party has exited. Anyone may call it; returns whether the latest version is in force.
    /// Emits {AgreementActivated} when it brings a version into force.
    function tryActivate(uint256 agreementId) external returns (bool active);

    /// @notice Ends the agreement for good: no new rounds; stakes become withdrawable once disputes clear.
    /// Requirements: the caller is the agreement's coordinator; the agreement is Proposed or Active.
    /// Emits {AgreementTerminated}.
    function terminate(uint256 agreementId, bytes32 reasonDigest) external;

    /// @notice The caller, a party, leaves the agreement after the end of the terms in force, which frees its
    /// stake once disputes clear. No later version can come into force after that.
    /// Requirements: the end of the version in force has passed; the caller is a party that has not exited.
    /// Emits {PartyExited}.
    function exit(uint256 agreementId) external;

    /// @notice The reward vault whose stakes gate activation; zero until {setVault}.
    function vault() external view returns (address);
    /// @notice How many agreements were proposed; ids run from 1 to this.
    function agreementCount() external view returns (uint256);
    /// @notice The terms in force of `agreementId` (version 1, the proposal, before the first activation).
    /// Reverts for an unknown agreement.
    function terms(uint256 agreementId) external view returns (Terms memory);
    /// @notice Version `version` of the terms of `agreementId`, in force, pending or superseded. Reverts for an
    /// unknown agreement or version.
    function termsAt(uint256 agreementId, uint32 version) external view returns (Terms memory);
    /// @notice Status, version, signature count and terms hash of `agreementId`. Reverts for an unknown agreement.
    function agreementState(uint256 agreementId) external view returns (AgreementState memory);
    /// @notice What the round ledger and the vault need of the terms in force of `agreementId`, without the
    /// party list; status None when the agreement is unknown.
    function roundConfig(uint256 agreementId) external view returns (RoundConfig memory);
    /// @notice The coordinator of the terms in force of `agreementId` (of the proposal before the first
    /// activation) and the bond those terms require it to hold posted; zeros for an unknown agreement. Apart from
    /// {roundConfig} so that only the opening of a round pays for reading the bond.
    function coordinatorBondOf(uint256 agreementId) external view returns (address coordinator, uint256 bond);
    /// @notice As {roundConfig}, for version `version` of the terms (what a round opened on that version runs by).
    function roundConfigAt(uint256 agreementId, uint32 version) external view returns (RoundConfig memory);
    /// @notice What a single submission needs, in one call: the agreement's status, whether `account` is a
    /// party and its position, the epsilon cap and sample-count bound of the terms in force, and the width of
    /// the agreement's epsilon lanes.
    function submissionTerms(uint256 agreementId, address account)
        external
        view
        returns (
            AgreementStatus status,
            bool isParty,
            uint256 index,
            uint32 epsilonCap,
            uint64 maxSampleCount,
            uint8 epsilonLaneBits
        );
    /// @notice Whether `account` is a party, and its position in the party list.
    function partyIndex(uint256 agreementId, address account) external view returns (bool isParty, uint256 index);
    /// @notice What the round ledger checks a batch against, and nothing more: the status, and the coordinator,
    /// party count and epsilon cap of the terms in force, with the width of the epsilon lanes. {roundConfig}
    /// reads eight storage words, this two (a batch's per-update cost is what its reads are kept small for).
    function batchTerms(uint256 agreementId)
        external
        view
        returns (
            AgreementStatus status,
            address coordinator,
            uint32 partyCount,
            uint32 epsilonCap,
            uint8 epsilonLaneBits
        );

    /// @notice The width in bits of each party's epsilon lane in the round ledger for an agreement proposed with
    /// `epsilonCap`: 24 (ten lanes to a storage word) when the cap fits 24 bits (up to 16.777215 at 1e6 = 1.0),
    /// else 32 (eight lanes). Fewer words per batch is most of what a batch spends. An amendment's cap must fit
    /// the width chosen at the proposal.
    function epsilonLaneBitsFor(uint32 epsilonCap) external pure returns (uint8);

    /// @notice The partner registry's suspension count ({IPartnerRegistry-suspensionCount}) when the agreement
    /// was proposed. Every party signs after that, and signing needs approval, so a party suspended now was
    /// suspended at this position of the log or later: the round ledger reads the log from here.
    function suspensionLogStart(uint256 agreementId) external view returns (uint256);

    /// @notice The party at `index` of the party list; reverts when `index` is out of range.
    function partyAt(uint256 agreementId, uint256 index) external view returns (address);
    /// @notice Whether `party` has signed `version` of `agreementId`.
    function hasSigned(uint256 agreementId, uint32 version, address party) external view returns (bool);
    /// @notice Whether `party` has left `agreementId` through {exit}.
    function hasExited(uint256 agreementId, address party) external view returns (bool);
    /// @notice The first party that still lacks a signature or stake for the latest version, or address(0)
    /// when none does.
    function pendingParty(uint256 agreementId) external view returns (address party, bool needsSignature);
    /// @notice The hash of `terms` that signatures bind to.
    function hashTerms(Terms calldata terms) external pure returns (bytes32);
    /// @notice The EIP-712 digest `party` signs to sign the latest version of `agreementId` with `deadline`.
    function signingDigest(uint256 agreementId, address party, uint256 deadline) external view returns (bytes32);
}
