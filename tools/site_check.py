"""Open every page of the built site in a real browser and fail on anything a reader would see broken.

    python tools/site_check.py [site] [--out outputs/site-check]      # `make site-check` runs it

A headless Chromium (Debian's ``chromium`` and ``chromium-driver`` packages, driven through Selenium) loads each
page from a local server, runs its JavaScript, waits for MathJax and the images, and reports, page by page:

* ``raw-tex``: TeX delimiters (``$$``, ``$...$``, ``\\(``, ``\\[``, ``\\begin{``) left in the visible text;
* ``formulas``: fewer rendered formulas than the page's HTML holds, or a formula MathJax could not parse;
* ``image``: an image whose ``naturalWidth`` is 0 (missing or broken);
* ``console``: an error in the browser console (a failed script, a 404, an exception);
* ``external``: a request to any host other than the local server (the site must work offline);
* ``http``: a request to the local server that failed or answered with an error status;
* ``dead-link``: a link to a page of the site that does not exist, or to an anchor that the page lacks.

It saves a screenshot of each lesson page (its first screen and the whole page) under ``OUT/screenshots/`` and
a JSON report in ``OUT/report.json``; it exits with status 1 when any page has a problem.
"""

from __future__ import annotations

import argparse
import base64
import functools
import html.parser
import http.server
import json
import os
import re
import shutil
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--metrics-recording-only",
    "--password-store=basic",
    "--use-mock-keychain",
    "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication",
    "--hide-scrollbars",
    "--window-size=1280,900",
]

# Text that MathJax leaves alone and that the checks skip: code, scripts, and the hidden copies of notebook code
# cells that the copy buttons read.
SKIP_TAGS = {"script", "style", "pre", "code", "textarea", "noscript", "svg", "math", "title"}
SKIP_CLASSES = {"clipboard-copy-txt", "tex2jax_ignore", "md-search"}

# One formula in plain text: display $$..$$, \[..\], \(..\), or inline $..$ (may wrap a line, not a paragraph;
# not `$ 5`, not an escaped \$).
TEX_SEGMENT = re.compile(
    r"\$\$.+?\$\$|\\\[.+?\\\]|\\\(.+?\\\)|(?<![\\$])\$(?=\S)(?:[^$\n]|\n(?!\s*\n))+?(?<=\S)\$(?!\$)"
    r"|\\begin\{[a-zA-Z*]+\}",
    re.S,
)
# Leftover delimiters after rendering (any of these in visible text means a formula was not typeset).
RAW_TEX = re.compile(r"\$\$|\\\(|\\\)|\\\[|\\\]|\\begin\{|(?<![\\$])\$(?=\S)[^$\n]*?[\\^_{}][^$\n]*?(?<=\S)\$")


@dataclass
class Problem:
    kind: str
    detail: str


@dataclass
class PageReport:
    path: str
    formulas_expected: int = 0
    formulas_rendered: int = 0
    images: int = 0
    links_checked: int = 0
    seconds: float = 0.0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


# ------------------------------------------------------------------------------------ static HTML analysis


class _Scan(html.parser.HTMLParser):
    """Counts the formulas of a page's HTML (before any script runs) and collects its ids."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, bool, bool]] = []  # (tag, skipped, inside an arithmatex element)
        self.ids: set[str] = set()
        self.arithmatex = 0
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("id", "name"):
            if attrs.get(key):
                self.ids.add(attrs[key])
        if tag in self.VOID:
            return
        classes = set((attrs.get("class") or "").split())
        parent_skip = self.stack[-1][1] if self.stack else False
        parent_math = self.stack[-1][2] if self.stack else False
        is_math = "arithmatex" in classes
        if is_math and not parent_skip and not parent_math:
            self.arithmatex += 1
        skipped = parent_skip or tag in SKIP_TAGS or bool(classes & SKIP_CLASSES)
        self.stack.append((tag, skipped, parent_math or is_math))

    def handle_startendtag(self, tag, attrs):
        for key in ("id", "name"):
            value = dict(attrs).get(key)
            if value:
                self.ids.add(value)

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                return

    def handle_data(self, data):
        if self.stack and (self.stack[-1][1] or self.stack[-1][2]):
            return
        self.text.append(data)


@functools.lru_cache(maxsize=None)
def scan_html(path: Path) -> _Scan:
    scan = _Scan()
    scan.feed(path.read_text(encoding="utf-8", errors="replace"))
    return scan


def expected_formulas(path: Path) -> int:
    """Formulas a page holds: arithmatex elements plus TeX segments in the rest of its visible text."""
    scan = scan_html(path)
    # join text in blocks so that a formula split by an entity or a tag boundary is still seen once
    return scan.arithmatex + len(TEX_SEGMENT.findall("\n".join(scan.text)))


# --------------------------------------------------------------------------------------------- the server


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # the checker reports failures itself
        pass


def serve(site: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


# --------------------------------------------------------------------------------------------- the browser


def find_browser() -> tuple[str, str]:
    """Paths of Chromium and its driver, or a RuntimeError saying how to install them."""
    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    driver = os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver")
    if not chromium or not driver:
        raise RuntimeError(
            "Chromium and its driver are needed: apt-get install -y chromium chromium-driver "
            "(or set CHROMIUM and CHROMEDRIVER)"
        )
    return chromium, driver


def start_browser(profile_dir: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = find_browser()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile_dir}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    os.environ.setdefault("SE_AVOID_STATS", "true")
    browser = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    browser.set_script_timeout(90)
    browser.set_page_load_timeout(90)
    return browser


# Runs in the page: waits for the load, MathJax's first typesetting, the fonts and every image; then measures.
PAGE_PROBE = r"""
const done = arguments[arguments.length - 1];
const skipTags = new Set(%(skip_tags)s);
const skipClasses = %(skip_classes)s;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
(async () => {
  const t0 = Date.now();
  while (document.readyState !== "complete" && Date.now() - t0 < 30000) await sleep(50);
  const mj = window.MathJax;
  if (mj && mj.startup && mj.startup.promise) {
    try { await mj.startup.promise; } catch (e) { console.error("MathJax failed: " + e); }
  }
  const imgs = Array.from(document.images);
  for (const img of imgs) if (img.loading === "lazy") img.loading = "eager";
  await Promise.all(imgs.map((img) => img.complete ? null : new Promise((r) => {
    img.addEventListener("load", r); img.addEventListener("error", r); setTimeout(r, 10000);
  })));
  if (document.fonts && document.fonts.ready) await Promise.race([document.fonts.ready, sleep(5000)]);
  await sleep(300);  // late console messages and font requests
  const skipped = (el) => {
    for (let e = el; e && e !== document.body; e = e.parentElement) {
      if (skipTags.has(e.tagName.toLowerCase()) || e.tagName.toLowerCase() === "mjx-container") return true;
      if (e.classList && skipClasses.some((c) => e.classList.contains(c))) return true;
    }
    return false;
  };
  const chunks = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    if (n.textContent.trim() && !skipped(n.parentElement)) chunks.push(n.textContent);
  }
  done({
    text: chunks.join("\n"),
    rendered: document.querySelectorAll("mjx-container").length,
    mathErrors: Array.from(document.querySelectorAll("mjx-merror"))
      .map((e) => e.getAttribute("data-mjx-error") || e.textContent)
      .slice(0, 5),
    images: imgs.map((img) => ({ src: img.currentSrc || img.src, w: img.naturalWidth })),
    links: Array.from(document.querySelectorAll("a[href]")).map((a) => a.href),
  });
})();
""" % {"skip_tags": json.dumps(sorted(SKIP_TAGS)), "skip_classes": json.dumps(sorted(SKIP_CLASSES))}


def _short(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def local_target(site: Path, base: str, url: str) -> tuple[Path | None, str]:
    """The file a same-site URL serves (None when there is none) and its fragment."""
    parts = urlsplit(url)
    path = unquote(parts.path)
    target = site / path.lstrip("/")
    if path.endswith("/") or target.is_dir():
        target = target / "index.html"
    return (target if target.is_file() else None), unquote(parts.fragment)


def check_page(browser, site: Path, base: str, path: Path, shots: Path | None, shot_name: str | None) -> PageReport:
    rel = path.relative_to(site).as_posix()
    url = f"{base}/{rel}"
    report = PageReport(rel)
    start = time.time()
    browser.get_log("browser"), browser.get_log("performance")  # drop anything left from the previous page
    try:
        browser.get(url)
        data = browser.execute_async_script(PAGE_PROBE)
    except Exception as error:  # noqa: BLE001 - a page that cannot be measured is a failure, not a crash
        report.problems.append(Problem("console", f"page could not be measured: {_short(str(error))}"))
        return report

    # math
    report.formulas_expected = expected_formulas(path)
    report.formulas_rendered = data["rendered"]
    for raw in RAW_TEX.finditer(data["text"]):
        snippet = data["text"][max(0, raw.start() - 30) : raw.end() + 30]
        message = f"TeX delimiter {raw.group(0)[:20]!r} not rendered in: {_short(snippet)}"
        report.problems.append(Problem("raw-tex", message))
        if len(report.problems) >= 5:
            break
    if data["rendered"] < report.formulas_expected:
        report.problems.append(
            Problem("formulas", f"{data['rendered']} formulas rendered, the page has {report.formulas_expected}")
        )
    for message in data["mathErrors"]:
        report.problems.append(Problem("formulas", f"MathJax could not typeset a formula: {_short(message)}"))

    # images
    report.images = len(data["images"])
    for image in data["images"]:
        if not image["w"]:
            message = f"image not displayed (naturalWidth 0): {_short(image['src'], 100)}"
            report.problems.append(Problem("image", message))

    # console
    for entry in browser.get_log("browser"):
        if entry.get("level") == "SEVERE":
            report.problems.append(Problem("console", _short(entry.get("message", ""), 200)))

    # network
    host = urlsplit(base).netloc
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        method, params = message.get("method"), message.get("params", {})
        if method == "Network.requestWillBeSent":
            request_url = params["request"]["url"]
            parts = urlsplit(request_url)
            if parts.scheme in ("http", "https", "ws", "wss") and parts.netloc != host:
                report.problems.append(Problem("external", f"request to another host: {_short(request_url, 150)}"))
        elif method == "Network.responseReceived":
            response = params["response"]
            if urlsplit(response["url"]).netloc == host and response.get("status", 200) >= 400:
                report.problems.append(Problem("http", f"HTTP {response['status']} for {response['url'][len(base):]}"))

    # links inside the site
    for href in sorted(set(data["links"])):
        parts = urlsplit(href)
        if parts.scheme not in ("http", "https") or parts.netloc != host:
            continue
        report.links_checked += 1
        target, fragment = local_target(site, base, href)
        if target is None:
            report.problems.append(Problem("dead-link", f"link to a missing page: {href[len(base):]}"))
        elif fragment and target.suffix == ".html" and fragment not in scan_html(target).ids:
            report.problems.append(Problem("dead-link", f"link to a missing anchor: {href[len(base):]}"))

    if shots is not None and shot_name:
        shots.mkdir(parents=True, exist_ok=True)
        browser.execute_script("window.scrollTo(0, 0)")
        browser.save_screenshot(str(shots / f"{shot_name}.png"))
        height = min(int(browser.execute_script("return document.documentElement.scrollHeight")), 16000)
        full = browser.execute_cdp_cmd(
            "Page.captureScreenshot",
            {"format": "png", "captureBeyondViewport": True,
             "clip": {"x": 0, "y": 0, "width": 1280, "height": height, "scale": 1}},
        )
        (shots / f"{shot_name}-full.png").write_bytes(base64.b64decode(full["data"]))
    report.seconds = round(time.time() - start, 2)
    return report


def lesson_shot_name(rel: str) -> str | None:
    match = re.fullmatch(r"lessons/(\d\d)/index\.html", rel)
    return f"lesson-{match.group(1)}" if match else None


def check_site(site: Path, out: Path, screenshot_all: bool = False, verbose: bool = True) -> list[PageReport]:
    """Check every page of ``site``; write ``out/report.json`` and the screenshots; return the reports."""
    import tempfile

    site = site.resolve()
    pages = sorted(p for p in site.rglob("*.html") if "assets" not in p.relative_to(site).parts)
    if not pages:
        raise RuntimeError(f"no HTML pages under {site}: build the site first (`make site`)")
    server, base = serve(site)
    reports = []
    with tempfile.TemporaryDirectory(prefix="site-check-profile-") as profile:
        browser = start_browser(Path(profile))
        try:
            for page in pages:
                rel = page.relative_to(site).as_posix()
                slug = re.sub(r"[^a-z0-9]+", "-", rel.lower()).strip("-")
                name = lesson_shot_name(rel) or (slug if screenshot_all else None)
                report = check_page(browser, site, base, page, out / "screenshots", name)
                reports.append(report)
                if verbose:
                    status = "ok  " if report.ok else "FAIL"
                    print(f"{status} {rel}  (formulas {report.formulas_rendered}/{report.formulas_expected}, "
                          f"images {report.images}, links {report.links_checked}, {report.seconds:.1f} s)")
                    for problem in report.problems:
                        print(f"       {problem.kind}: {problem.detail}")
        finally:
            browser.quit()
            server.shutdown()
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(
        json.dumps([dict(asdict(r), ok=r.ok) for r in reports], indent=1) + "\n", encoding="utf-8"
    )
    return reports


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("site", nargs="?", default="site", type=Path, help="the built site (default: site)")
    parser.add_argument("--out", default=Path("outputs/site-check"), type=Path, help="report and screenshots")
    parser.add_argument("--screenshot-all", action="store_true", help="a screenshot of every page, not only lessons")
    args = parser.parse_args(argv)
    try:
        reports = check_site(args.site, args.out, args.screenshot_all)
    except RuntimeError as error:
        print(f"site-check: {error}", file=sys.stderr)
        return 2
    failed = [r for r in reports if not r.ok]
    print(f"site-check: {len(reports)} pages, {len(failed)} with problems; report in {args.out / 'report.json'}, "
          f"screenshots in {args.out / 'screenshots'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
