"""The auditor's HTML report: real PNG plots inlined, failures first and red, every untrusted string escaped,
and a page that headless Chromium opens without errors or any request beyond the file itself."""

from __future__ import annotations

import base64
import copy
import io
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from lepton_ledger.audit.html import ReportError, render_html, write_html

CHROMIUM = Path("/usr/bin/chromium")
HOSTILE = '<script>alert("x")</script>'
A, B = "0xBcd4042DE499D14e55001CcbB24a551F3b954096", "0x71bE63f3384f5fb98995898A86B02Fb2426c5788"
CID = "bafkreidd6wrtggcagapcumnwbcqvcmdjv6divwwuv6kfrc3yrzmscybs6m"


def _round(n: int, eps: float, payout_a: int, *, accuracy: float | None = 0.5) -> dict:
    return {
        "agreement_id": 1,
        "round": n,
        "accuracy": accuracy,
        "gas_used": 900_000 + 1000 * n,
        "block": 100 + n,
        "partners": {
            A: {"cumulative_epsilon": eps, "epsilon_cap": 10.0, "payout": str(payout_a), "accepted": True},
            B: {
                "cumulative_epsilon": eps * 1.1,
                "epsilon_cap": 10.0,
                "payout": str(300 * 10**18 - payout_a),
                "accepted": n != 2,
            },
        },
    }


def _check(name: str, ok: bool, message: str, **where) -> dict:
    base = {"agreement_id": None, "round": None, "partner": None, "cid": None, "evidence": {}}
    return {**base, "name": name, "ok": ok, "message": message, **where}


@pytest.fixture
def result() -> dict:
    """An audit result with one failed check among passing ones (the shape of AuditResult.to_dict())."""
    return {
        "ok": False,
        "chain_id": 31337,
        "audited_at_block": 240,
        "contracts": {"RoundLedger": "0xCf7Ed3AccA5a467e9e704C703E8D87F634fB0Fc9"},
        "checks": [
            _check("cid_resolves", True, "every CID resolves", agreement_id=1, round=1, cid=CID),
            _check("signature", True, "manifest signed by the partner", agreement_id=1, round=1, partner=A),
            _check(
                "epsilon_recomputes",
                False,
                "committed epsilon 3.20 differs from recomputed 3.17",
                agreement_id=1,
                round=2,
                partner=B,
                cid=CID,
                evidence={"tx": "0xabc", "expected": 3.17, "found": 3.2, "block": 122},
            ),
            _check("vault_conserves", True, "funded == paid + claimable + slashed + unallocated", agreement_id=1),
        ],
        "rounds": [
            _round(1, 3.17, 150 * 10**18, accuracy=0.75),
            _round(2, 3.86, 140 * 10**18, accuracy=0.81),
            _round(3, 4.5, 155 * 10**18, accuracy=None),
        ],
        "rounds_checked": [],
        "rounds_rechecked": [],
    }


class _Tags(HTMLParser):
    """Every start tag with its attributes, and the text of <title>."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _tags(document: str) -> list[tuple[str, dict]]:
    parser = _Tags()
    parser.feed(document)
    return parser.tags


def _plots(document: str) -> dict[str, Image.Image]:
    images = {}
    for tag, attrs in _tags(document):
        if tag == "img":
            prefix = "data:image/png;base64,"
            assert attrs["src"].startswith(prefix), attrs["src"][:40]
            image = Image.open(io.BytesIO(base64.b64decode(attrs["src"][len(prefix) :])))
            image.load()  # decodes the whole PNG: a truncated or bogus one raises here
            images[attrs["id"]] = image
    return images


def _colours(image: Image.Image) -> set[tuple[int, int, int]]:
    rgb = image.convert("RGB")
    return {colour for _, colour in rgb.getcolors(maxcolors=rgb.width * rgb.height)}


def test_plots_are_real_pngs_that_draw_the_data(result):
    plots = _plots(render_html(result))
    assert set(plots) == {"plot-accuracy", "plot-epsilon", "plot-payouts", "plot-gas"}
    for name, image in plots.items():
        assert image.format == "PNG" and image.width >= 600 and image.height >= 250, name
        assert len(_colours(image)) > 32, name  # text, axes and anti-aliased lines: not a blank or flat image
    # The first partner's colour (matplotlib's C0, #1f77b4) is drawn in the epsilon and payout plots only when
    # there is data; a result without rounds gives plots without it.
    c0 = (0x1F, 0x77, 0xB4)
    empty = _plots(render_html({**result, "rounds": []}))
    for name in ("plot-epsilon", "plot-payouts"):
        assert c0 in _colours(plots[name]) and c0 not in _colours(empty[name]), name


def test_failed_check_comes_first_in_red_with_its_message_and_evidence(result):
    document = render_html(result)
    assert '<div class="summary failed" id="summary">1 of 4 checks failed</div>' in document
    rows = re.findall(r'<tr class="check (pass|fail)" id="check-(\d+)">', document)
    assert rows[0] == ("fail", "2")  # the failed check (index 2 in the result) leads, under its own index
    assert sorted(int(i) for _, i in rows) == [0, 1, 2, 3] and [s for s, _ in rows].count("fail") == 1
    failed_row = document[document.index('id="check-2"') :].split("</tr>")[0]
    assert "committed epsilon 3.20 differs from recomputed 3.17" in failed_row and ">FAIL<" in failed_row
    assert B in failed_row and CID in failed_row and "&quot;found&quot;: 3.2" in failed_row
    assert "<details open>" in failed_row  # a failure's evidence is shown; a pass's is folded
    passed_rows = [document[document.index(f'id="check-{i}"') :].split("</tr>")[0] for i in (0, 1, 3)]
    assert all("<details open>" not in row for row in passed_rows)


def test_all_green_summary_when_every_check_passes(result):
    result["checks"] = [c for c in result["checks"] if c["ok"]]
    result["ok"] = True
    document = render_html(result)
    assert '<div class="summary ok" id="summary">All green: 3 checks passed</div>' in document
    assert 'class="check fail"' not in document


def test_hostile_strings_are_escaped_everywhere(result):
    evil_partner = f'0x"><img src=x onerror=alert(1)>{HOSTILE}'
    result["contracts"][HOSTILE] = '"><iframe src="https://evil.example">'
    result["checks"].append(
        _check(
            HOSTILE,
            False,
            f"</td>{HOSTILE}",
            partner=evil_partner,
            cid="'><svg onload=x>",
            evidence={HOSTILE: "</pre><script>x()</script>", "n": [1, "<b>"]},
        )
    )
    result["rounds"][0]["partners"][evil_partner] = dict(result["rounds"][0]["partners"][A])
    document = render_html(result)

    tags = _tags(document)
    assert {t for t, _ in tags} <= {
        "html",
        "head",
        "meta",
        "title",
        "style",
        "body",
        "h1",
        "h2",
        "p",
        "div",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
        "code",
        "span",
        "br",
        "pre",
        "figure",
        "img",
        "b",
        "details",
        "summary",
    }
    assert not any(k.startswith("on") for _, attrs in tags for k in attrs)  # no event handler anywhere
    assert [t for t, _ in tags].count("img") == 4  # the four plots, nothing a string smuggled in
    assert "<script" not in document and "<iframe" not in document and "<svg" not in document
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in document  # shown, as text
    assert "&lt;/pre&gt;&lt;script&gt;x()&lt;/script&gt;" in document


def test_malformed_result_names_the_field_and_writes_nothing(result, tmp_path):
    out = tmp_path / "report.html"
    bad = copy.deepcopy(result)
    bad["rounds"][1]["partners"][A]["payout"] = "12.5"
    with pytest.raises(ReportError, match=r"rounds\[1\]\.partners\[.*\]\.payout: expected a decimal string"):
        write_html(bad, out)
    bad = copy.deepcopy(result)
    del bad["checks"][0]["message"]
    with pytest.raises(ReportError, match=r"checks\[0\]\.message: missing"):
        write_html(bad, out)
    bad = copy.deepcopy(result)
    bad["rounds"][0]["accuracy"] = float("nan")
    with pytest.raises(ReportError, match=r"rounds\[0\]\.accuracy: expected a finite number"):
        write_html(bad, out)
    assert not out.exists()


@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent (Debian package `chromium`)")
def test_report_opens_in_headless_chromium_without_errors(result, tmp_path):
    from playwright.sync_api import sync_playwright

    path = write_html(result, tmp_path / "report.html")
    url = path.resolve().as_uri()
    problems: list[str] = []
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
        )
        try:
            page = browser.new_page()
            page.on("console", lambda m: m.type in ("error", "warning") and problems.append(f"{m.type}: {m.text}"))
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url} {r.failure}"))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(url, wait_until="load")
            widths = page.eval_on_selector_all("img.plot", "imgs => imgs.map(i => [i.complete, i.naturalWidth])")
            summary = page.inner_text("#summary")
            fail_bg = page.eval_on_selector("#check-2", "r => getComputedStyle(r).backgroundColor")
            pass_bg = page.eval_on_selector("#check-0", "r => getComputedStyle(r).backgroundColor")
            status_bg = page.eval_on_selector("#check-2 td.status", "c => getComputedStyle(c).backgroundColor")
        finally:
            browser.close()
    assert problems == []
    assert all(u == url or u.startswith("data:") for u in requests), requests  # nothing fetched from anywhere
    assert len(widths) == 4 and all(complete and width > 0 for complete, width in widths), widths
    assert summary == "1 of 4 checks failed"
    red = tuple(int(v) for v in re.findall(r"\d+", status_bg)[:3])
    assert red == (0xCF, 0x22, 0x2E) and fail_bg != pass_bg


def test_an_audit_result_object_renders_like_its_dict(result):
    from lepton_ledger.audit.model import AuditResult, CheckResult, RoundSummary

    checks = [CheckResult(**{k: v for k, v in c.items() if k != "ok"}, ok=c["ok"]) for c in result["checks"]]
    audit = AuditResult(
        chain_id=result["chain_id"],
        contracts=result["contracts"],
        audited_at_block=result["audited_at_block"],
        checks=checks,
        rounds=[RoundSummary.from_dict(r) for r in result["rounds"]],
    )
    assert audit.to_dict() == result  # the fixture has exactly the shape the core writes
    assert render_html(audit) == render_html(result)


def test_plots_name_partners_and_start_at_the_initial_accuracy(result):
    named = copy.deepcopy(result)
    for r in named["rounds"]:
        r["partners"][A]["name"] = "hospital-$x^2$-north"  # mathtext and length: made a plain label
        r["partners"][B]["name"] = "clinic-south"
    named["rounds"][0]["accuracy_before"] = 0.1
    plain, labelled = _plots(render_html(result)), _plots(render_html(named))
    for name in ("plot-epsilon", "plot-payouts", "plot-accuracy"):
        assert labelled[name].tobytes() != plain[name].tobytes(), name  # the legend names, the start point
    assert labelled["plot-gas"].tobytes() == plain["plot-gas"].tobytes()
    named["rounds"][0]["partners"][A]["name"] = 42
    with pytest.raises(ReportError, match=r"name"):
        render_html(named)
