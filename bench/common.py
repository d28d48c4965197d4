"""Shared helpers for the benchmark scripts: timing, percentiles, memory, machine facts, tables, plots
and the sectioned docs/benchmarks.md.

Each script owns one section of the document, delimited by HTML comment markers, so several scripts can
rewrite their own part of the same file without touching the others'.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
DOC = DOCS / "benchmarks.md"
CACHE = Path(os.environ.get("JNQA_BENCH_CACHE") or ROOT / ".cache" / "bench")  # git-ignored
DOC_TITLE = "# Benchmarks\n"


SHARED = ROOT.parent / "shared"  # the maintainers' evaluation data sits beside the repository, never in it
SCIFACT = Path(
    os.environ.get("JNQA_BENCH_SCIFACT") or os.environ.get("JNQA_SCIFACT") or SHARED / "bench-data" / "scifact"
)
FALLBACK_QUESTIONS = (  # used when the shared dev set is not beside the repository
    "Who said that Ukraine today may be East Asia tomorrow?",
    "Why did talk of a NATO liaison office in Tokyo stall?",
    "What has Japan learned from the CCDCOE?",
    "How many priority areas did the IPCP have compared with the ITPP?",
    "When was the Japanese Mission to NATO established?",
    "What are the practical areas of cooperation for Japan-NATO ties?",
)


def module_command(module: str, *args: str) -> list[str]:
    """The command that runs a bench or eval module in a fresh interpreter (from the repository root, as
    `python -m` itself needs)."""
    return [sys.executable, "-m", module, *args]


def dev_gold() -> Path:
    """The maintainers' dev questions (JNQA_DEV_GOLD, else beside the repository); it may not exist: callers
    that can do without say so."""
    return Path(os.environ.get("JNQA_DEV_GOLD") or SHARED / "eval" / "dev.jsonl")


# ---------------------------------------------------------------- timing


def dev_questions(path: Path | None = None) -> list[str]:
    """The dev questions (a realistic mix of easy, hard and unanswerable ones), or a built-in few."""
    path = dev_gold() if path is None else path
    if path.exists():
        return [json.loads(line)["question"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return list(FALLBACK_QUESTIONS)


def percentiles(seconds: Sequence[float] | np.ndarray, qs: Sequence[float] = (50, 95, 99)) -> dict[str, float]:
    """p50/p95/p99 (and mean) of a list of durations in seconds, returned in milliseconds."""
    a = np.asarray(seconds, dtype=np.float64) * 1000.0
    if a.size == 0:
        return {f"p{q:g}": float("nan") for q in qs} | {"mean": float("nan")}
    out = {f"p{q:g}": float(np.percentile(a, q)) for q in qs}
    out["mean"] = float(a.mean())
    return out


def nearest_rank(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0-100): always one of the values; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-p * len(ordered) // 100))))
    return ordered[rank - 1]


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Timed(NamedTuple):
    wall: list[float]  # seconds per call
    cpu: list[float]  # CPU seconds of the calling thread per call: what the call costs without preemption
    results: list[Any]


def time_each(fn: Callable[[Any], Any], items: Iterable[Any], warmup: int = 0) -> Timed:
    """Call fn on every item, one at a time, timing each call (wall and thread CPU). Warm-up calls are not timed."""
    items = list(items)
    for x in items[:warmup]:
        fn(x)
    out = Timed([], [], [])
    for x in items:
        c, t = time.thread_time(), time.perf_counter()
        r = fn(x)
        out.wall.append(time.perf_counter() - t)
        out.cpu.append(time.thread_time() - c)
        out.results.append(r)
    return out


class Stopwatch:
    """`with Stopwatch() as sw: ...; sw.seconds`."""

    def __enter__(self) -> Stopwatch:
        self.t0 = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.t0


# ---------------------------------------------------------------- memory


def memory(pid: int | None = None) -> dict[str, float]:
    """RSS, USS, PSS and shared (MB) of a process. PSS splits each shared page between its sharers, so the
    sum of PSS over server workers is what they really cost together."""
    import psutil

    m = psutil.Process(pid).memory_full_info()
    return {
        "rss": m.rss / 1e6,
        "uss": m.uss / 1e6,
        "pss": getattr(m, "pss", float("nan")) / 1e6,
        "shared": getattr(m, "shared", float("nan")) / 1e6,
    }


def peak_rss_mb() -> float:
    """Peak RSS of this process so far (MB), from getrusage."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3  # KiB on Linux


def file_mb(path: Path) -> float:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6
    return path.stat().st_size / 1e6


def loadavg() -> float:
    return os.getloadavg()[0]


# ---------------------------------------------------------------- machine and versions


def machine() -> dict[str, Any]:
    """What the numbers were measured on: CPU, cores, memory, OS, Python and the libraries that matter."""
    import psutil

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for dist in ("jn-qa", "faiss-cpu", "bm25s", "numpy", "sentence-transformers", "torch", "PyStemmer", "psutil"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[dist] = metadata.version(dist)
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 1e9, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "versions": versions,
        "commit": git_commit(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True
        )
        return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine_markdown(info: dict[str, Any]) -> str:
    libs = ", ".join(f"{k} {v}" for k, v in info["versions"].items())
    return (
        f"Machine: {info['cpu']}, {info['cores']} cores, {info['memory_gb']} GB RAM, {info['os']}, "
        f"Python {info['python']}. Libraries: {libs}. Commit {info['commit']}, run {info['date']}."
    )


# ---------------------------------------------------------------- tables and plots


def fmt(x: Any, digits: int = 2) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        if x != x:
            return "–"
        if abs(x) >= 100:
            return f"{x:,.0f}"
        return f"{x:.{digits}f}"
    if isinstance(x, int):
        return f"{x:,}"
    return str(x)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], digits: int = 2) -> str:
    """A GitHub markdown table; numbers right-aligned and formatted with `fmt`."""
    rows = [list(r) for r in rows]
    numeric = [
        all(isinstance(r[i], (int, float)) or r[i] is None for r in rows) if rows else False
        for i in range(len(headers))
    ]
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
    out += ["| " + " | ".join(fmt(v, digits) for v in r) + " |" for r in rows]
    return "\n".join(out)


def pyplot() -> Any:
    """matplotlib.pyplot with a file-only backend (install with: pip install -e '.[bench]')."""
    try:
        import matplotlib
    except ModuleNotFoundError:
        sys.exit("error: the benchmarks need matplotlib: pip install -e '.[bench]'")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, name: str) -> Path:
    """Write a PNG into docs/ and return its path (relative links in the doc use the name)."""
    DOCS.mkdir(exist_ok=True)
    path = DOCS / name
    fig.savefig(path, dpi=110, bbox_inches="tight")
    pyplot().close(fig)
    return path


# ---------------------------------------------------------------- the sectioned document


def _markers(section: str) -> tuple[str, str]:
    return f"<!-- bench:{section}:start -->", f"<!-- bench:{section}:end -->"


def write_section(section: str, body: str, doc: Path = DOC, first: bool = False) -> None:
    """Replace this section's text in the document (adding it at the end, or right under the title with
    `first`, if absent); other sections stay as they are."""
    start, end = _markers(section)
    block = f"{start}\n{body.strip()}\n{end}"
    text = doc.read_text(encoding="utf-8") if doc.exists() else DOC_TITLE
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    elif first and text.startswith(DOC_TITLE):
        text = DOC_TITLE + "\n" + block + "\n\n" + text[len(DOC_TITLE) :].lstrip("\n")
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    tmp = doc.with_suffix(".md.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, doc)


def publish(section: str, text: str, to_doc: bool) -> None:
    """Write a script's section into docs/benchmarks.md (or only print it), then print it."""
    if to_doc:
        write_section(section, text)
    print(text)


def save_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1, default=float), encoding="utf-8")


def load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
