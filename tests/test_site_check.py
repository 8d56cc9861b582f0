"""The site checker fails where a reader would see something broken, and passes a clean page.

A tiny site is written to a temporary folder: one clean page and one page per kind of breakage (raw TeX that was
never rendered, a missing image, a request to another host, a dead link and a dead anchor, a console error).
The checker must report each breakage on its page, and nothing on the clean one. Needs Chromium and its driver
(`apt-get install chromium chromium-driver`) and selenium (`requirements-site.txt`); `.ci/run` installs them.
"""

from __future__ import annotations

import importlib.util
import struct
import sys
import zlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load_checker():
    spec = importlib.util.spec_from_file_location("site_check", ROOT / "tools" / "site_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


site_check = _load_checker()


def _browser_missing() -> str | None:
    if importlib.util.find_spec("selenium") is None:
        return "selenium is not installed (pip install -r requirements-site.txt)"
    try:
        site_check.find_browser()
    except RuntimeError as error:
        return str(error)
    return None


def _png(width: int = 4, height: int = 3) -> bytes:
    """A valid, tiny RGB PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + b"\x80\x40\x20" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def _page(body: str) -> str:
    return f"<!doctype html><html><head><meta charset='utf-8'><title>t</title></head><body>{body}</body></html>"


PAGES = {
    "good.html": "<h1 id='top'>Fine</h1><p>A figure:</p><img src='figure.png' alt='f'>"
    "<p><a href='good.html#top'>self</a> <a href='sub/'>sub</a> <a href='https://example.org/'>outside link</a></p>"
    "<pre>$$ code is not math $$</pre>",
    "sub/index.html": "<p>a page in a folder, <a href='../good.html'>back</a></p>",
    "raw-tex.html": "<p>The loss is</p><p>$$ L = \\frac{1}{N} \\sum_i |V_i|^2 $$</p>",
    "missing-image.html": "<p><img src='no-such-figure.png' alt='gone'></p>",
    "external.html": "<p>x</p><script src='https://cdn.example.invalid/lib.js'></script>",
    "dead-link.html": "<p><a href='nowhere.html'>missing page</a> "
                      "<a href='good.html#no-such-anchor'>missing anchor</a></p>",
    "console-error.html": "<p>x</p><script>console.error('something broke');</script>",
}

EXPECTED = {
    "raw-tex.html": {"raw-tex", "formulas"},
    "missing-image.html": {"image"},
    "external.html": {"external"},
    "dead-link.html": {"dead-link"},
    "console-error.html": {"console"},
}


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    reason = _browser_missing()
    if reason:
        pytest.skip(f"site check needs a browser: {reason}")
    site = tmp_path_factory.mktemp("site")
    for name, body in PAGES.items():
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_text(_page(body), encoding="utf-8")
    (site / "figure.png").write_bytes(_png())
    out = tmp_path_factory.mktemp("out")
    return {r.path: r for r in site_check.check_site(site, out, verbose=False)}


def test_clean_pages_pass(reports):
    for name in ("good.html", "sub/index.html"):
        assert reports[name].ok, f"{name}: {reports[name].problems}"
    assert reports["good.html"].images == 1
    assert reports["good.html"].links_checked == 2  # the outside link is not followed


@pytest.mark.parametrize("page", sorted(EXPECTED))
def test_each_breakage_is_reported(reports, page):
    kinds = {problem.kind for problem in reports[page].problems}
    missing = EXPECTED[page] - kinds
    assert not missing, f"{page}: expected {sorted(EXPECTED[page])} among the problems, got {reports[page].problems}"


def test_dead_link_names_both_the_page_and_the_anchor(reports):
    details = " ".join(p.detail for p in reports["dead-link.html"].problems)
    assert "nowhere.html" in details and "no-such-anchor" in details


def test_formula_counting_without_a_browser():
    counted = site_check.TEX_SEGMENT.findall("costs $x^2$ and $$\\int f$$, \\(a\\) and \\[b\\]; a price of $ 5 is not")
    assert len(counted) == 4
