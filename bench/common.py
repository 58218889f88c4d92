"""What the benchmarks share: paths, the common command-line options, memory readings and the README table writer."""

from __future__ import annotations

import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLOOR = ROOT / "bench" / "floor"
README = ROOT / "bench" / "README.md"


def parser(description: str | None) -> argparse.ArgumentParser:
    """The options every benchmark takes: which layer, which runtime client, where the sandbox works."""
    found = argparse.ArgumentParser(description=description)
    found.add_argument("--layer", type=Path, default=ROOT / "build" / "layer")
    found.add_argument("--runtime-dir", type=Path, default=ROOT / ".venv" / "lambda-runtime")
    found.add_argument("--work-dir", type=Path, default=ROOT / ".sandbox")
    found.add_argument("--write", action="store_true", help="put the table into bench/README.md")
    return found


def memory_of(pid: int) -> tuple[int, int]:
    """A process's resident set now and at its peak (VmRSS, VmHWM), in kB, from /proc."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def write_readme(text: str, marks: tuple[str, str], readme: Path = README) -> None:
    """Replace what stands between the two marks in `readme` (or append the block)."""
    begin, end = marks
    content = readme.read_text() if readme.exists() else ""
    if begin in content:
        head, rest = content.split(begin, 1)
        content = f"{head}{begin}\n{text}\n{end}{rest.split(end, 1)[1]}"
    else:
        content += f"\n{begin}\n{text}\n{end}\n"
    readme.write_text(content)


def publish(table: str, marks: tuple[str, str], *, write: bool) -> None:
    """Print a benchmark's table and, with --write, put it into bench/README.md between its marks."""
    print(table)
    if write:
        write_readme(table, marks)
