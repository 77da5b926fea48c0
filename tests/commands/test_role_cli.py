"""The role CLIs drive whole rounds on the embedded chain (state persisted under LEPTON_DATA_DIR between
commands): deploy, register, approve, propose, sign (one by transaction, one relayed EIP-712 signature), stake,
fund, open, train and submit twice, close, claim, status; the next round on the aggregate; a batched round of a
one-party agreement (train-and-sign, anchor, close). Plus the error paths: each is one ``error:`` line, exit code
1, and nothing sent. The round tests run in file order on one chain (the module's `world`)."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import cli_lines
import pytest
from cli_home import ADDRESS, PASSWORD, lepton_home
from typer.testing import CliRunner

from lepton_ledger.chain.anvil import free_port
from lepton_ledger.chain.connection import connect
from lepton_ledger.chain.state import Allocation
from lepton_ledger.cli import app as cli_app
from lepton_ledger.commands import coordinator_app, deploy_app, partner_app

DATA = cli_lines.DATA

runner = CliRunner()


def run(app, *args: str, ok: bool = True, **env: str):
    result = runner.invoke(app, list(args), env=env or None)
    if ok:
        assert result.exit_code == 0, f"{args}: exit {result.exit_code}\n{result.output}\n{result.exception!r}"
    return result


def nonce(address: str) -> int:
    with connect() as w3:
        return w3.eth.get_transaction_count(address)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """An active, funded agreement between partner-a and partner-b, set up through the CLI apps only."""
    with lepton_home(tmp_path_factory.mktemp("lepton-home")) as home:
        run(cli_app, *cli_lines.deploy("--dispute-window", "1", partner_a_tokens=110))
        for name in cli_lines.PARTIES:
            run(cli_app, *cli_lines.register(name, "--contact", f"ml@{name}.example"))
        for name in cli_lines.PARTNERS:
            run(cli_app, *cli_lines.approve(name))
        proposed = run(cli_app, *cli_lines.propose())
        assert "proposed agreement 1 " in proposed.output
        run(partner_app, "sign", "1", "--key", "partner-a")
        signature = home / "partner-b-signature.json"
        run(partner_app, "sign", "1", "--key", "partner-b", "--relay-to-file", str(signature))
        run(coordinator_app, "relay-signature", str(signature), "--key", "coordinator")
        run(partner_app, "stake", "1", "--key", "partner-a")
        assert "the agreement is now active" in run(partner_app, "stake", "1", "--key", "partner-b").output
        run(coordinator_app, "fund", "1", "600", "--key", "coordinator")
        run(coordinator_app, "bond", "1", "100", "--key", "coordinator")  # the terms' default coordinator bond
        yield {"home": home, "agreement": "1"}


def test_a_whole_round_through_the_cli(world):
    opened = run(coordinator_app, "open", "1", "--key", "coordinator", *DATA)
    assert "opened round 1 of agreement 1 on a fresh logreg model" in opened.output
    for i, name in enumerate(("partner-a", "partner-b")):
        submitted = run(partner_app, "train-and-submit", "1", "--key", name, *DATA, "--partition", str(i))
        assert "round 1: submitted " in submitted.output and "epsilon spent " in submitted.output
    closed = run(coordinator_app, "close", "1", "1", "--key", "coordinator", *DATA)
    assert "finalized round 1 of agreement 1" in closed.output and "rejected" not in closed.output

    with connect() as w3:  # the dispute window (1 s, deploy --dispute-window) is wall-clock time: wait it out
        vault = w3.eth.contract(
            address=json.loads((world["home"] / "deployment.json").read_text())["contracts"]["RewardVault"],
            abi=_abi("RewardVault"),
        )
        opens = Allocation.read(vault.functions.allocation(1, 1)).claimable_at
    time.sleep(max(0.0, opens - time.time() + 1))

    said = {}  # the amounts as printed: exact decimals of the token's base units
    for name in ("partner-a", "partner-b"):
        claimed = run(partner_app, "claim", "1", "1", "--key", name)
        said[name] = claimed.output.split("claimed ")[1].split(" ")[0]
        assert Decimal(said[name]) > 0
    assert sum(Decimal(v) for v in said.values()) == 300  # by-sample-count split of the round's whole reward

    again = run(partner_app, "claim", "1", "1", "--key", "partner-a", ok=False)
    assert again.exit_code == 1 and "has already claimed round 1" in again.output

    status = run(partner_app, "status", "1", "--key", "partner-a").output
    assert f"claimed:          {said['partner-a']}" in status and "claimable now:    0" in status
    on_chain, local = (float(line.split()[2]) for line in status.splitlines() if line.startswith("epsilon "))
    assert 0 < on_chain and 0 <= on_chain - local < 2e-6  # both printed to 1e-6; the chain rounds up
    assert "stake:            100 (required 100; held while the terms are in force)" in status


def test_the_audit_runs_on_the_commands_own_deployment_as_deploy_left_it(world):
    """After the round above: `audit` with only the auditor's key audits the local node, the deployment file and
    the block store of the data directory; a key no update is encrypted to, and a folder that is no block store,
    are named as such (exit 2), not reported as tampering."""
    from lepton_ledger.cli import app

    clean = runner.invoke(app, ["audit", "--key", "auditor"])
    assert clean.exit_code == 0 and "every check holds" in clean.output, clean.output
    stranger = runner.invoke(app, ["audit", "--key", "partner-a"])
    assert stranger.exit_code == 2
    assert (
        "is not a recipient of this deployment: updates are encrypted to its coordinator and auditors"
        in stranger.output
        and "failed" not in stranger.output
    )
    home = world["home"]
    wrong = runner.invoke(app, ["audit", "--key", "auditor", "--ipfs", str(home)])
    assert wrong.exit_code == 2
    assert "wrong store location (the block store of that data directory is" in " ".join(wrong.output.split())
    assert not (home / "pins.sqlite").exists()  # nothing was made there


def test_the_next_round_starts_from_the_aggregate_and_needs_the_privacy_history(world):
    """After the round above: round 2 opens on round 1's aggregate; a partner that lost its accountant file is
    refused before it trains (it would under-count its epsilon)."""
    assert "on the aggregate of round 1" in run(coordinator_app, "open", "1", "--key", "coordinator", *DATA).output
    # Both records of what partner-b spent are gone (its accountant file and its outbox): it must not train on.
    accountant = next((world["home"] / "accountants").glob(f"*/1-{ADDRESS['partner-b']}.json"))
    (outbox,) = (world["home"] / "outbox").glob(f"partner-*-{ADDRESS['partner-b']}.sqlite")
    for path in (accountant, outbox):
        path.rename(path.with_suffix(".lost"))
    before = nonce(ADDRESS["partner-b"])
    lost = run(partner_app, "train-and-submit", "1", "--key", "partner-b", *DATA, "--partition", "1", ok=False)
    assert lost.exit_code == 1 and "its accountant" in lost.output and "and outbox account for 0" in lost.output
    assert nonce(ADDRESS["partner-b"]) == before
    for path in (accountant, outbox):
        path.with_suffix(".lost").rename(path)


def test_a_batched_round_through_the_cli(world):
    """A one-party agreement in batched mode: the partner signs its commitment, the coordinator anchors it; the
    round closes by the rules the terms signed (median, Monte Carlo Shapley), and by no others."""
    a = ADDRESS["partner-a"]
    run(
        coordinator_app,
        "propose",
        "--key",
        "coordinator",
        "--party",
        a,
        "--rounds",
        "1",
        "--reward-per-round",
        "50",
        "--required-stake",
        "10",
        "--epsilon-cap",
        "10",
        "--aggregation",
        "median",
        "--scoring",
        "tmc_shapley",
    )
    run(partner_app, "sign", "2", "--key", "partner-a")
    run(partner_app, "stake", "2", "--key", "partner-a")
    run(coordinator_app, "fund", "2", "50", "--key", "coordinator")
    run(coordinator_app, "bond", "2", "100", "--key", "coordinator")
    assert "opened round 1 of agreement 2" in run(coordinator_app, "open", "2", "--key", "coordinator", *DATA).output

    path = world["home"] / "partner-a-agreement-2.json"
    signed = run(partner_app, "train-and-sign", "2", "--key", "partner-a", "--out", str(path), *DATA)
    assert "round 1: sealed " in signed.output
    document = path.read_text()
    # The same command again with other options does not train again, and says so; the first trained with the
    # model's own settings (logreg: the demo's batch and learning rate, partner.MODEL_TRAINING).
    again = run(partner_app, "train-and-sign", "2", "--key", "partner-a", "--out", str(path), *DATA, "--epochs", "3")
    assert (
        "note: round 1's update was trained before (--batch-size 32 --epochs 1 --lr 1.0 --max-grad-norm 1.0 "
        "--model logreg --noise-multiplier 1.0); resuming that one" in again.output
    )
    assert path.read_text() == document
    forged = world["home"] / "forged.json"
    forged.write_text(json.dumps(json.loads(path.read_text()) | {"cumulativeEpsilon": 1}))  # under-reported
    before = nonce(ADDRESS["coordinator"])
    refused = run(coordinator_app, "anchor", "2", "1", str(forged), "--key", "coordinator", ok=False)
    assert refused.exit_code == 1 and f"forged.json: the commitment of {a} is signed by 0x" in refused.output
    assert nonce(ADDRESS["coordinator"]) == before

    anchored = run(coordinator_app, "anchor", "2", "1", str(path), "--key", "coordinator")
    assert "anchored 1 commitment(s) for round 1 of agreement 2" in anchored.output
    before = nonce(ADDRESS["coordinator"])
    refused = run(
        coordinator_app,
        "close",
        "2",
        "1",
        "--key",
        "coordinator",
        *DATA,
        "--aggregation",
        "fedavg",
        "--max-norm",
        "0.5",
        ok=False,
    )
    assert refused.output == (
        "error: agreement 2 signed other round rules: aggregation_rule 'fedavg' (signed "
        "'median'); max_norm 0.5 (signed 50.0)\n"
    )
    assert refused.exit_code == 1 and nonce(ADDRESS["coordinator"]) == before
    closed = run(coordinator_app, "close", "2", "1", "--key", "coordinator", *DATA)
    assert "finalized round 1 of agreement 2" in closed.output and f"{a}: allocated 50" in closed.output
    assert "allocations are claimable from 20" in closed.output  # a date, not a Unix timestamp
    status = run(partner_app, "status", "2", "--address", a).output
    on_chain, local = (float(line.split()[2]) for line in status.splitlines() if line.startswith("epsilon "))
    assert on_chain == json.loads(path.read_text())["cumulativeEpsilon"] / 10**6  # what the batch anchored
    assert 0 <= on_chain - local < 2e-6  # both printed to 1e-6; the chain rounds up


def _abi(name: str) -> list:
    from lepton_ledger.chain.artifacts import load_artifact

    return load_artifact(name).abi


# -- error paths: one error line, exit code 1, nothing sent ----------------------------------------------------


def test_unknown_agreement_is_named(world):
    before = nonce(ADDRESS["partner-a"])
    result = run(partner_app, "stake", "99", "--key", "partner-a", ok=False)
    assert result.exit_code == 1
    expected = "error: unknown agreement 99: AgreementRegistryUnknownAgreement(agreementId=99)"
    assert result.output.strip().splitlines() == [expected]
    assert nonce(ADDRESS["partner-a"]) == before


def test_wrong_password_is_refused_before_the_chain(world):
    result = run(partner_app, "sign", "1", "--key", "partner-a", ok=False, LEPTON_KEYSTORE_PASSWORD="wrong")
    assert result.exit_code == 1 and result.output.strip() == "error: wrong password for identity 'partner-a'"
    assert PASSWORD not in result.output


def test_unknown_key_is_named(world):
    result = run(coordinator_app, "fund", "1", "5", "--key", "nobody", ok=False)
    assert result.exit_code == 1 and result.output.strip() == "error: no identity named 'nobody' in the keystore"


def test_missing_deployment_file_is_named(world, tmp_path):
    missing = tmp_path / "nope.json"
    result = run(coordinator_app, "fund", "1", "5", "--key", "coordinator", "--deployment", str(missing), ok=False)
    assert result.exit_code == 1 and f"error: no deployment file at {missing}" in result.output


def test_rpc_url_that_does_not_answer_is_named(world):
    url = f"http://127.0.0.1:{free_port()}"
    result = run(coordinator_app, "fund", "1", "5", "--key", "coordinator", "--rpc-url", url, ok=False)
    assert result.exit_code == 1 and result.output.startswith(f"error: no Ethereum node answers at {url}")


def test_a_deployment_file_with_swapped_addresses_is_named_and_sends_nothing(world, tmp_path):
    document = json.loads((world["home"] / "deployment.json").read_text())
    contracts = document["contracts"]
    contracts["AgreementRegistry"], contracts["RewardVault"] = contracts["RewardVault"], contracts["AgreementRegistry"]
    swapped = tmp_path / "swapped.json"
    swapped.write_text(json.dumps(document))
    before = nonce(ADDRESS["coordinator"])
    result = run(coordinator_app, "fund", "1", "5", "--key", "coordinator", "--deployment", str(swapped), ok=False)
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"error: {swapped}: the AgreementRegistry address {contracts['AgreementRegistry']} "
        "does not hold this deployment's AgreementRegistry (addresses swapped or from "
        "another deployment?)"
    )
    assert nonce(ADDRESS["coordinator"]) == before


def test_a_damaged_outbox_is_named_and_left_alone(world):
    (outbox,) = (world["home"] / "outbox").glob(f"partner-*-{ADDRESS['partner-a']}.sqlite")
    kept = outbox.read_bytes()
    try:
        outbox.write_bytes(b"not an SQLite file" * 64)
        before = nonce(ADDRESS["partner-a"])  # round 2 is open (above): the command reaches the outbox
        result = run(partner_app, "train-and-submit", "1", "--key", "partner-a", *DATA, ok=False)
        assert nonce(ADDRESS["partner-a"]) == before
        assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
        assert result.output.startswith(f"error: the outbox {outbox} is damaged (")
    finally:
        outbox.write_bytes(kept)


def test_approve_without_the_registrar_role_names_it_and_sends_nothing(world):
    # The auditor registered but is not approved; a partner without REGISTRAR_ROLE tries to approve it.
    before = nonce(ADDRESS["partner-a"])
    result = run(coordinator_app, "approve", ADDRESS["auditor"], "--key", "partner-a", ok=False)
    assert result.exit_code == 1
    assert (
        result.output == f"error: {ADDRESS['partner-a']} lacks the PartnerRegistry's REGISTRAR_ROLE: only the "
        "registrar approves or suspends partners (the admin grants it)\n"
    )
    assert nonce(ADDRESS["partner-a"]) == before


@pytest.mark.parametrize(
    ("app", "args", "message"),
    [
        (
            partner_app,
            ["train-and-submit", "1", "--key", "partner-a", "--partition", "2", "--partitions", "2"],
            "error: --partition 2 must be below --partitions 2",
        ),
        (
            coordinator_app,
            ["close", "1", "1", "--key", "coordinator", "--aggregation", "mean"],
            "error: --aggregation must be one of fedavg, median, trimmed_mean, krum, multi_krum, not 'mean'",
        ),
        (
            coordinator_app,
            ["close", "1", "1", "--key", "coordinator", "--scoring", "banzhaf"],
            "error: --scoring must be one of leave_one_out, tmc_shapley, exact_shapley, not 'banzhaf'",
        ),
        (
            coordinator_app,
            ["fund", "1", "0.0000000000000000001", "--key", "coordinator"],
            "error: AMOUNT must be a non-negative amount with at most 18 decimals, not '0.0000000000000000001'",
        ),
        (
            coordinator_app,
            ["fund", "1", "ten", "--key", "coordinator"],
            "error: AMOUNT must be a decimal number of tokens, not 'ten'",
        ),
        (coordinator_app, ["approve", "0x1234", "--key", "coordinator"], "error: PARTNER is not an address: '0x1234'"),
        (
            partner_app,
            ["sign", "1", "--key", "partner-a"],
            "error: agreement 1 has no version awaiting signatures (version 1 is in force)",
        ),
        (deploy_app, ["--key", "admin"], "exists: pass --force to replace it"),
        (
            partner_app,
            ["stake", "1", "--key", "partner-a", "--amount", "0"],
            "error: --amount must be more than 0, not '0'",
        ),
        (
            coordinator_app,
            ["propose", "--key", "coordinator", "--party", ADDRESS["partner-a"], "--reward-token", ADDRESS["auditor"]],
            f"error: the reward token {ADDRESS['auditor']} is no contract on chain 31337",
        ),
        (
            coordinator_app,
            ["propose", "--key", "coordinator", "--party", ADDRESS["partner-a"], "--ipfs", "/no/store"],
            "error: --ipfs /no/store: no such folder (a block store folder or a Kubo RPC URL)",
        ),
    ],
)
def test_bad_input_is_named(world, app, args, message):
    result = run(app, *args, ok=False)
    assert result.exit_code == 1 and message in result.output and len(result.output.strip().splitlines()) == 1


PARTNER_COMMANDS = ("register", "sign", "stake", "train-and-submit", "train-and-sign", "claim", "status")
COORDINATOR_COMMANDS = ("approve", "propose", "relay-signature", "fund", "bond", "open", "close", "anchor")


@pytest.mark.parametrize(
    ("app", "args"),
    [
        (deploy_app, []),
        *((partner_app, [c]) for c in PARTNER_COMMANDS),
        *((coordinator_app, [c]) for c in COORDINATOR_COMMANDS),
    ],
)
def test_help_says_what_each_command_sends(app, args):
    result = runner.invoke(app, [*args, "--help"], terminal_width=200)
    assert result.exit_code == 0
    text = " ".join(result.output.split()).lower()
    assert "sends nothing" in text or " from --key" in text, text  # what it sends, and from which key


def test_status_is_quick_it_reads_the_recorded_epsilon_without_the_dp_library(world):
    import os
    import subprocess
    import sys

    code = (
        "import sys; from lepton_ledger.cli import app; "
        "app(['partner', 'status', '1', '--key', 'partner-a'], standalone_mode=False); "
        "print('DP library loaded:', 'opacus' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=os.environ.copy(), capture_output=True, text=True, check=False
    )
    said = {}
    for line in done.stdout.splitlines():
        name, _, value = line.partition(":")
        if name.startswith("epsilon "):
            said[name] = float(value.split()[0])
    # the recorded epsilon: the chain holds it rounded up to the sixth decimal
    assert said["epsilon local"] > 0 and 0 <= said["epsilon on-chain"] - said["epsilon local"] <= 1e-6, done.stderr
    assert done.stdout.strip().endswith("DP library loaded: False")


def test_ctrl_c_during_training_is_one_line_and_sends_nothing(world):
    """Round 2 is open (above) and partner-a has not submitted: Ctrl-C while it trains (the key's round lock is
    taken just before) ends the command with one line and exit code 130; nothing was sent. The noise is so large
    that even 100,000 epochs stay within the cap: the command is still training when the interrupt comes, not
    already refused by its budget check (which once made this test depend on timing)."""
    import os
    import signal
    import subprocess
    import sys

    before = nonce(ADDRESS["partner-a"])
    (lock,) = (world["home"] / "accountants").glob(f"*/1-{ADDRESS['partner-a']}.lock")  # left by round 1
    lock.unlink()  # the command creates it again when it takes the lock
    command = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lepton_ledger.cli",
            "partner",
            "train-and-submit",
            "1",
            "--key",
            "partner-a",
            *DATA,
            "--epochs",
            "100000",
            "--noise-multiplier",
            "200",
        ],
        env=os.environ.copy(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # As a terminal's Ctrl-C finds it: a suite started in the background inherits SIGINT ignored, and a
        # Python that starts with it ignored never raises KeyboardInterrupt.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while not lock.exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # polls what the command does; the interrupt may land anywhere after that
    command.send_signal(signal.SIGINT)
    out, err = command.communicate(timeout=120)
    assert command.returncode == 130, err
    assert (
        err.strip().splitlines()[-1]
        == "error: interrupted; what was recorded is kept: run the same command again to resume"
        and "Traceback" not in err
    )
    assert nonce(ADDRESS["partner-a"]) == before and "submitted" not in out


def test_a_submission_after_the_deadline_is_refused_before_training_and_spends_nothing(world):
    """Last in the file: it moves the chain's clock past round 2's deadline (partner-a has not submitted)."""
    from lepton_ledger.commands.node import node_app

    (accountant,) = (world["home"] / "accountants").glob(f"*/1-{ADDRESS['partner-a']}.json")
    kept = accountant.read_bytes()
    before = nonce(ADDRESS["partner-a"])
    assert "(2h later)" in run(node_app, "time", "--advance", "2h").output  # round_seconds defaults to 3600
    late = run(partner_app, "train-and-submit", "1", "--key", "partner-a", *DATA, ok=False)
    assert late.exit_code == 1 and len(late.output.strip().splitlines()) == 1
    assert late.output.startswith("error: round 2 of agreement 1 took submissions until 20")
    assert late.output.strip().endswith("on the chain: nothing trained, no epsilon spent")
    assert nonce(ADDRESS["partner-a"]) == before and accountant.read_bytes() == kept
