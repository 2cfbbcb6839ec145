"""The figures the README and results/bench/README.md publish are the ones the committed outputs printed."""
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TRIPLE = re.compile(r"(\d\.\d{3}) \[(\d\.\d{3}), (\d\.\d{3})\]")  # "median [min, max]" as a document quotes it
LINKED = re.compile(r"\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\((results/[^)\s]+)\)")  # [text with [brackets]](results/...)
NUMBER = re.compile(r"[-+]?\d+\.\d+")


def printed(median: str, low: str, high: str) -> str:
    """The same figure as scripts/bench_asqu.py prints it."""
    return f"x{median} [min {low}, max {high}]"


def measured_section() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index("## What has been measured")
    return text[start:text.index("\n## ", start + 1)]


def test_every_figure_of_the_measured_table_is_in_the_output_it_links():
    section = measured_section()
    checked = 0
    for label, target in LINKED.findall(section):
        if not target.endswith(".txt"):  # a folder's README: tests/test_docs_links.py checks that it exists
            continue
        output = (REPO / target).read_text(encoding="utf-8")
        for triple in TRIPLE.findall(label):
            assert printed(*triple) in output, f"{triple} is not in {target}"
        for number in NUMBER.findall(label.replace("\u2212", "-")):
            assert number in output, f"{number} is not in {target}"
            checked += 1
    assert checked >= 20
    outside = LINKED.sub("", section)  # a ratio quoted outside a link names no output
    assert not TRIPLE.findall(outside)


def test_the_bench_results_readme_quotes_its_own_files():
    folder = REPO / "results" / "bench"
    readme = (folder / "README.md").read_text(encoding="utf-8")
    outputs = "\n".join(p.read_text(encoding="utf-8") for p in folder.glob("*.txt"))
    triples = TRIPLE.findall(readme)
    assert len(triples) >= 10
    for triple in triples:
        assert printed(*triple) in outputs, triple
    for link in re.findall(r"\]\(([^)#\s]+)\)", readme):
        assert (folder / link).exists(), link


def test_the_gpu_results_readme_quotes_its_own_files():
    folder = REPO / "results" / "gpu-2026-11-26"
    readme = (folder / "README.md").read_text(encoding="utf-8")
    outputs = "\n".join(p.read_text(encoding="utf-8") for p in folder.glob("*.txt"))
    triples = TRIPLE.findall(readme)
    assert len(triples) >= 8
    for triple in triples:
        assert printed(*triple) in outputs, triple
    ratio = re.search(r"The preflight's single runs, one after the other, gave (\d\.\d{3})", readme).group(1)
    assert f"asqu/relu2 steady step time ratio: {ratio}" in outputs
