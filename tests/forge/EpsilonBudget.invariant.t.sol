// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {TestBase} from "./utils/Vm.sol";
import {AgreementFixture} from "./utils/AgreementFixture.sol";
import {PartnerRegistry} from "../../contracts/PartnerRegistry.sol";
import {AgreementRegistry} from "../../contracts/AgreementRegistry.sol";
import {RoundLedger} from "../../contracts/RoundLedger.sol";
import {RewardVault} from "../../contracts/RewardVault.sol";
import {LeptonToken} from "../../contracts/LeptonToken.sol";
import {IAgreementRegistry} from "../../interfaces/IAgreementRegistry.sol";
import {IRoundLedger} from "../../interfaces/IRoundLedger.sol";

/// @dev Drives random sequences of submissions, batches (some malformed), rounds, time, amendments (new caps and
/// stakes, then re-signatures and top-ups), suspensions and reinstatements over two agreements that share
/// partners at different positions.
///
/// It keeps a model of the privacy budget (ghost variables) and, before every submitUpdate or commitBatch,
/// predicts from the model alone whether the ledger must accept it, or which errors it may refuse it with (the
/// exact error data: selector and arguments). The ledger's answer is compared with the prediction, and so is
/// the registry's activation after re-signing and re-staking; any disagreement is recorded (a handler that
/// reverted would be ignored under `fail_on_revert = false`) and fails `invariant_privacyBudget`.
contract EpsilonBudgetHandler is TestBase {
    uint32 internal constant EPSILON_ONE = 1e6;

    PartnerRegistry internal immutable partners;
    AgreementRegistry internal immutable agreements;
    RoundLedger internal immutable ledger;
    RewardVault internal immutable vault;
    LeptonToken internal immutable token;
    address internal immutable coordinator;
    address internal immutable admin;

    uint256[] internal ids;
    /// @dev The parties of each agreement (amendments cannot change them).
    mapping(uint256 id => address[]) internal _parties;
    /// @dev Every partner that is a party of some agreement.
    address[] internal everyone;

    /// @dev The handler's own clock, restored at the start of every action, so that time does not depend on
    /// whether forge carries a `vm.warp` over from one call of the sequence to the next.
    uint256 public clock;
    /// @dev The agreement the current action works on.
    uint256 internal _lastId;

    /*//////////////////////////////////////////////////////////////
                                 GHOSTS
    //////////////////////////////////////////////////////////////*/

    /// @dev The epsilonCap of the version in force (the proposal's, then each amendment's once in force).
    mapping(uint256 id => uint32) public capInForce;
    /// @dev The epsilonCap of the latest version, in force or pending.
    mapping(uint256 id => uint32) public latestCap;
    /// @dev The largest cap the agreement ever had.
    mapping(uint256 id => uint32) public maxCapEver;
    /// @dev Cumulative epsilon of each party as accepted by the model.
    mapping(uint256 id => mapping(address party => uint32)) public ghostEpsilon;
    /// @dev The cap in force when the party's current cumulative epsilon was accepted.
    mapping(uint256 id => mapping(address party => uint32)) public capAtCommit;
    mapping(uint256 id => mapping(uint64 round => mapping(address party => bool))) internal _submitted;
    /// @dev The on-chain cumulative epsilons as observed after the previous action.
    mapping(uint256 id => mapping(address party => uint32)) internal _lastSeen;

    uint256 public mismatches;
    string public firstMismatch;
    uint256 public decreases;

    /*//////////////////////////////////////////////////////////////
                                COUNTERS
    //////////////////////////////////////////////////////////////*/

    uint256 public calls;
    uint256 public acceptedSubmissions;
    uint256 public acceptedBatches;
    uint256 public acceptedAtCap;
    uint256 public refusedOverCap;
    uint256 public refusedNotIncreasing;
    uint256 public refusedOverLoweredCap;
    uint256 public amendments;
    uint256 public reactivations;
    uint256 public roundsOpened;
    uint256 public roundsFinalized;

    constructor(
        PartnerRegistry partners_,
        AgreementRegistry agreements_,
        RoundLedger ledger_,
        RewardVault vault_,
        LeptonToken token_,
        address coordinator_,
        address admin_,
        uint256[] memory ids_
    ) {
        partners = partners_;
        agreements = agreements_;
        ledger = ledger_;
        vault = vault_;
        token = token_;
        coordinator = coordinator_;
        admin = admin_;
        ids = ids_;
        clock = block.timestamp;
        for (uint256 k; k < ids_.length; ++k) {
            uint32 cap = agreements_.terms(ids_[k]).epsilonCap;
            capInForce[ids_[k]] = cap;
            latestCap[ids_[k]] = cap;
            maxCapEver[ids_[k]] = cap;
            address[] memory parties = agreements_.terms(ids_[k]).parties;
            _parties[ids_[k]] = parties;
            for (uint256 i; i < parties.length; ++i) {
                bool known;
                for (uint256 j; j < everyone.length; ++j) {
                    if (everyone[j] == parties[i]) known = true;
                }
                if (!known) everyone.push(parties[i]);
            }
        }
    }

    modifier step() {
        ++calls;
        vm.warp(clock);
        _;
        _observe();
    }

    /*//////////////////////////////////////////////////////////////
                                ACTIONS
    //////////////////////////////////////////////////////////////*/

    function submitUpdate(uint256 agreementSeed, uint256 partySeed, uint256 epsilonSeed) external step {
        uint256 id = _pickAgreement(agreementSeed);
        _prepare(id, agreementSeed >> 8);
        address[] memory parties = _parties[id];
        uint64 roundId = _targetRound(id);
        address party = _chooseParty(id, roundId, parties, partySeed);
        uint32 epsilon = _chooseEpsilon(id, party, epsilonSeed);

        bytes[] memory expected = new bytes[](4);
        expected[0] = _expectedRoundError(id, roundId);
        uint256 n = expected[0].length != 0 ? 1 : _appendEntryErrors(id, roundId, party, epsilon, expected, 0);
        _truncate(expected, n);

        vm.prank(party);
        try ledger.submitUpdate(id, roundId, keccak256("envelope"), keccak256("manifest"), epsilon, 1) {
            if (n != 0) return _mismatch("submitUpdate accepted what the model refuses", expected[0], "");
            _accept(id, roundId, party, epsilon);
            ++acceptedSubmissions;
        } catch (bytes memory err) {
            _compareRefusal("submitUpdate", expected, err);
        }
    }

    function commitBatch(uint256 agreementSeed, uint256 mask, uint256 epsilonSeed, uint256 corruption) external step {
        uint256 id = _pickAgreement(agreementSeed);
        _prepare(id, agreementSeed >> 8);
        address[] memory parties = _parties[id];
        uint64 roundId = _targetRound(id);

        (uint256[] memory indexes, uint32[] memory epsilons) = _chooseEntries(id, roundId, parties, mask, epsilonSeed);
        (indexes, epsilons) = _corrupt(indexes, epsilons, parties.length, corruption);
        bytes memory entries;
        for (uint256 k; k < indexes.length; ++k) {
            entries = bytes.concat(entries, abi.encodePacked(uint16(indexes[k]), epsilons[k]));
        }
        if (corruption % 16 == 5) entries = bytes.concat(entries, hex"00"); // not a whole number of entries

        bytes[] memory expected = new bytes[](1);
        expected[0] = _expectedRoundError(id, roundId);
        if (expected[0].length == 0) {
            expected = _expectedBatchErrors(id, roundId, parties, indexes, epsilons, entries);
        }

        vm.prank(coordinator);
        try ledger.commitBatch(id, roundId, keccak256("root"), keccak256("document"), entries) {
            if (expected.length != 0) {
                return _mismatch("commitBatch accepted what the model refuses", expected[0], "");
            }
            for (uint256 k; k < indexes.length; ++k) {
                // An entry whose party submitted already was skipped; nothing of it is accepted.
                if (!_submitted[id][roundId][parties[indexes[k]]]) _accept(id, roundId, parties[indexes[k]], epsilons[k]);
            }
            ++acceptedBatches;
        } catch (bytes memory err) {
            _compareRefusal("commitBatch", expected, err);
        }
    }

    function openRound(uint256 agreementSeed, uint256 lengthSeed) external step {
        _openRound(_pickAgreement(agreementSeed), lengthSeed);
    }

    /// @dev Finalizes the open round, first waiting for its deadline unless every party has submitted.
    function finalizeRound(uint256 agreementSeed) external step {
        uint256 id = _pickAgreement(agreementSeed);
        uint64 roundId = ledger.openRoundOf(id);
        if (roundId == 0) return;
        IRoundLedger.Round memory r = ledger.round(id, roundId);
        if (r.submissions < _parties[id].length && clock <= r.deadline) _setClock(r.deadline + 1);
        _finalizeRound(id, roundId);
    }

    function warp(uint256 secondsSeed) external step {
        _setClock(clock + bound(secondsSeed, 1, 1 days));
    }

    /// @dev Amends the cap to a random value, often one next to what some party has already spent (even below
    /// it); one time in four also raises the required stake, one in eight halves it. Then, three times in four,
    /// every approved party signs the new version and tops its stake up.
    function amend(uint256 agreementSeed, uint256 capSeed) external step {
        bool resign = capSeed % 4 != 0;
        uint256 stakeMode = (capSeed >> 2) & 7;
        capSeed >>= 5;
        uint256 id = _pickAgreement(agreementSeed);
        IAgreementRegistry.Terms memory t = agreements.terms(id);
        t.epsilonCap = _chooseCap(id, t.parties, capSeed);
        if (stakeMode < 2) t.requiredStake += 100e18;
        else if (stakeMode == 2) t.requiredStake /= 2;
        t.termsDigest = keccak256(abi.encode("amended", amendments));
        vm.prank(coordinator);
        try agreements.amend(id, t) {
            ++amendments;
            latestCap[id] = t.epsilonCap; // pending: the cap in force changes only once every party signed
            if (t.epsilonCap > maxCapEver[id]) maxCapEver[id] = t.epsilonCap;
        } catch {
            return;
        }
        if (resign && _signAndStakePending(id)) ++reactivations;
    }

    function suspend(uint256 partySeed) external step {
        vm.prank(coordinator);
        try partners.suspend(everyone[partySeed % everyone.length], keccak256("reason")) {} catch {}
    }

    /// @dev Reinstates every suspended partner (as often called as {suspend}, so that few stay suspended long),
    /// and lets them sign the versions they missed.
    function approveSuspended() external step {
        for (uint256 i; i < everyone.length; ++i) {
            if (partners.isApproved(everyone[i])) continue;
            vm.prank(coordinator);
            partners.approve(everyone[i]);
        }
        for (uint256 k; k < ids.length; ++k) {
            if (_signAndStakePending(ids[k])) ++reactivations;
        }
    }

    /*//////////////////////////////////////////////////////////////
                          VIEWS FOR INVARIANTS
    //////////////////////////////////////////////////////////////*/

    function agreementIds() external view returns (uint256[] memory) {
        return ids;
    }

    function partiesOf(uint256 id) external view returns (address[] memory) {
        return _parties[id];
    }

    /*//////////////////////////////////////////////////////////////
                                 MODEL
    //////////////////////////////////////////////////////////////*/

    /// @dev The error the ledger must give before looking at any entry, or nothing when it must go on.
    function _expectedRoundError(uint256 id, uint64 roundId) internal view returns (bytes memory) {
        if (agreements.agreementState(id).status != IAgreementRegistry.AgreementStatus.Active) {
            return abi.encodeWithSelector(IRoundLedger.RoundLedgerAgreementNotActive.selector, id);
        }
        if (ledger.roundCount(id) < roundId) {
            return abi.encodeWithSelector(IRoundLedger.RoundLedgerUnknownRound.selector, id, roundId);
        }
        IRoundLedger.Round memory r = ledger.round(id, roundId);
        if (r.status != IRoundLedger.RoundStatus.Open) {
            return abi.encodeWithSelector(IRoundLedger.RoundLedgerRoundNotOpen.selector, id, roundId);
        }
        if (clock > r.deadline) {
            return abi.encodeWithSelector(IRoundLedger.RoundLedgerDeadlinePassed.selector, id, roundId, r.deadline);
        }
        return "";
    }

    /// @dev Appends to `errors` (from position `n`) every error the ledger may give for `party` committing
    /// `epsilon`, and returns the new count; none means the ledger must accept it. An entry can fail several
    /// checks at once (a suspended party over its cap); the ledger may report any one of them.
    function _appendEntryErrors(
        uint256 id,
        uint64 roundId,
        address party,
        uint32 epsilon,
        bytes[] memory errors,
        uint256 n
    ) internal view returns (uint256) {
        if (!partners.isApproved(party)) {
            errors[n++] = abi.encodeWithSelector(IRoundLedger.RoundLedgerPartnerNotApproved.selector, party);
        }
        if (_submitted[id][roundId][party]) {
            errors[n++] = abi.encodeWithSelector(IRoundLedger.RoundLedgerAlreadySubmitted.selector, id, roundId, party);
        }
        uint32 previous = ghostEpsilon[id][party];
        if (epsilon <= previous) {
            errors[n++] =
                abi.encodeWithSelector(IRoundLedger.RoundLedgerEpsilonNotIncreasing.selector, party, previous, epsilon);
        }
        uint32 cap = capInForce[id];
        if (epsilon > cap) {
            errors[n++] = abi.encodeWithSelector(IRoundLedger.RoundLedgerBudgetExceeded.selector, party, epsilon, cap);
        }
        return n;
    }

    /// @dev Shortens `errors` to its first `n` elements, in place.
    function _truncate(bytes[] memory errors, uint256 n) internal pure {
        assembly ("memory-safe") {
            mstore(errors, n)
        }
    }

    /// @dev Every error the ledger may legitimately give for this batch: the entries' shape errors and each
    /// failing entry's own error. Which one comes first is the ledger's business (it checks the whole batch in
    /// passes of its choosing); that it refuses exactly when this list is non-empty, with one of them, is not.
    function _expectedBatchErrors(
        uint256 id,
        uint64 roundId,
        address[] memory parties,
        uint256[] memory indexes,
        uint32[] memory epsilons,
        bytes memory entries
    ) internal view returns (bytes[] memory errors) {
        errors = new bytes[](5 * indexes.length + 2);
        uint256 n;
        uint256 skippedCount;
        if (entries.length == 0) {
            errors[n++] = abi.encodeWithSelector(IRoundLedger.RoundLedgerEmptyBatch.selector);
        } else if (entries.length % 6 != 0) {
            errors[n++] = abi.encodeWithSelector(IRoundLedger.RoundLedgerMalformedEntries.selector, entries.length);
        } else {
            uint256 nextMinIndex;
            for (uint256 k; k < indexes.length; ++k) {
                uint256 index = indexes[k];
                if (index < nextMinIndex) {
                    errors[n++] = abi.encodeWithSelector(IRoundLedger.RoundLedgerUnsortedEntries.selector, k);
                }
                if (index >= parties.length) {
                    errors[n++] = abi.encodeWithSelector(
                        IRoundLedger.RoundLedgerPartyIndexOutOfRange.selector, index, parties.length
                    );
                } else if (_submitted[id][roundId][parties[index]]) {
                    // Skipped, not refused: only the suspension pass, which runs before the walk, still sees it.
                    ++skippedCount;
                    if (!partners.isApproved(parties[index])) {
                        errors[n++] =
                            abi.encodeWithSelector(IRoundLedger.RoundLedgerPartnerNotApproved.selector, parties[index]);
                    }
                } else {
                    n = _appendEntryErrors(id, roundId, parties[index], epsilons[k], errors, n);
                }
                nextMinIndex = index + 1;
            }
            if (n == 0 && skippedCount == indexes.length) {
                address last = parties[indexes[indexes.length - 1]];
                errors[n++] =
                    abi.encodeWithSelector(IRoundLedger.RoundLedgerAlreadySubmitted.selector, id, roundId, last);
            }
        }
        _truncate(errors, n);
    }

    function _accept(uint256 id, uint64 roundId, address party, uint32 epsilon) internal {
        _submitted[id][roundId][party] = true;
        ghostEpsilon[id][party] = epsilon;
        capAtCommit[id][party] = capInForce[id];
        if (epsilon == capInForce[id]) ++acceptedAtCap;
    }

    /// @dev The ledger refused with `err`: the model must have expected a refusal, with one of `expected`.
    function _compareRefusal(string memory what, bytes[] memory expected, bytes memory err) internal {
        if (expected.length == 0) return _mismatch(string.concat(what, " refused what the model accepts"), "", err);
        bool listed;
        for (uint256 k; k < expected.length; ++k) {
            if (keccak256(err) == keccak256(expected[k])) listed = true;
        }
        if (!listed) {
            return _mismatch(string.concat(what, " refused with an error the model does not expect"), expected[0], err);
        }
        bytes4 selector = bytes4(err);
        if (selector == IRoundLedger.RoundLedgerBudgetExceeded.selector) {
            ++refusedOverCap;
            if (capInForce[_lastId] < maxCapEver[_lastId]) ++refusedOverLoweredCap;
        } else if (selector == IRoundLedger.RoundLedgerEpsilonNotIncreasing.selector) {
            ++refusedNotIncreasing;
        }
    }

    function _mismatch(string memory what, bytes memory expected, bytes memory actual) internal {
        if (mismatches++ == 0) {
            firstMismatch = string.concat(
                what, " | expected 0x", _hex(expected), " | actual 0x", _hex(actual), " | clock ", _dec(clock)
            );
        }
    }

    /// @dev After every action: the on-chain cumulative epsilons never went down.
    function _observe() internal {
        for (uint256 k; k < ids.length; ++k) {
            uint256 id = ids[k];
            address[] memory parties = _parties[id];
            for (uint256 i; i < parties.length; ++i) {
                uint32 seen = ledger.cumulativeEpsilon(id, parties[i]);
                if (seen < _lastSeen[id][parties[i]]) ++decreases;
                _lastSeen[id][parties[i]] = seen;
            }
        }
    }

    /*//////////////////////////////////////////////////////////////
                                CHOICES
    //////////////////////////////////////////////////////////////*/

    function _pickAgreement(uint256 seed) internal returns (uint256 id) {
        id = ids[seed % ids.length];
        _lastId = id;
    }

    /// @dev Seven times in eight, gets the agreement ready to take commitments, as a coordinator keeping rounds
    /// going would: pending signatures are collected, a round that expired or is complete is finalized, a round
    /// is opened.
    /// The eighth time, the commitment meets the agreement as it is (Proposed, no round, deadline passed).
    function _prepare(uint256 id, uint256 seed) internal {
        if (seed % 8 == 0) return;
        if (_signAndStakePending(id)) ++reactivations;
        if (agreements.agreementState(id).status != IAgreementRegistry.AgreementStatus.Active) return;
        uint64 roundId = ledger.openRoundOf(id);
        if (roundId != 0) {
            IRoundLedger.Round memory r = ledger.round(id, roundId);
            if (clock > r.deadline || r.submissions == _parties[id].length) {
                _finalizeRound(id, roundId);
                roundId = 0;
            }
        }
        if (roundId == 0) _openRound(id, seed >> 3);
    }

    function _openRound(uint256 id, uint256 lengthSeed) internal {
        uint64 deadline = uint64(clock + bound(lengthSeed, 1 hours, 3 days));
        vm.prank(coordinator);
        try ledger.openRound(id, keccak256("model"), deadline, keccak256("eval")) {
            ++roundsOpened;
        } catch {}
    }

    function _finalizeRound(uint256 id, uint64 roundId) internal {
        vm.prank(coordinator);
        try ledger.finalizeRound(id, roundId, keccak256("aggregate"), keccak256("report"), bytes32(0), 0) {
            ++roundsFinalized;
        } catch {}
    }

    /// @dev A party that has not hit its cap may still commit in this round: approved, not yet submitted.
    function _eligible(uint256 id, uint64 roundId, address party) internal view returns (bool) {
        return !_submitted[id][roundId][party] && ghostEpsilon[id][party] < capInForce[id] && partners.isApproved(party);
    }

    /// @dev Three times in four a party that may still commit, if there is one; otherwise any party.
    function _chooseParty(uint256 id, uint64 roundId, address[] memory parties, uint256 seed)
        internal
        view
        returns (address)
    {
        uint256 n = parties.length;
        if (seed % 4 != 0) {
            for (uint256 k; k < n; ++k) {
                address candidate = parties[(seed / 4 + k) % n];
                if (_eligible(id, roundId, candidate)) return candidate;
            }
        }
        return parties[(seed / 4) % n];
    }

    /// @dev Mostly the open round; otherwise the latest (closed) one, or round 1 before any round exists.
    function _targetRound(uint256 id) internal view returns (uint64) {
        uint64 open = ledger.openRoundOf(id);
        if (open != 0) return open;
        uint64 count = ledger.roundCount(id);
        return count == 0 ? 1 : count;
    }

    /// @dev Values around the two boundaries that matter: the party's previous value and the cap in force.
    function _chooseEpsilon(uint256 id, address party, uint256 seed) internal view returns (uint32) {
        uint256 previous = ghostEpsilon[id][party];
        uint256 cap = capInForce[id];
        uint256 mode = seed % 16;
        uint256 value;
        if (mode < 6) value = previous + bound(seed >> 8, 1, EPSILON_ONE); // an ordinary step up
        else if (mode < 8) value = previous + 1;
        else if (mode < 10) value = cap;
        else if (mode == 10) value = cap + 1;
        else if (mode == 11) value = previous;
        else if (mode == 12) value = previous == 0 ? 0 : previous - 1;
        else if (mode == 13) value = uint32(seed >> 8);
        else value = (previous + cap + 1) / 2;
        return value > type(uint32).max ? type(uint32).max : uint32(value);
    }

    /// @dev Half the batches are well behaved: only parties that may still commit in this round, each a step
    /// up, so that whole batches pass often enough to matter. The other half take any parties and pick every
    /// entry's value around the boundaries.
    function _chooseEntries(uint256 id, uint64 roundId, address[] memory parties, uint256 mask, uint256 seed)
        internal
        view
        returns (uint256[] memory indexes, uint32[] memory epsilons)
    {
        uint256 n = parties.length;
        mask &= (1 << n) - 1;
        if (seed % 2 == 0) {
            for (uint256 i; i < n; ++i) {
                if (!_eligible(id, roundId, parties[i])) mask &= ~(1 << i);
            }
        }
        if (mask == 0) mask = 1 << (seed % n);
        uint256 count;
        for (uint256 i; i < n; ++i) {
            if ((mask >> i) & 1 == 1) ++count;
        }
        indexes = new uint256[](count);
        epsilons = new uint32[](count);
        uint256 k;
        for (uint256 i; i < n; ++i) {
            if ((mask >> i) & 1 == 0) continue;
            indexes[k] = i;
            uint256 s = uint256(keccak256(abi.encode(seed, i)));
            epsilons[k] = _chooseEpsilon(id, parties[i], seed % 2 == 0 ? (s << 8) : s);
            ++k;
        }
    }

    /// @dev One time in four, breaks the batch's shape: swapped entries, a duplicate, an index out of range,
    /// no entries at all (the trailing byte is added by the caller).
    function _corrupt(uint256[] memory indexes, uint32[] memory epsilons, uint256 partyCount, uint256 corruption)
        internal
        pure
        returns (uint256[] memory, uint32[] memory)
    {
        uint256 mode = corruption % 16;
        uint256 n = indexes.length;
        if (mode == 1 && n >= 2) {
            (indexes[0], indexes[1]) = (indexes[1], indexes[0]);
        } else if (mode == 2 && n >= 2) {
            indexes[1] = indexes[0];
        } else if (mode == 3) {
            indexes[n - 1] = partyCount + (corruption >> 8) % 4;
        } else if (mode == 4) {
            return (new uint256[](0), new uint32[](0));
        }
        return (indexes, epsilons);
    }

    /// @dev A new cap: anything up to twice the default, or right at / below / above a party's spent value.
    function _chooseCap(uint256 id, address[] memory parties, uint256 seed) internal view returns (uint32) {
        uint256 spent = ghostEpsilon[id][parties[(seed >> 8) % parties.length]];
        uint256 mode = seed % 5;
        uint256 cap;
        if (mode == 0) cap = bound(seed >> 16, 1, 16 * EPSILON_ONE);
        else if (mode == 1) cap = spent;
        else if (mode == 2) cap = spent == 0 ? 1 : spent - 1;
        else if (mode == 3) cap = spent + 1;
        else cap = spent + bound(seed >> 16, 1, 4 * EPSILON_ONE);
        if (cap == 0) cap = 1;
        return cap > type(uint32).max ? type(uint32).max : uint32(cap);
    }

    /// @dev Every approved party of a Proposed agreement signs its current version if it has not; then each
    /// tops its stake up to the requirement. After each of the two steps the registry must say Active exactly
    /// when every party has signed this version and holds the required stake. Returns whether it is Active.
    function _signAndStakePending(uint256 id) internal returns (bool active) {
        IAgreementRegistry.AgreementState memory s = agreements.agreementState(id);
        if (s.status == IAgreementRegistry.AgreementStatus.Terminated || s.version == s.activeVersion) return false;
        address[] memory parties = _parties[id];
        uint256 required = agreements.termsAt(id, s.version).requiredStake;
        for (uint256 i; i < parties.length; ++i) {
            if (!partners.isApproved(parties[i]) || agreements.hasSigned(id, s.version, parties[i])) continue;
            vm.prank(parties[i]);
            agreements.sign(id);
        }
        // Signed and staked while a round was open: nothing triggered the activation since.
        agreements.tryActivate(id);
        _checkActivation(id, s.version, parties, required);
        for (uint256 i; i < parties.length; ++i) {
            uint256 held = vault.stakeOf(id, parties[i]);
            if (!partners.isApproved(parties[i]) || held >= required) continue;
            vm.prank(admin);
            token.mint(parties[i], required - held);
            vm.startPrank(parties[i]);
            token.approve(address(vault), required - held);
            vault.stake(id, required - held);
            vm.stopPrank();
        }
        return _checkActivation(id, s.version, parties, required);
    }

    function _checkActivation(uint256 id, uint32 version, address[] memory parties, uint256 required)
        internal
        returns (bool active)
    {
        IAgreementRegistry.AgreementState memory s = agreements.agreementState(id);
        // An amendment waits for the open round to close; a first activation has no round to wait for.
        bool complete = s.activeVersion == 0 || ledger.openRoundOf(id) == 0;
        for (uint256 i; i < parties.length; ++i) {
            if (!agreements.hasSigned(id, version, parties[i]) || vault.stakeOf(id, parties[i]) < required) {
                complete = false;
            }
        }
        active = s.activeVersion == version;
        if (active != complete) _mismatch("activation disagrees with the signatures, stakes and rounds", "", "");
        if (active) capInForce[id] = latestCap[id];
    }

    function _setClock(uint256 t) internal {
        clock = t;
        vm.warp(t);
    }

    function _hex(bytes memory data) internal pure returns (string memory) {
        bytes memory digits = "0123456789abcdef";
        bytes memory out = new bytes(data.length * 2);
        for (uint256 i; i < data.length; ++i) {
            out[2 * i] = digits[uint8(data[i]) >> 4];
            out[2 * i + 1] = digits[uint8(data[i]) & 15];
        }
        return string(out);
    }

    function _dec(uint256 x) internal pure returns (string memory) {
        if (x == 0) return "0";
        bytes memory out;
        while (x != 0) {
            out = bytes.concat(bytes1(uint8(48 + x % 10)), out);
            x /= 10;
        }
        return string(out);
    }
}

/// @dev The privacy budget, stated precisely. For every agreement and every party of it, at every point of any
/// sequence of calls:
/// 1. the ledger's cumulative epsilon equals the model's: the last value the model accepted, where the model
///    accepts a commitment exactly when the agreement is Active, the round open, the party approved and new to
///    the round, and the value above the party's previous value and at most the cap in force at the time of
///    the commitment (and otherwise expects a refusal with one of the errors that apply, arguments included);
/// 2. hence the cumulative epsilon is at most the cap that was in force when it was committed. It may exceed
///    the cap in force now: an amendment may lower the cap below what was already spent, which freezes the
///    party (every further commitment is refused) but cannot undo spending. It never exceeds the largest cap
///    the agreement ever had;
/// 3. the cumulative epsilon never decreases;
/// 4. the registry activates an amended agreement exactly when every party has signed the new version and
///    holds the stake it requires.
/// A round opened under one version stays open through an amendment and, once the agreement is Active again,
/// takes commitments checked against the new cap: the model expects exactly that.
contract EpsilonBudgetInvariantTest is AgreementFixture {
    EpsilonBudgetHandler internal handler;

    function setUp() public override {
        super.setUp();
        address[] memory big = approvedPartners(10); // two packed words: indexes 0-7 and 8-9
        IAgreementRegistry.Terms memory t = defaultTerms(big);
        t.end = uint64(block.timestamp + 365 days);
        t.maxRounds = 1000;
        uint256[] memory ids = new uint256[](2);
        ids[0] = activate(t);

        // The same partners in another order and with a smaller cap: budgets are per agreement and per seat.
        address[] memory small = new address[](3);
        (small[0], small[1], small[2]) = (big[2], big[0], big[9]);
        t = defaultTerms(small);
        t.end = uint64(block.timestamp + 365 days);
        t.maxRounds = 1000;
        t.epsilonCap = 4 * EPSILON_ONE;
        ids[1] = activate(t);

        handler = new EpsilonBudgetHandler(partners, agreements, ledger, vault, token, coordinator, admin, ids);
    }

    /// @dev What forge-std's StdInvariant declares; forge reads it through {targetSelectors}.
    struct FuzzSelector {
        address addr;
        bytes4[] selectors;
    }

    function targetContracts() public view returns (address[] memory targets) {
        targets = new address[](1);
        targets[0] = address(handler);
    }

    /// @dev The handler's actions, weighted by repetition: forge draws uniformly from this list, and most of
    /// the calls should be commitments, the subject of the invariant.
    function targetSelectors() public view returns (FuzzSelector[] memory targets) {
        bytes4[] memory selectors = new bytes4[](13);
        for (uint256 i; i < 4; ++i) {
            selectors[i] = EpsilonBudgetHandler.submitUpdate.selector;
        }
        for (uint256 i = 4; i < 7; ++i) {
            selectors[i] = EpsilonBudgetHandler.commitBatch.selector;
        }
        selectors[7] = EpsilonBudgetHandler.openRound.selector;
        selectors[8] = EpsilonBudgetHandler.finalizeRound.selector;
        selectors[9] = EpsilonBudgetHandler.warp.selector;
        selectors[10] = EpsilonBudgetHandler.amend.selector;
        selectors[11] = EpsilonBudgetHandler.suspend.selector;
        selectors[12] = EpsilonBudgetHandler.approveSuspended.selector;
        targets = new FuzzSelector[](1);
        targets[0] = FuzzSelector({addr: address(handler), selectors: selectors});
    }

    /// @dev Properties 1 to 3 above, for every party of every agreement, and the ledger's and the registry's
    /// agreement with the model on every call so far (1 and 4). One function on purpose: forge runs one campaign of `runs` x `depth` calls
    /// per invariant function, and these properties are all about the same state.
    function invariant_privacyBudget() public view {
        if (handler.mismatches() != 0) revert AssertionFailed(handler.firstMismatch(), handler.mismatches(), 0);
        uint256[] memory ids = handler.agreementIds();
        for (uint256 k; k < ids.length; ++k) {
            address[] memory parties = handler.partiesOf(ids[k]);
            for (uint256 i; i < parties.length; ++i) {
                uint256 spent = ledger.cumulativeEpsilon(ids[k], parties[i]);
                assertEq(spent, handler.ghostEpsilon(ids[k], parties[i]), "on-chain epsilon == accepted commitments");
                assertLe(spent, handler.capAtCommit(ids[k], parties[i]), "spent <= cap in force when committed");
                assertLe(spent, handler.maxCapEver(ids[k]), "spent <= largest cap the agreement ever had");
            }
        }
        assertEq(handler.decreases(), 0, "a cumulative epsilon went down");
    }

    /// @dev The handler reaches the states the invariants are about: this scripted walk must see accepted
    /// submissions and batches, a commitment exactly at the cap, refusals over the cap and over a cap lowered
    /// by an amendment, and a re-activation, all without disagreeing with the model.
    function test_handlerReachesBudgetBoundaries() public {
        handler.openRound(0, 0);
        handler.submitUpdate(0, 0, 8); // party 0 straight to the cap
        handler.submitUpdate(0, 4, 10); // party 1 one unit over the cap
        handler.commitBatch(0, 0x3FE, 0, 0); // everybody else, each a step up
        handler.finalizeRound(0);
        // Lower the cap to one unit below what party 0 spent (cap mode 2 on party 0), raise the stake (stake
        // mode 0), re-sign and re-stake.
        handler.amend(0, (2 << 5) | 1);
        assertEq(agreements.terms(1).requiredStake, STAKE + 100e18, "stake raised");
        assertEq(vault.stakeOf(1, partnerAddr(9)), STAKE + 100e18, "re-staked");
        handler.openRound(0, 0);
        handler.submitUpdate(0, 0, 6); // party 0: previous + 1, now over the lowered cap
        handler.suspend(3);
        handler.submitUpdate(0, 12, 0); // party 3, suspended: refused
        handler.approveSuspended();

        assertEq(handler.mismatches(), 0, handler.firstMismatch());
        assertTrue(handler.acceptedSubmissions() >= 1, "accepted submission");
        assertTrue(handler.acceptedBatches() >= 1, "accepted batch");
        assertTrue(handler.acceptedAtCap() >= 1, "accepted at the cap");
        assertTrue(handler.refusedOverCap() >= 2, "refused over the cap");
        assertTrue(handler.refusedOverLoweredCap() >= 1, "refused over a lowered cap");
        assertTrue(handler.reactivations() >= 1, "re-activated after the amendment");
        invariant_privacyBudget();
    }
}
