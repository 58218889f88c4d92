"""Why the layer signs its Secrets Manager and SSM requests itself: the import cost of botocore's SigV4
signer against ours, each in a fresh interpreter (what a cold start pays), with botocore's size on disk."""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

from bench.common import ROOT, parser, publish

MARKS = ("<!-- signer-results:begin -->", "<!-- signer-results:end -->")
# Each candidate imports what signing a request needs, and reports its own import time in milliseconds.
CANDIDATES = {
    "nothing (interpreter start only)": "",
    "hashlib + hmac (what our signer is built on)": "import hashlib, hmac",
    "ours: extension.secrets.sigv4": "import extension.secrets.sigv4",
    "botocore: session + SigV4Auth": "import botocore.session, botocore.auth",
}
PROBE = "import time; t = time.perf_counter(); {imports}; print((time.perf_counter() - t) * 1000)"


def import_ms(imports: str) -> tuple[float, float]:
    """Milliseconds to import, and milliseconds for the whole process (interpreter start included)."""
    started = _now()
    out = subprocess.run([sys.executable, "-c", PROBE.format(imports=imports or "pass")], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    return float(out), (_now() - started) * 1000


def _now() -> float:
    import time

    return time.perf_counter()


def size_mib(package: str) -> float:
    module = __import__(package)
    root = Path(module.__file__).parent  # type: ignore[arg-type]
    return sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) / 2**20


def main() -> None:
    args = parser(__doc__).parse_args()
    repeats = 9
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in CANDIDATES}
    for _ in range(repeats):  # interleaved, so that the machine's noise falls on every candidate alike
        for name, imports in CANDIDATES.items():
            samples[name].append(import_ms(imports))
    floor = statistics.median(total for _, total in samples["nothing (interpreter start only)"])
    lines = ["| imports | import ms p50 (min-max) | process ms p50 | vs interpreter start |", "|---|---:|---:|---:|"]
    for name, values in samples.items():
        imports_ms = [imp for imp, _ in values]
        total = statistics.median(t for _, t in values)
        lines.append(f"| {name} | {statistics.median(imports_ms):.1f} ({min(imports_ms):.1f}-{max(imports_ms):.1f}) "
                     f"| {total:.1f} | {total / floor:.2f}x |")
    lines.append(f"\nbotocore on disk: {size_mib('botocore'):.1f} MiB (the layer zip is about 6 MiB in all). "
                 f"{repeats} runs each, interleaved.")
    table = "\n".join(lines)
    publish(table, MARKS, write=args.write)


if __name__ == "__main__":
    main()
