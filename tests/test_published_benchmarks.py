"""The README's benchmark figures are the ones the committed benchmark output shows (no figure without a command)."""
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TRIPLE = re.compile(r"(\d\.\d{3}) \[(\d\.\d{3}), (\d\.\d{3})\]")  # "median [min, max]" as a document quotes it


def printed(median: str, low: str, high: str) -> str:
    """The same figure as scripts/bench_asqu.py prints it."""
    return f"x{median} [min {low}, max {high}]"


def benchmark_section() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index("## ASQU's cost: benchmarks")
    return text[start:text.index("\n## ", start + 1)]


def test_every_ratio_in_the_readme_is_in_the_committed_output():
    section = benchmark_section()
    outputs = [p.read_text(encoding="utf-8") for p in [*REPO.glob("results/bench/*.txt"), *REPO.glob("results/gpu-*/*.txt")]]
    # every output file the README links to exists
    for link in re.findall(r"\]\((results/[^)]+)\)", section):
        assert (REPO / link).exists(), link
    triples = TRIPLE.findall(section)
    assert len(triples) >= 10
    for triple in triples:
        figure = printed(*triple)
        assert any(figure in text for text in outputs), f"README figure {figure} is in no benchmark output"


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
