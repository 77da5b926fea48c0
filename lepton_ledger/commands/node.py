"""``lepton-ledger node ...``: the data directory's local node (chain/node.py), which every command shares.

start | stop | status run it; fund and time act on it only: on any other chain (``$LEPTON_RPC_URL``) they are
refused, since ether and time cannot be made there.
"""

from __future__ import annotations

import re
from typing import Annotated

import typer

from .context import CommandError, ReadKeyOpt, command_group, fixed_point, reports_errors, utc

__all__ = ["node_app", "parse_duration"]

node_app = command_group(
    "The local development chain (one anvil per data directory, shared by every command): start, stop, "
    "status; fund a key with development ether; move its clock."
)

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


MAX_ADVANCE = 100 * 365 * 86400  # a century: far past any agreement, far inside year 9999


def parse_duration(value: str) -> int:
    """Seconds of ``90``, ``90s``, ``15m``, ``1h`` or ``2d``; CommandError otherwise."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", value)
    if match is None or int(match[1]) == 0:
        raise CommandError(f"--advance takes a positive duration such as 90s, 15m, 1h or 2d, not {value!r}")
    seconds = int(match[1]) * _UNITS[match[2] or "s"]
    if seconds > MAX_ADVANCE:
        raise CommandError(
            f"--advance {value} is more than {MAX_ADVANCE // 86400} days: the chain's dates would "
            "leave the calendar every command prints"
        )
    return seconds


@node_app.command("start")
@reports_errors
def start(
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="Port to listen on; default: a free one.")] = None,
) -> None:
    """Start the local node of the data directory, loading its saved chain; does nothing when it already runs.

    Every command of this data directory then uses it (unless $LEPTON_RPC_URL names another chain); a command
    that finds none starts it.
    """
    from ..chain import node

    info, started = node.start(port=port)
    verb = "started" if started else "already running:"
    typer.echo(f"{verb} local node on {info.url} (chain {info.chain_id}, pid {info.pid}, state {info.state_file})")


@node_app.command("stop")
@reports_errors
def stop() -> None:
    """Stop the local node; it writes its chain to the state file first, and the next start loads it."""
    from ..chain import node

    info = node.stop()
    typer.echo(
        "no local node runs"
        if info is None
        else f"stopped the local node on {info.url}; chain saved to {info.state_file}"
    )


@node_app.command("status")
@reports_errors
def status() -> None:
    """Say whether the local node runs, where, and its latest block. Exit code 0 running, 3 not running."""
    from ..chain import node

    info = node.status()
    if info is None:
        typer.echo(
            f"no local node runs for {node.chain_dir().parent} (`lepton-ledger node start` starts one; "
            "any command that needs the chain does too)"
        )
        raise typer.Exit(3)
    from ..chain.transport import node_web3

    latest = node_web3(info.url, cache=False).eth.get_block("latest")
    typer.echo(
        f"local node on {info.url}: chain {info.chain_id}, pid {info.pid}, block {latest['number']} "
        f"at {utc(int(latest['timestamp']))}, state {info.state_file}"
    )


@node_app.command("fund")
@reports_errors
def fund(
    address: Annotated[str | None, typer.Argument(metavar="ADDRESS", help="Address to fund (or --key).")] = None,
    key: ReadKeyOpt = None,
    ether: Annotated[float, typer.Option(min=0.0, help="Development ether to add.")] = 100.0,
) -> None:
    """Give ADDRESS (or --key's account) development ether on the local node, to pay gas.

    Local node only: refused when $LEPTON_RPC_URL names another chain, where ether cannot be made.
    """
    from ..chain import node
    from ..chain.connection import connect
    from .context import parse_address

    node.require_local(None, "node fund")
    if (address is None) == (key is None):
        raise CommandError("give the ADDRESS to fund or --key NAME, not both")
    if key is not None:
        from ..keys import Keystore

        address = Keystore().show(key).address
    assert address is not None
    target = parse_address(address, "ADDRESS")
    with connect() as w3:
        balance = node.fund(w3, target, int(ether * 10**18))
    typer.echo(f"{target} now holds {fixed_point(balance, 18)} ether on the local node")


@node_app.command("time")
@reports_errors
def time_(
    advance: Annotated[str | None, typer.Option(help="Move the clock forward: 90s, 15m, 1h, 2d.")] = None,
    mine: Annotated[bool, typer.Option("--mine", help="Mine one block at the current time.")] = False,
) -> None:
    """Move the local node's clock forward (a dispute window ends without waiting) and mine a block.

    Local node only: refused when $LEPTON_RPC_URL names another chain, where time passes by itself.
    """
    from ..chain import node
    from ..chain.anvil import advance_time
    from ..chain.connection import connect

    node.require_local(None, "node time")
    if (advance is None) == (not mine):
        raise CommandError("give --advance DURATION or --mine")
    seconds = parse_duration(advance) if advance is not None else 0
    with connect() as w3:
        if seconds:
            stamp = advance_time(w3, seconds)
        else:
            w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
            stamp = int(w3.eth.get_block("latest")["timestamp"])
    typer.echo(f"block time now {utc(stamp)}" + (f" ({advance} later)" if advance else ""))
