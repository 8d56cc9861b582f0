"""The results the pages show are the ones the benchmarks' records hold."""

from __future__ import annotations

import importlib
import json
import re
import sys
from pathlib import Path

from course.pages import shown_between

ROOT = Path(__file__).resolve().parents[1]


def _bench(name: str):
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(ROOT / "bench"))


def test_the_cifar_cpu_tables_are_made_from_their_records():
    """docs/results.md shows the CPU preset's tables exactly as bench/cifar_cpu_recipe.py makes them from the
    JSON records in docs/results/cifar_cpu/ (rewrite them with `table --write docs/results.md`)."""
    recipe = _bench("cifar_cpu_recipe")
    shown = shown_between(ROOT / "docs" / "results.md", recipe.BEGIN, recipe.END)
    assert shown == recipe.tables().strip()
    assert "| cpu |" in shown and "| gan |" in shown, "the preset's run and its peer are in the records"


def test_the_toy_tables_are_made_from_their_records():
    """Every table of docs/results.md marked as made by bench/bench_toy_peers.py is what it makes from the record
    it names (rewrite them with `python bench/bench_toy_peers.py --table-only --json RECORD --page
    docs/results.md`)."""
    peers = _bench("bench_toy_peers")
    page = ROOT / "docs" / "results.md"
    found = re.findall(r"<!-- (\w+) table of (\S+): begin", page.read_text())
    assert {name for name, _ in found} == set(peers.TABLES), "the page shows each of the toy tables"
    for name, record_path in found:
        record = json.loads((ROOT / record_path).read_text())
        assert shown_between(page, *peers.markers(name, record_path)) == peers.TABLES[name](record), record_path


def test_every_method_of_the_peers_record_had_the_same_weight_average():
    """A fair comparison: every trained method of the record is sampled from the same weight average."""
    record = json.loads((ROOT / "lessons" / "05" / "peers.json").read_text())
    trained = [r for r in record["rows"] if r["method"] != "data itself"]
    assert {r["ema"] for r in trained} == {record["ema"]}
    assert {r["method"] for r in trained} >= {"drifting", "MMD generator", "flow, 100 Euler"}


def test_the_checkerboard_search_table_is_made_from_its_record():
    """docs/results.md shows the checkerboard search as bench/search_checkerboard.py renders its record (rewrite it
    with `python bench/search_checkerboard.py --table docs/results.md`), and the record holds the defaults."""
    search = _bench("search_checkerboard")
    record = json.loads((ROOT / "docs" / "results" / "checkerboard_search.json").read_text())
    shown = shown_between(ROOT / "docs" / "results.md", search.PAGE_BEGIN, search.PAGE_END)
    assert shown == search.table(record)
    assert record["summary"][0]["label"] == "defaults" and record["summary"][0]["change"] == {}
