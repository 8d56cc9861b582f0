"""mkdocs build hooks: the lessons, the generated pages, and everything the site serves itself.

* Lessons live in ``lessons/NN/lesson.py`` (jupytext percent notebooks), outside ``docs/``. ``on_files`` adds
  each one that exists as the page ``lessons/NN/`` (no copy: the file is read where it is), mkdocs-jupyter
  executes and renders it, and ``on_config`` lists it under "Lessons" in the navigation.
* Each lesson page ends with its exercises and worked solutions, generated from ``solutions/NN/exercises.py``,
  and offers at its top the lesson as ``lessons/NN/lesson.ipynb``, made from ``lesson.py`` at build time (never
  committed), with ``lessons/NN/exercises.py`` beside it.
* ``docs/api.md`` gets the reference of ``drifting_min``, generated from its docstrings.
* Nothing is fetched from another host when a page is read: the notebook template's MathJax 2 (a CDN) and
  mermaid (a CDN) loaders are removed, the site's own MathJax 3 typesets every page, and ``on_post_build``
  copies MathJax and the Roboto fonts from ``node_modules/`` (``npm ci``) into ``site/assets/vendor/``.
  A page that still names a script, stylesheet or image on another host fails the build.
"""

from __future__ import annotations

import html as html_lib
import logging
import posixpath
import re
import shutil
import sys
from pathlib import Path

import markdown
from mkdocs.exceptions import PluginError
from mkdocs.plugins import CombinedEvent, event_priority
from mkdocs.structure.files import File
from mkdocs.structure.toc import AnchorLink

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sitegen  # noqa: E402

log = logging.getLogger("mkdocs.hooks.course")
ROOT = Path(__file__).resolve().parent.parent
NODE_MODULES = ROOT / "node_modules"
LESSON_GLOB = "[0-9][0-9]/lesson.py"
API_MARKER = "<!-- api:drifting_min -->"

# what the built site needs from node_modules (npm ci), and where it goes under site/assets/vendor/
MATHJAX = NODE_MODULES / "mathjax" / "es5"
MATHJAX_PARTS = ["tex-mml-chtml.js", "input", "output/chtml", "ui", "a11y", "adaptors", "sre"]
FONTS = {
    "@fontsource/roboto/files": [f"roboto-latin-{w}-normal.woff2" for w in (300, 400, 500, 700)]
    + ["roboto-latin-400-italic.woff2"],
    "@fontsource/roboto-mono/files": [f"roboto-mono-latin-{w}-normal.woff2" for w in (400, 700)],
}


def lesson_files() -> list[Path]:
    return sorted((ROOT / "lessons").glob(LESSON_GLOB))


def lesson_title(path: Path) -> str:
    """The lesson's first Markdown heading (``# # Title`` in a percent notebook), else "Lesson NN"."""
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^#\s+#\s+(.+?)\s*$", line)
        if match:
            return match.group(1)
    return f"Lesson {path.parent.name}"


# ------------------------------------------------------------------------------------------------ config


def on_config(config):
    missing = [str(p.relative_to(ROOT)) for p in [MATHJAX / "tex-mml-chtml.js"] if not p.exists()]
    if missing:
        raise PluginError(f"{', '.join(missing)} is missing: run `npm ci` first (`make site` does)")
    lessons = [
        {f"{int(p.parent.name)}. {lesson_title(p)}": f"lessons/{p.parent.name}/index.py"} for p in lesson_files()
    ]
    for item in config["nav"] or []:
        if isinstance(item, dict) and "Lessons" in item:
            item["Lessons"] = list(item["Lessons"]) + lessons
            break
    else:
        raise PluginError("mkdocs.yml's nav has no 'Lessons' section for the lessons to go in")
    log.info("lessons found: %s", ", ".join(p.parent.name for p in lesson_files()) or "none yet")
    return config


# ------------------------------------------------------------------------------------------------- files


@event_priority(100)  # before mkdocs-jupyter's on_files, so that it sees the lessons as notebooks
def _add_lessons(files, config):
    for path in lesson_files():
        lesson = path.parent.name
        files.append(File.generated(config, f"lessons/{lesson}/index.py", abs_src_path=str(path)))
        # the downloads: static files beside the page (mkdocs-jupyter renders lesson.py files only)
        files.append(File.generated(config, f"lessons/{lesson}/lesson.ipynb", content=sitegen.lesson_notebook(lesson)))
        if (path.parent / "exercises.py").exists():
            files.append(
                File.generated(config, f"lessons/{lesson}/exercises.py", abs_src_path=str(path.parent / "exercises.py"))
            )
    return files


@event_priority(-100)  # after mkdocs-jupyter has wrapped them: its wrapper does not pass the source path on
def _pass_lesson_paths(files, config):
    for file in files:
        if re.fullmatch(r"lessons/\d\d/index\.py", file.src_uri) and getattr(file, "file", None) is not None:
            file.abs_src_path = file.file.abs_src_path
    return files


on_files = CombinedEvent(_add_lessons, _pass_lesson_paths)


# ------------------------------------------------------------------------------------------------- pages


LESSON_LINK = re.compile(r"\[(?P<text>[^\]]+)\]\((?P<target>[^)#\s]*index\.py)(?P<anchor>#[^)]*)?\)")


def on_page_markdown(markdown_text, page, config, files):
    if API_MARKER in markdown_text:
        markdown_text = markdown_text.replace(API_MARKER, sitegen.api_markdown())

    # a link to a lesson that is not written yet becomes plain text (a dead link would fail the strict build)
    def unlink(match):
        target = posixpath.normpath(posixpath.join(posixpath.dirname(page.file.src_uri), match["target"]))
        lesson = re.fullmatch(r"lessons/(\d\d)/index\.py", target)
        if lesson and not (ROOT / "lessons" / lesson.group(1) / "lesson.py").exists():
            return f"{match['text']} *(in preparation)*"
        return match.group(0)

    return LESSON_LINK.sub(unlink, markdown_text)


# the notebook template's loaders: MathJax 2 plus its MathJax.Hub configuration, and mermaid's ES module
NB_MATHJAX = re.compile(r"<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->", re.S)
NB_MERMAID = re.compile(r'<script type="module">(?:(?!</script>).)*?mermaid(?:(?!</script>).)*?</script>', re.S)
LOADING_TAG = re.compile(r"<(script|link|img|iframe|source|video|audio|embed)\b[^>]*>", re.I)
TAG_URL = re.compile(r"""\b(?:src|href)\s*=\s*["']?((?:https?:)?//[^"'\s>]+)""", re.I)
LINK_REL = re.compile(r"""\brel\s*=\s*["']?([^"'>]+)""", re.I)
LOADED_RELS = {"stylesheet", "preload", "modulepreload", "prefetch", "icon", "manifest", "apple-touch-icon"}


def _external_loads(page_html: str, site_url: str | None) -> list[str]:
    """URLs on another host that the page would fetch as it loads (scripts, styles, images, frames, fonts).

    Links a reader may follow, and `<link rel="canonical">`, are not loads; the site's own URL is not another host.
    """
    own = re.sub(r"^(https?:)?//", "//", site_url or "").rstrip("/") or None
    found = []
    for tag in LOADING_TAG.finditer(page_html):
        text = tag.group(0)
        if tag.group(1).lower() == "link":
            rels = set((LINK_REL.search(text) or [None, ""])[1].lower().split())
            if not rels & LOADED_RELS:
                continue
        url = TAG_URL.search(text)
        if url and not (own and re.sub(r"^(https?:)?//", "//", url.group(1)).startswith(own)):
            found.append(url.group(1))
    return found


def _lesson_of(page) -> str | None:
    match = re.fullmatch(r"lessons/(\d\d)/index\.py", page.file.src_uri)
    return match.group(1) if match else None


NB_LINK = re.compile(r"""<a\s(?P<before>[^>]*?)href="(?P<href>[^"]*)"(?P<after>[^>]*)>(?P<text>.*?)</a>""", re.S)


def _notebook_links(html: str, lesson: str, page, files) -> str:
    """Point a lesson's relative links at the site's pages.

    A lesson is written to be read where it lives, so it links to ``../04/lesson.py`` or
    ``../../docs/theory/derivation.md#anchor``; on the site those are ``lessons/04/`` and ``theory/derivation/``.
    A link to a lesson not written yet becomes plain text; a link to a missing page is a build warning (an error
    under ``strict``).
    """

    def fix(match):
        href = match["href"]
        if not href or href.startswith(("#", "/")) or re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", href):
            return match.group(0)
        target, _, fragment = href.partition("#")
        if not target.endswith((".py", ".md", "/")) and "." in posixpath.basename(target):
            return match.group(0)  # an image or a data file next to the lesson: left to the site check
        path = posixpath.normpath(posixpath.join(f"lessons/{lesson}", target))
        other = re.fullmatch(r"lessons/(\d\d)(?:/(?:lesson|index)\.py)?", path)
        candidates = [f"lessons/{other.group(1)}/index.py"] if other else [path.removeprefix("docs/"), path]
        for uri in candidates:
            found = files.get_file_from_path(uri)
            if found is not None:
                url = found.url_relative_to(page.file) + (f"#{fragment}" if fragment else "")
                return f'<a {match["before"]}href="{url}"{match["after"]}>{match["text"]}</a>'
        if other:
            return f'{match["text"]} <em>(in preparation)</em>'
        log.warning("lesson %s links to %r, which is not a page of the site", lesson, href)
        return match.group(0)

    return NB_LINK.sub(fix, html)


def on_page_content(html, page, config, files):
    lesson = _lesson_of(page)
    if lesson:
        html = _notebook_links(html, lesson, page, files)
        html, n_mathjax = NB_MATHJAX.subn("", html)
        html, n_mermaid = NB_MERMAID.subn("", html)
        if n_mathjax != 1 or n_mermaid != 1:
            log.warning(
                "lesson %s: expected the notebook template's MathJax and mermaid loaders once each, found %d and %d",
                lesson, n_mathjax, n_mermaid,
            )
        section = sitegen.exercises_markdown(lesson)
        if section:
            md = markdown.Markdown(extensions=config["markdown_extensions"], extension_configs=config["mdx_configs"])
            html += '\n<div class="course-exercises">\n' + md.convert(section) + "\n</div>\n"
        page.toc.items = _toc_from_html(html)
        html = _with_downloads(html, lesson, page, files)
    external = _external_loads(html, config["site_url"])
    if external:
        raise PluginError(f"{page.file.src_uri} would load {external[0]} from another host; serve it from the site")
    return html


def _with_downloads(html: str, lesson: str, page, files) -> str:
    """The lesson's download line, just after its title."""
    urls = [files.get_file_from_path(f"lessons/{lesson}/{name}") for name in ("lesson.ipynb", "exercises.py")]
    if None in urls:
        return html
    line = sitegen.download_html(lesson, *(f.url_relative_to(page.file) for f in urls))
    html, found = re.subn(r"(</h1>)", lambda m: m.group(1) + "\n" + line, html, count=1)
    return html if found else line + "\n" + html


HEADING = re.compile(r'<h([1-3])\s[^>]*?id="([^"]+)"[^>]*>(.*?)</h\1>', re.S)


def _toc_from_html(page_html: str) -> list[AnchorLink]:
    """The table of contents of rendered HTML (h1 to h3), with the ids its headings really have.

    mkdocs-jupyter builds a notebook's table of contents from a copy of its Markdown with inline code removed,
    so a heading such as "Exercise 1.1: `gaussian_score`" gets an anchor its HTML heading does not have.
    """
    roots: list[AnchorLink] = []
    stack: list[AnchorLink] = []
    for level, anchor, inner in HEADING.findall(page_html):
        inner = re.sub(r'<a class="(?:anchor-link|headerlink)".*?</a>', "", inner, flags=re.S)
        title = html_lib.unescape(re.sub(r"<[^>]+>", "", inner)).strip()
        link = AnchorLink(html_lib.escape(title, quote=False), anchor, int(level))
        while stack and stack[-1].level >= link.level:
            stack.pop()
        (stack[-1].children if stack else roots).append(link)
        stack.append(link)
    return roots


def on_post_page(output, page, config):
    external = _external_loads(output, config["site_url"])
    if external:
        raise PluginError(f"{page.file.src_uri} would load {external[0]} from another host; serve it from the site")
    return output


# ------------------------------------------------------------------------------------------ static assets


def on_post_build(config):
    vendor = Path(config["site_dir"]) / "assets" / "vendor"
    for part in MATHJAX_PARTS:
        src, dst = MATHJAX / part, vendor / "mathjax" / part
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True)
        elif src.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
        else:
            raise PluginError(f"{src.relative_to(ROOT)} is missing: run `npm ci` (`make site` does)")
    for folder, names in FONTS.items():
        for name in names:
            src = NODE_MODULES / folder / name
            if not src.exists():
                raise PluginError(f"{src.relative_to(ROOT)} is missing: run `npm ci` (`make site` does)")
            (vendor / "fonts").mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, vendor / "fonts" / name)
