#!/usr/bin/env python3
"""Checks the guide (docs/src, an mdBook) and the README; exits 1 on a problem. Run by `.ci/run`.

1. Every chapter listed in docs/src/SUMMARY.md exists and is included as doctests by the
   `kiln` facade (crates/kiln/src/lib.rs), so each of its Rust examples is compiled and run by
   `cargo test --workspace`; no chapter file is left out of SUMMARY.md.
2. No chapter still holds a placeholder for command output (`<!-- output: ... -->`).
3. The README is a front page: at most 150 lines.
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "docs" / "src"
FACADE = ROOT / "crates" / "kiln" / "src" / "lib.rs"
README_MAX_LINES = 150


def main():
    problems = []
    summary = (SRC / "SUMMARY.md").read_text()
    listed = re.findall(r"\]\(([^)#]+\.md)\)", summary)
    included = set(re.findall(r'include_str!\("\.\./\.\./\.\./docs/src/([^"]+\.md)"\)',
                              FACADE.read_text()))
    for chapter in listed:
        if not (SRC / chapter).is_file():
            problems.append(f"docs/src/SUMMARY.md lists {chapter}, which does not exist")
        elif chapter not in included:
            problems.append(f"docs/src/{chapter} is not included as doctests in {FACADE.relative_to(ROOT)}")
    for path in sorted(SRC.glob("*.md")):
        if path.name != "SUMMARY.md" and path.name not in listed:
            problems.append(f"{path.relative_to(ROOT)} is not listed in docs/src/SUMMARY.md")
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if "<!-- output:" in line:
                problems.append(f"{path.relative_to(ROOT)}:{n}: output placeholder left: {line.strip()}")
    lines = len((ROOT / "README.md").read_text().splitlines())
    if lines > README_MAX_LINES:
        problems.append(f"README.md has {lines} lines; the front page keeps to {README_MAX_LINES}")
    for p in problems:
        print("check_book: " + p)
    if problems:
        sys.exit(1)
    print(f"check_book: ok ({len(listed)} chapters, all doctested; README {lines} lines)")


if __name__ == "__main__":
    main()
