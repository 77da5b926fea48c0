"""The command lines that start the README's round, shared by the command tests and bench/cli.py: deploy with a
reward token, register the four parties, approve the two partners, propose their agreement (agreement 1). Each
is a whole ``lepton-ledger`` argv (group first). Plain data, no pytest: bench/cli.py imports it too."""

from __future__ import annotations

from lepton_ledger.chain.anvil import dev_account

KEYS = {"admin": 0, "coordinator": 1, "auditor": 2, "partner-a": 3, "partner-b": 4}
ADDRESS = {name: dev_account(i).address for name, i in KEYS.items()}
PARTIES = ("coordinator", "auditor", "partner-a", "partner-b")  # every registered key
PARTNERS = ("partner-a", "partner-b")
DATA = ["--dataset", "digits", "--partitions", "2", "--seed", "0"]


def deploy(*extra: str, partner_a_tokens: int = 100) -> list[str]:
    """`deploy` by the admin, naming the coordinator and auditor, with a token minted to the coordinator (1000)
    and the partners (100 each, unless said)."""
    minted = {"coordinator": 1000, "partner-a": partner_a_tokens, "partner-b": 100}
    mints = [arg for name, amount in minted.items() for arg in ("--mint", f"{ADDRESS[name]}={amount}")]
    return [
        "deploy",
        "--key",
        "admin",
        "--coordinator",
        ADDRESS["coordinator"],
        "--auditor",
        ADDRESS["auditor"],
        "--with-token",
        *mints,
        *extra,
    ]


def register(name: str, *extra: str) -> list[str]:
    return ["partner", "register", "--key", name, "--name", name, *extra]


def approve(name: str) -> list[str]:
    return ["coordinator", "approve", ADDRESS[name], "--key", "coordinator"]


def propose(*extra: str) -> list[str]:
    """Agreement 1 between the two partners: 2 rounds of 300 tokens, a stake of 100, an epsilon cap of 10."""
    parties = [arg for name in PARTNERS for arg in ("--party", ADDRESS[name])]
    terms = ["--rounds", "2", "--reward-per-round", "300", "--required-stake", "100", "--epsilon-cap", "10"]
    return ["coordinator", "propose", "--key", "coordinator", *parties, *terms, *extra]
