"""The dashboard of a finished demo, served by `lepton-ledger serve --workdir` on a copy of the demo's folder and
opened in headless Chromium: it loads with no console error under its Content-Security-Policy, shows each
partner's on-chain epsilon as the demo's summary.json records it, and its plots are real PNGs. Anonymous, it
shows the chain's facts only; what the service alone holds shows to whom the API shows it."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
from pathlib import Path

import pytest
from conftest import Server
from PIL import Image
from rich.console import Console

from lepton_ledger.rounds.demo import run_demo

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dashboard-demo") / "demo-out"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LEPTON_DATA_DIR", str(tmp_path_factory.mktemp("dashboard-data")))
        run_demo(out, partners=2, rounds=2, mode="single", console=Console(quiet=True))
    return out


@pytest.fixture
def served(demo, tmp_path):
    """`serve --workdir` on a copy of the demo folder (the service writes its own files and chain state there), its
    sign-in domain left to serve: the address it listens on."""
    folder = tmp_path / "demo-copy"
    shutil.copytree(demo, folder)
    server = Server(
        folder, args=("--workdir", str(folder)), LEPTON_API_COORDINATOR_KEY="", LEPTON_API_DOMAIN="", LEPTON_API_URI=""
    )
    try:
        server.start()
        yield server, folder
    finally:
        server.client.close()
        server.stop()


def _coordinator_headers(server, folder: Path) -> dict[str, str]:
    """A bearer token of the demo's coordinator (its development key in the folder), as the API's sign-in gives."""
    from eth_account import Account

    from lepton_ledger.api.client import ServiceClient

    key = json.loads((folder / "keys" / "dev-keys.json").read_text())["parties"]["coordinator"]
    chain_id = json.loads((folder / "deployment.json").read_text())["chain_id"]
    account = Account.from_key(key["ethereum_private_key"])
    with ServiceClient(str(server.client.base_url), account, chain_id=chain_id) as client:
        return {"Authorization": f"Bearer {client.sign_in()}"}


def test_the_dashboard_answers_with_its_csp_and_the_chains_epsilons(served):
    server, folder = served
    reply = server.client.get("/dashboard")
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/html"), reply.text
    csp = reply.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp
    assert "<script" not in reply.text
    summary = json.loads((folder / "summary.json").read_text())
    last = summary["per_round"][-1]["partners"]
    shown = dict(
        re.findall(
            r'<tr class="party" data-partner="(0x[0-9a-fA-F]{40})">.*?'
            r'<td class="num epsilon">([0-9.]+)</td>',
            reply.text,
            flags=re.DOTALL,
        )
    )
    assert shown == {address: f"{p['epsilon_fixed'] / 1e6:.6f}" for address, p in last.items()}


@pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="/usr/bin/chromium is absent (Debian package `chromium`)",
)
def test_the_dashboard_opens_in_headless_chromium_with_real_plots(served):
    from playwright.sync_api import sync_playwright

    server, folder = served
    url = f"http://127.0.0.1:{server.port}/dashboard"
    headers = _coordinator_headers(server, folder)  # the plots come from round reports: the coordinator's view
    problems: list[str] = []
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
            ],
        )
        try:
            page = browser.new_page(extra_http_headers=headers)
            page.on(
                "console",
                lambda m: m.type in ("error", "warning") and problems.append(f"{m.type}: {m.text}"),
            )
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on(
                "requestfailed",
                lambda r: problems.append(f"request failed: {r.url} {r.failure}"),
            )
            page.on("request", lambda r: requests.append(r.url))
            response = page.goto(url, wait_until="load")
            csp = response.headers.get("content-security-policy", "")
            images = page.eval_on_selector_all(
                "img.plot", "imgs => imgs.map(i => [i.id, i.complete, i.naturalWidth, i.getAttribute('src')])"
            )
            epsilons = page.eval_on_selector_all(
                "tr.party", "rows => rows.map(r => [r.dataset.partner, r.querySelector('td.epsilon').innerText])"
            )
        finally:
            browser.close()
    assert problems == []
    assert all(u == url or u.startswith("data:") for u in requests), requests  # nothing fetched from anywhere
    assert "default-src 'none'" in csp
    summary = json.loads((folder / "summary.json").read_text())
    last = summary["per_round"][-1]["partners"]
    assert {a: float(e) for a, e in epsilons} == pytest.approx({a: p["epsilon"] for a, p in last.items()}, abs=1e-6)
    assert {i[0] for i in images} == {"plot-accuracy", "plot-epsilon", "plot-payouts"}
    for name, complete, width, src in images:
        assert complete and width > 0, name
        png = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        png.load()  # decodes the whole PNG: a truncated or bogus one raises here
        assert png.format == "PNG" and png.width >= 600, name
        rgb = png.convert("RGB")
        assert len(rgb.getcolors(maxcolors=rgb.width * rgb.height)) > 32, name  # drawn, not blank


def test_stopping_the_service_stops_and_saves_the_demo_chain_it_runs(served):
    server, folder = served
    state = folder / "chain-state.json"
    assert _processes_naming(state)  # the service's anvil, on the folder's state file
    before = state.stat().st_mtime_ns
    server.stop()  # SIGTERM, then waits for the process to exit
    assert _processes_naming(state) == []
    assert state.stat().st_mtime_ns >= before and json.loads(state.read_text())  # written back whole


def _processes_naming(path: Path) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if str(path).encode() in (proc / "cmdline").read_bytes():
                    found.append(int(proc.name))
            except OSError:  # the process ended while we looked
                continue
    return found


def test_a_round_report_with_hostile_values_does_not_take_the_dashboard_down(service):
    """A report is the coordinator's word (only its digest is on-chain): an accuracy that is no number or out of
    any plot's range, or a partner line naming no address (matplotlib reads `$...$` in a label as TeX), must not
    make every visitor's page an error. The agreement is a fresh partner's alone, so the others' reads stand."""
    from service_world import commit_updates, lone_partner_agreement

    from lepton_ledger.protocol.addressing import publish
    from lepton_ledger.rounds.report import MAX_REPORT_BYTES, fetch_by_digest

    world = service
    gamma, agreement_id, coordinator = lone_partner_agreement(world, "hostile-report")
    _, model = coordinator.publish_model(_logreg(world))
    round_id = coordinator.open_round(agreement_id, model, world.w3.eth.get_block("latest")["timestamp"] + 3600)
    commit_updates(
        world.tx,
        world.d,
        world.store,
        world.roles,
        [gamma],
        world.split,
        agreement_id,
        round_id,
        world.data_dir / f"hostile-report-{agreement_id}",
    )

    finished = world.d.ledger.functions.round(world.agreement_id, world.round_id).call()
    report = json.loads(fetch_by_digest(world.store, bytes(finished[9]), max_bytes=MAX_REPORT_BYTES))
    report.update(agreement_id=agreement_id, round=round_id)
    report["metrics"].update(accuracy_after={"not": "a number"}, accuracy_before=1e308)
    report["partners"][0]["partner"] = "$\\frac{$"
    _, digest = publish(world.store, json.dumps(report).encode())
    receipt = world.tx.transact(
        world.d.ledger.functions.finalizeRound(agreement_id, round_id, b"\x01" * 32, digest, bytes(32), 0),
        world.roles.coordinator.address,
    )
    world.wait_block(receipt["blockNumber"])
    page = world.api.get("/dashboard", headers=world.headers(world.roles.coordinator))
    assert page.status_code == 200, page.text
    assert f'id="agreement-{agreement_id}"' in page.text and "$\\frac{$" in page.text  # its payout line
    assert "partner is not an address" in page.text  # gamma's rewards cannot be read: said on its row


def _logreg(world):
    from lepton_ledger import fl

    return fl.build_model("logreg", world.split.input_dim, world.split.num_classes, seed=0).state_dict()


def test_anonymous_visitors_see_the_chains_facts_and_callers_what_the_api_shows_them(service):
    """One rule: the page shows anonymously only what the API shows anonymously. Payouts and plots come from round
    reports (blobs the API gives the agreement's role holders), jobs are the service's (the API shows an
    agreement's to its role holders), the latest audit is the overseers'. On-chain facts show to anyone."""
    from lepton_ledger.audit.html import TOKEN_DECIMALS, format_tokens

    world = service
    payout = f"<code>{world.alpha.address}</code> {format_tokens(world.payouts[world.alpha.address], TOKEN_DECIMALS)}"

    def page(account=None) -> str:
        reply = world.api.get("/dashboard", headers=world.headers(account) if account else {})
        assert reply.status_code == 200, reply.text
        return reply.text

    anonymous = page()
    assert f'data-partner="{world.alpha.address}"' in anonymous and 'class="num epsilon"' in anonymous  # on-chain
    for hidden in (payout, 'class="plot"', 'id="jobs"', 'id="audit"'):
        assert hidden not in anonymous, hidden
    party = page(world.alpha)  # a party of the agreement: its reports' payouts, plots and jobs, no audit
    assert payout in party and 'class="plot"' in party and 'id="jobs"' in party and 'id="audit"' not in party
    outsider = page(world.outsider)  # party to nothing: the chain's facts only
    assert payout not in outsider and 'class="plot"' not in outsider
    overseer = page(world.roles.auditor)
    assert payout in overseer and 'id="audit"' in overseer
    refused = world.api.get("/dashboard", headers={"Authorization": "Bearer not-a-token"})
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "Unauthorized"
