"""Every relative link of the repository's markdown manuals names a file that exists, and every #anchor a heading of it."""
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MANUALS = ["README.md", "tools/README.md", "data/README.md", *sorted(
    str(p.relative_to(REPO)) for p in [*REPO.glob("results/*/README.md"), *REPO.glob("docs/*.md")])]
LINK = re.compile(r"\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(([^)\s]+)\)")  # link text may hold [brackets]
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def anchors(markdown: str) -> set[str]:
    """GitHub's heading ids: lower case, punctuation but '-' and '_' dropped, spaces to '-'."""
    ids = set()
    for heading in re.findall(r"^#{1,6} (.+)$", FENCE.sub("", markdown), re.M):
        ids.add(re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-"))
    return ids


def links(path: Path) -> list[str]:
    return [t for t in LINK.findall(FENCE.sub("", path.read_text(encoding="utf-8")))
            if not re.match(r"[a-z]+:", t)]


@pytest.mark.parametrize("manual", MANUALS)
def test_relative_links_and_anchors_resolve(manual):
    source = REPO / manual
    broken = []
    for target in links(source):
        file_part, _, anchor = target.partition("#")
        path = (source.parent / file_part).resolve() if file_part else source
        if not path.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and anchor not in anchors(path.read_text(encoding="utf-8")):
            broken.append(f"{target} (no heading #{anchor})")
    assert not broken, f"{manual}: " + "; ".join(broken)


def test_anchors_follow_github_rules():
    assert anchors("# A\n## package.py\n### --audit FOLDER\n## What has been measured\n```\n# not a heading\n```") == {
        "a", "packagepy", "--audit-folder", "what-has-been-measured"}
    assert "package-py" not in anchors("## package.py")  # the anchor the README once linked to
