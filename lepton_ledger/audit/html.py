"""The auditor's HTML report: one self-contained file a person can open and read.

Input: the dict of ``AuditResult.to_dict()`` (what ``lepton-ledger audit --json-out FILE`` writes)::

    {"ok": bool, "chain_id": int, "contracts": {name: address}, "audited_at_block": int,
     "checks": [{"name": str, "ok": bool, "agreement_id": int|null, "round": int|null, "partner": str|null,
                 "cid": str|null, "message": str, "evidence": {...}}],
     "rounds": [{"agreement_id": int, "round": int, "accuracy": float|null, "gas_used": int, "block": int,
                 "accuracy_before": float (optional: the model an agreement's first round started from),
                 "partners": {"0xaddr": {"cumulative_epsilon": float, "epsilon_cap": float,
                                         "payout": "decimal str (token base units)", "accepted": bool,
                                         "name": str (optional, the partner's registered name)}}}]}

Output: a single HTML5 document with no external resource of any kind: the CSS is inline, there is no script,
and the four plots (accuracy from the start and per round, cumulative epsilon per partner against its cap,
payouts per partner per round, with partners named where the result names them; gas per round) are matplotlib
PNGs (Agg, drawn without pyplot's global state) inlined as ``data:`` URIs.
A Content-Security-Policy meta tag forbids loading anything else, as a second line of defence.

Every string in the result came from an untrusted chain or store (a partner chooses its own manifest
contents), so every one is HTML-escaped before it is written, attribute values included. Failed checks come
first and are drawn red; the summary says "all green" or how many checks failed.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import LeptonError

__all__ = ["ReportError", "render_html", "write_html"]

TOKEN_DECIMALS = 18  # LeptonToken, like most ERC-20s: payouts are plotted in whole tokens
PLOT_SIZE = (7.0, 3.2)  # inches; at PLOT_DPI this is a 700 x 320 PNG
PLOT_DPI = 100
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


class ReportError(LeptonError, ValueError):
    """The audit result does not have the shape the report needs; the message names the offending field."""


# -- input checking -----------------------------------------------------------------------------------------


def _field(doc: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(doc, Mapping):
        raise ReportError(f"{where}: expected an object, got {type(doc).__name__}")
    if key not in doc:
        raise ReportError(f"{where}.{key}: missing")
    value = doc[key]
    # bool is an int in Python; a count given as true/false is still malformed.
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
        raise ReportError(f"{where}.{key}: expected {_kind_name(kind)}, got {value!r:.80}")
    return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    return " or ".join("null" if k is type(None) else k.__name__ for k in _as_tuple(kind))


def _number(doc: Mapping[str, Any], key: str, where: str, *, optional: bool = False) -> float | None:
    kinds: tuple[type, ...] = (int, float, type(None)) if optional else (int, float)
    value = _field(doc, key, kinds, where)
    if value is None:
        return None
    if not math.isfinite(value):
        raise ReportError(f"{where}.{key}: expected a finite number, got {value!r}")
    return float(value)


def _amount(doc: Mapping[str, Any], key: str, where: str) -> int:
    text = _field(doc, key, str, where)
    if not text.isdigit() or not text.isascii():
        raise ReportError(f"{where}.{key}: expected a decimal string of base units, got {text!r:.80}")
    return int(text)


def _rounds(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The rounds, validated and ordered by (agreement, round), with plain Python values."""
    rounds = []
    for i, r in enumerate(_field(result, "rounds", list, "result")):
        where = f"result.rounds[{i}]"
        partners = {}
        for address, p in _field(r, "partners", Mapping, where).items():
            pw = f"{where}.partners[{address!r:.50}]"
            partners[str(address)] = {
                "cumulative_epsilon": _number(p, "cumulative_epsilon", pw),
                "epsilon_cap": _number(p, "epsilon_cap", pw),
                "payout": _amount(p, "payout", pw),
                "accepted": _field(p, "accepted", bool, pw),
                "name": _name(p, pw),
            }
        rounds.append(
            {
                "agreement_id": _field(r, "agreement_id", int, where),
                "round": _field(r, "round", int, where),
                "accuracy": _number(r, "accuracy", where, optional=True),
                "gas_used": _field(r, "gas_used", int, where),
                "block": _field(r, "block", int, where),
                "partners": partners,
                "accuracy_before": _number(r, "accuracy_before", where, optional=True)
                if "accuracy_before" in r
                else None,
            }
        )
    return sorted(rounds, key=lambda r: (r["agreement_id"], r["round"]))


def _name(doc: Mapping[str, Any], where: str) -> str | None:
    """A partner's optional name, made safe for a plot label: printable, no mathtext ``$``, at most 24 characters."""
    name = _field(doc, "name", (str, type(None)), where) if "name" in doc else None
    if name is None:
        return None
    clean = "".join(ch for ch in name if ch.isprintable() and ch != "$").strip()[:24]
    return clean or None


def _checks(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The checks, validated, failures first (each group in its original order)."""
    checks = []
    for i, c in enumerate(_field(result, "checks", list, "result")):
        where = f"result.checks[{i}]"
        checks.append(
            {
                "index": i,
                "name": _field(c, "name", str, where),
                "ok": _field(c, "ok", bool, where),
                "agreement_id": _field(c, "agreement_id", (int, type(None)), where),
                "round": _field(c, "round", (int, type(None)), where),
                "partner": _field(c, "partner", (str, type(None)), where),
                "cid": _field(c, "cid", (str, type(None)), where),
                "message": _field(c, "message", str, where),
                "evidence": _field(c, "evidence", Mapping, where),
            }
        )
    return sorted(checks, key=lambda c: (c["ok"], c["index"]))


# -- plots ---------------------------------------------------------------------------------------------------


def _figure() -> Any:
    # Figure + the Agg canvas directly, not pyplot: no global backend or figure registry, safe in any process.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=PLOT_SIZE, dpi=PLOT_DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _round_labels(rounds: list[dict[str, Any]]) -> list[str]:
    several = len({r["agreement_id"] for r in rounds}) > 1
    return [f"{r['agreement_id']}:{r['round']}" if several else str(r["round"]) for r in rounds]


def _finish(ax: Any, title: str, ylabel: str, labels: list[str], *, legend: bool = False) -> None:
    ax.set_title(title)
    ax.set_xlabel("round" if all(":" not in label for label in labels) else "agreement:round")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    if not labels:
        ax.text(0.5, 0.5, "no rounds audited", ha="center", va="center", transform=ax.transAxes)
    if legend and ax.get_legend_handles_labels()[0]:
        # outside the axes, on the right: with ten partners a legend inside would hide the data
        ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)


def _short_address(address: str) -> str:
    return address if len(address) <= 12 else f"{address[:6]}...{address[-4:]}"


def _partners(rounds: list[dict[str, Any]]) -> list[str]:
    return sorted({p for r in rounds for p in r["partners"]})


def _label(partner: str, rounds: list[dict[str, Any]]) -> str:
    """``name (0x1234...abcd)`` when the partner has a name, else the short address."""
    name = next((r["partners"][partner]["name"] for r in rounds if r["partners"].get(partner, {}).get("name")), None)
    return f"{name} ({_short_address(partner)})" if name else _short_address(partner)


def plot_accuracy(rounds: list[dict[str, Any]]) -> bytes:
    figure = _figure()
    ax = figure.add_subplot()
    labels = _round_labels(rounds)
    points = [(i, r["accuracy"]) for i, r in enumerate(rounds) if r["accuracy"] is not None]
    start = rounds[0]["accuracy_before"] if rounds else None
    if start is not None:  # the model the first round started from: what the rounds improved on
        labels = ["start", *labels]
        points = [(0, start), *((i + 1, a) for i, a in points)]
    if points:
        ax.plot([i for i, _ in points], [a for _, a in points], marker="o", color="tab:blue")
    ax.set_xticks(range(len(labels)), labels)
    _finish(
        ax,
        "Accuracy of the global model, from the start and after each round",
        "accuracy",
        labels[1:] if start is not None else labels,
    )
    return _png(figure)


def plot_epsilon(rounds: list[dict[str, Any]]) -> bytes:
    figure = _figure()
    ax = figure.add_subplot()
    labels = _round_labels(rounds)
    for n, partner in enumerate(_partners(rounds)):
        color = f"C{n % 10}"
        xs = [i for i, r in enumerate(rounds) if partner in r["partners"]]
        eps = [rounds[i]["partners"][partner]["cumulative_epsilon"] for i in xs]
        caps = [rounds[i]["partners"][partner]["epsilon_cap"] for i in xs]
        ax.plot(xs, eps, marker="o", color=color, label=_label(partner, rounds))
        ax.plot(xs, caps, linestyle="--", color=color, alpha=0.6)
    if rounds:
        ax.plot([], [], linestyle="--", color="gray", label="cap (dashed)")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_ylim(bottom=0)  # the spend is read against the cap: both from zero
    _finish(ax, "Cumulative epsilon per partner against its cap", "epsilon", labels, legend=True)
    return _png(figure)


def plot_payouts(rounds: list[dict[str, Any]], decimals: int = TOKEN_DECIMALS) -> bytes:
    figure = _figure()
    ax = figure.add_subplot()
    labels = _round_labels(rounds)
    partners = _partners(rounds)
    width = 0.8 / max(len(partners), 1)
    for n, partner in enumerate(partners):
        amounts = [r["partners"].get(partner, {}).get("payout", 0) / 10**decimals for r in rounds]
        offset = (n - (len(partners) - 1) / 2) * width
        ax.bar(
            [i + offset for i in range(len(rounds))],
            amounts,
            width=width,
            color=f"C{n % 10}",
            label=_label(partner, rounds),
        )
    ax.set_xticks(range(len(labels)), labels)
    _finish(ax, "Payout per partner per round", f"tokens (10^{decimals} base units)", labels, legend=True)
    return _png(figure)


def plot_gas(rounds: list[dict[str, Any]]) -> bytes:
    figure = _figure()
    ax = figure.add_subplot()
    labels = _round_labels(rounds)
    ax.bar(range(len(rounds)), [r["gas_used"] for r in rounds], color="tab:gray")
    ax.set_xticks(range(len(labels)), labels)
    _finish(ax, "Gas used per round", "gas", labels)
    return _png(figure)


# -- HTML ------------------------------------------------------------------------------------------------------


def _e(value: Any) -> str:
    """Escaped text of anything, quotes included (safe in element content and in quoted attributes)."""
    return html.escape(str(value), quote=True)


def _img(png: bytes, alt: str, name: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure><img class="plot" id="plot-{_e(name)}" alt="{_e(alt)}" src="data:image/png;base64,{data}"></figure>'
    )


def _where(check: dict[str, Any]) -> str:
    parts = []
    for key, label in (("agreement_id", "agreement"), ("round", "round"), ("partner", "partner"), ("cid", "CID")):
        if check[key] is not None:
            parts.append(f'<span class="k">{label}</span> <code>{_e(check[key])}</code>')
    return "<br>".join(parts) or "&mdash;"


def _evidence(evidence: Mapping[str, Any], *, open_: bool) -> str:
    if not evidence:
        return "&mdash;"
    text = json.dumps(evidence, indent=2, sort_keys=True, default=str, ensure_ascii=False)
    # Folded for a passed check (a 5-round audit has ~130 of them), unfolded for a failed one; no script needed.
    return f"<details{' open' if open_ else ''}><summary>evidence</summary><pre>{_e(text)}</pre></details>"


def _check_rows(checks: list[dict[str, Any]]) -> str:
    rows = []
    for c in checks:
        status, css = ("PASS", "pass") if c["ok"] else ("FAIL", "fail")
        rows.append(
            f'<tr class="check {css}" id="check-{c["index"]}"><td class="status">{status}</td>'
            f'<td class="num">{c["index"]}</td><td class="name"><code>{_e(c["name"])}</code></td><td>{_where(c)}</td>'
            f'<td class="message">{_e(c["message"])}</td><td>{_evidence(c["evidence"], open_=not c["ok"])}</td></tr>'
        )
    return "\n".join(rows)


def _round_rows(rounds: list[dict[str, Any]], decimals: int) -> str:
    rows = []
    for r in rounds:
        partners = "<br>".join(
            f"<code>{_e(a)}</code>: epsilon {p['cumulative_epsilon']:.4f} / {p['epsilon_cap']:.4f}, "
            f"payout {_e(_tokens(p['payout'], decimals))}" + ("" if p["accepted"] else ' <b class="bad">rejected</b>')
            for a, p in sorted(r["partners"].items())
        )
        accuracy = "&mdash;" if r["accuracy"] is None else f"{r['accuracy']:.4f}"
        rows.append(
            f'<tr><td class="num">{r["agreement_id"]}</td><td class="num">{r["round"]}</td>'
            f'<td class="num">{accuracy}</td><td class="num">{r["gas_used"]:,}</td>'
            f'<td class="num">{r["block"]}</td><td>{partners or "&mdash;"}</td></tr>'
        )
    return "\n".join(rows)


def _tokens(amount: int, decimals: int) -> str:
    whole, fraction = divmod(amount, 10**decimals)
    return f"{whole}.{fraction:0{decimals}d}".rstrip("0").rstrip(".") if decimals else str(amount)


_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:1200px;color:#1b1f23;
padding:0 1rem;line-height:1.4}
h1{margin-bottom:.2rem}.meta{color:#57606a}
.summary{padding:1rem 1.2rem;border-radius:8px;font-size:1.3rem;font-weight:600;margin:1.2rem 0}
.summary.ok{background:#dafbe1;color:#116329;border:2px solid #2da44e}
.summary.failed{background:#ffebe9;color:#a40e26;border:2px solid #cf222e}
table{border-collapse:collapse;width:100%;margin:.8rem 0 2rem;font-size:.9rem}
th,td{border:1px solid #d0d7de;padding:.35rem .5rem;vertical-align:top;text-align:left}
th{background:#f6f8fa}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.fail{background:#ffebe9}tr.fail td.status{background:#cf222e;color:#fff;font-weight:700}
tr.pass td.status{background:#2da44e;color:#fff;font-weight:700}
tr.fail td.message{color:#a40e26;font-weight:600}
pre{margin:0;white-space:pre-wrap;word-break:break-all;font-size:.8rem;max-height:24rem;overflow:auto}
code{word-break:break-all}td.name code{word-break:normal;white-space:nowrap}.k{color:#57606a}.bad{color:#cf222e}
.plots{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:1rem}
summary{cursor:pointer;color:#57606a}figure{margin:0}img.plot{width:100%;height:auto;border:1px solid #d0d7de;border-radius:6px}
"""


def render_html(result: Mapping[str, Any] | Any, *, token_decimals: int = TOKEN_DECIMALS) -> str:
    """The report of one audit result (its ``to_dict()``, or an object that has one: ``AuditResult``) as a
    self-contained HTML document.

    Raises:
        ReportError: the result lacks a field or has one of the wrong type; the message names it.
    """
    if not isinstance(result, Mapping) and callable(getattr(result, "to_dict", None)):
        result = result.to_dict()
    ok = _field(result, "ok", bool, "result")
    chain_id = _field(result, "chain_id", int, "result")
    block = _field(result, "audited_at_block", int, "result")
    contracts = _field(result, "contracts", Mapping, "result")
    checks = _checks(result)
    rounds = _rounds(result)
    failures = sum(not c["ok"] for c in checks)

    if failures:
        summary = (
            f'<div class="summary failed" id="summary">{failures} of {len(checks)} check'
            f"{'s' if len(checks) != 1 else ''} failed</div>"
        )
    elif ok:
        summary = f'<div class="summary ok" id="summary">All green: {len(checks)} checks passed</div>'
    else:  # the audit says not ok but no check failed: say so rather than show green
        summary = f'<div class="summary failed" id="summary">Audit not ok ({len(checks)} checks, none failed)</div>'
    contract_rows = "".join(f"<tr><td>{_e(n)}</td><td><code>{_e(a)}</code></td></tr>" for n, a in contracts.items())
    plots = "\n".join(
        [
            _img(plot_accuracy(rounds), "accuracy per round", "accuracy"),
            _img(plot_epsilon(rounds), "cumulative epsilon per partner against its cap", "epsilon"),
            _img(plot_payouts(rounds, token_decimals), "payouts per partner per round", "payouts"),
            _img(plot_gas(rounds), "gas used per round", "gas"),
        ]
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>lepton-ledger audit: chain {chain_id}, block {block}</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>lepton-ledger audit report</h1>
<p class="meta">Chain {chain_id}, audited at block {block}; {len(rounds)} round(s), {len(checks)} check(s).</p>
{summary}
<h2>Contracts</h2>
<table><thead><tr><th>contract</th><th>address</th></tr></thead><tbody>{contract_rows}</tbody></table>
<h2>Plots</h2>
<div class="plots">
{plots}
</div>
<h2>Checks</h2>
<p class="meta">Failures first.</p>
<table id="checks"><thead><tr><th>result</th><th>#</th><th>check</th><th>where</th><th>message</th>
<th>evidence</th></tr></thead>
<tbody>
{_check_rows(checks)}
</tbody></table>
<h2>Rounds</h2>
<table id="rounds"><thead><tr><th>agreement</th><th>round</th><th>accuracy</th><th>gas</th><th>block</th>
<th>partners: cumulative epsilon / cap, payout (tokens)</th></tr></thead>
<tbody>
{_round_rows(rounds, token_decimals)}
</tbody></table>
</body>
</html>
"""


def write_html(result: Mapping[str, Any] | Any, path: str | Path, *, token_decimals: int = TOKEN_DECIMALS) -> Path:
    """Renders `result` and writes it to `path` (UTF-8); returns the path. Nothing is written when the result
    is malformed.

    Raises:
        ReportError: as :func:`render_html`.
    """
    document = render_html(result, token_decimals=token_decimals)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(document, encoding="utf-8")
    return path


# Public for the service's dashboard, which wears the report's style and writes amounts as it does.
STYLE = _STYLE
format_tokens = _tokens
