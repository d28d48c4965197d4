"""Load test: concurrent clients against a real `jn-qa serve`, bounded in time, loopback only.

    python -m bench.load --clients 32 --seconds 60 --workers 1,2          # throughput, latency, memory
    python -m bench.load --clients 32 --seconds 60 --workers 1 --rebuild  # the same while a source is added

Every request counts: any status other than 200, and any exception, is a failure. Each worker
process's memory is read with psutil (RSS, PSS, USS, and how much of the memory-mapped index it
holds and shares). With --rebuild, a source is uploaded and the index rebuilt over the admin API
half-way through; afterwards every answer is checked against the index version it names: each
result's text must be that version's source text at [start:end], so no answer mixes two versions.
The tests import this module (tests/test_reliability.py) for the short runs inside `make test`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.common import dev_gold, dev_questions, free_port
from bench.common import nearest_rank as percentile

ROOT = Path(__file__).resolve().parent.parent
NEW_SOURCE_NAME = "kestrel-harbour-accord.txt"
NEW_SOURCE = (
    "Kestrel Harbour Accord\n\n"
    "Under the fictional Kestrel Harbour Accord of 2031, Japan and NATO pool their submarine cable repair ships. "
    "Each partner patrols a sector of the Pacific or the North Atlantic, and a joint cell in Yokosuka plans the "
    "repairs.\n"
)
ADMIN_TOKEN = "load-test-admin-token"


# ---------------------------------------------------------------- the server


@dataclass
class Server:
    """A `jn-qa serve` subprocess on loopback; `workers()` are the processes that answer requests."""

    url: str
    proc: subprocess.Popen[bytes]
    log: Path
    n_workers: int

    def workers(self) -> list[psutil.Process]:
        parent = psutil.Process(self.proc.pid)
        if self.n_workers == 1:
            return [parent]
        kids = [p for p in parent.children() if "resource_tracker" not in " ".join(p.cmdline())]
        return kids

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer would: no shutdown code runs."""
        for p in self.workers()[::-1] if self.n_workers > 1 else []:
            with contextlib.suppress(psutil.Error):
                p.kill()
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


@contextlib.contextmanager
def serve(
    index: Path,
    *,
    workers: int = 1,
    corpus: Path | None = None,
    env: dict[str, str] | None = None,
    log: Path | None = None,
    timeout: float = 180.0,
) -> Iterator[Server]:
    """Start `jn-qa serve` on a free loopback port and wait until every worker answers /api/health."""
    port = free_port()
    exe = str(Path(sys.executable).with_name("jn-qa"))
    args = [exe, "serve", "--index", str(index), "--port", str(port), "--workers", str(workers)]
    if corpus is not None:
        args += ["--corpus", str(corpus)]
    log = log or Path(tempfile.mkstemp(prefix="jnqa-serve-", suffix=".log")[1])
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **(env or {})}
    with log.open("ab") as out:
        proc = subprocess.Popen(args, env=full_env, stdout=out, stderr=out)
    server = Server(f"http://127.0.0.1:{port}", proc, log, workers)
    try:
        wait_ready(server, timeout)
        yield server
    finally:
        server.stop()


def wait_ready(server: Server, timeout: float) -> None:
    """Health 200 from the server, and (with several workers) each worker process up."""
    deadline = time.monotonic() + timeout
    while True:
        if server.proc.poll() is not None:
            raise RuntimeError(f"the server exited: {server.log.read_text(errors='replace')[-2000:]}")
        try:
            ok = httpx.get(server.url + "/api/health", timeout=5).status_code == 200
        except httpx.HTTPError:
            ok = False
        if ok and server.log.read_text(errors="replace").count("Application startup complete") >= server.n_workers:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the server did not start in {timeout:.0f}s")
        time.sleep(0.2)


# ---------------------------------------------------------------- memory


def memory(server: Server, index: Path) -> list[dict[str, Any]]:
    """Per worker: RSS, PSS and USS in MiB, and the resident and proportional share of the index files it maps.

    PSS divides each shared page by the number of processes mapping it: with two workers mapping
    one copy of the index, each worker's index PSS is about half its index RSS.
    """
    root = str(index.resolve())
    out: list[dict[str, Any]] = []
    for p in server.workers():
        info = p.memory_full_info()
        maps = p.memory_maps(grouped=True)
        mapped = [m for m in maps if m.path.startswith(root)]
        weights = [m for m in maps if m.path.endswith((".safetensors", ".bin")) and "site-packages" in m.path]
        out.append(
            {
                "pid": p.pid,
                "rss_mib": _mib(info.rss),
                "pss_mib": _mib(info.pss),
                "uss_mib": _mib(info.uss),
                "index_files_mapped": len(mapped),
                "index_rss_kib": sum(m.rss for m in mapped) // 1024,
                "index_pss_kib": sum(m.pss for m in mapped) // 1024,
                "weights_rss_kib": sum(m.rss for m in weights) // 1024,
                "weights_pss_kib": sum(m.pss for m in weights) // 1024,
            }
        )
    return out


def _mib(n: int) -> float:
    return round(n / 2**20, 1)


# ---------------------------------------------------------------- the load


@dataclass
class Sample:
    kind: str  # "get", "post" or "page"
    started: float  # seconds since the run began
    latency: float
    status: int  # 0 when the request raised
    error: str = ""
    body: dict[str, Any] | None = None  # the JSON answer, when kept


@dataclass
class Run:
    clients: int
    seconds: float
    samples: list[Sample] = field(default_factory=list)

    @property
    def failures(self) -> list[Sample]:
        return [s for s in self.samples if s.status != 200]

    def summary(self) -> dict[str, Any]:
        ok = [s.latency for s in self.samples if s.status == 200]
        return {
            "clients": self.clients,
            "seconds": round(self.seconds, 1),
            "requests": len(self.samples),
            "failed": len(self.failures),
            "throughput_rps": round(len(self.samples) / self.seconds, 1) if self.seconds else 0.0,
            "p50_ms": round(1000 * percentile(ok, 50), 1),
            "p95_ms": round(1000 * percentile(ok, 95), 1),
            "p99_ms": round(1000 * percentile(ok, 99), 1),
            "max_ms": round(1000 * max(ok, default=0.0), 1),
            "by_kind": {k: sum(s.kind == k for s in self.samples) for k in ("get", "post", "page")},
            "failure_examples": sorted({f"{s.status} {s.error}"[:200] for s in self.failures})[:5],
        }


MIX = (("get", 0.8), ("post", 0.1), ("page", 0.1))  # JSON searches, JSON-body searches, the HTML page


def _request(client: httpx.AsyncClient, kind: str, q: str, k: int) -> Any:
    if kind == "get":
        return client.get("/api/search", params={"q": q, "k": k})
    if kind == "post":
        return client.post("/api/search", json={"question": q, "k": k})
    return client.get("/", params={"q": q, "k": k})


async def load(
    url: str,
    qs: Sequence[str],
    *,
    clients: int,
    seconds: float,
    keep_bodies: bool = False,
    during: Callable[[], Any] | None = None,
    seed: int = 0,
) -> Run:
    """`clients` clients, each sending one request at a time for `seconds`; stops by itself.

    `during` (a blocking callable) runs in a thread while the load goes on, e.g. a rebuild; the load
    lasts at least until it returns. Bodies of JSON answers are kept when asked (for version checks).
    """
    run = Run(clients, seconds)
    t0 = time.perf_counter()
    rng = random.Random(seed)
    kinds, weights = [k for k, _ in MIX], [w for _, w in MIX]
    side: asyncio.Future[Any] | None = None
    if during is not None:
        side = asyncio.get_running_loop().run_in_executor(None, during)

    def over() -> bool:
        return time.perf_counter() - t0 >= seconds and (side is None or side.done())

    async def client(n: int) -> None:
        limits = httpx.Limits(max_connections=1)
        async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as c:
            while not over():
                kind = rng.choices(kinds, weights)[0]
                q = rng.choice(qs)
                start = time.perf_counter()
                try:
                    r = await _request(c, kind, q, rng.choice((3, 5, 10)))
                    body = r.json() if keep_bodies and kind != "page" and r.status_code == 200 else None
                    error = "" if r.status_code == 200 else r.text[:200]
                    sample = Sample(kind, start - t0, time.perf_counter() - start, r.status_code, error, body)
                except (httpx.HTTPError, ValueError) as e:
                    sample = Sample(kind, start - t0, time.perf_counter() - start, 0, repr(e)[:200])
                run.samples.append(sample)

    await asyncio.gather(*(client(n) for n in range(clients)))
    run.seconds = time.perf_counter() - t0
    if side is not None:
        side.result()  # re-raise a failure of the side job
    return run


def run_load(url: str, qs: Sequence[str], **kw: Any) -> Run:
    return asyncio.run(load(url, qs, **kw))


# ---------------------------------------------------------------- one version per answer


def version_texts(index: Path, names: Sequence[str]) -> dict[str, dict[str, str]]:
    """Every source's display text, per index version, read from the version folders on disk."""
    from jn_qa.store import IndexVersion, Layout

    layout = Layout(index)
    out: dict[str, dict[str, str]] = {}
    for name in names:
        v = IndexVersion.open(layout.version(name), verify=True)
        out[name] = {m.id: v.text(i) for i, m in enumerate(v.meta)}
    return out


def mixed_answers(bodies: Sequence[dict[str, Any]], texts: dict[str, dict[str, str]]) -> list[str]:
    """Answers whose results are not all slices of the version they name (empty when none mixes)."""
    bad: list[str] = []
    for body in bodies:
        version = body["version"]
        sources = texts.get(version)
        if sources is None:
            bad.append(f"unknown version {version}")
            continue
        for r in body["results"]:
            text = sources.get(r["source"]["id"])
            if text is None or text[r["start"] : r["end"]] != r["text"]:
                bad.append(f"{version}: {r['source']['id']} [{r['start']}:{r['end']}] is not that version's text")
            elif not all(r["start"] <= h["start"] < h["end"] <= r["end"] for h in r["highlights"]):
                bad.append(f"{version}: a highlight lies outside its passage")
    return bad


def upload_and_rebuild(
    url: str, token: str, name: str = NEW_SOURCE_NAME, data: bytes = NEW_SOURCE.encode()
) -> dict[str, Any]:
    """Add one source over the admin API and rebuild; returns the build report (raises on any failure)."""
    auth = {"Authorization": f"Bearer {token}"}
    up = httpx.post(url + "/api/sources", headers=auth, files={"file": (name, data)}, timeout=120)
    up.raise_for_status()
    r = httpx.post(url + "/api/index/rebuild", headers=auth, timeout=600)
    r.raise_for_status()
    return dict(r.json())


# ---------------------------------------------------------------- command line


def seed_copy(dest: Path, corpus: Path, index: Path) -> tuple[Path, Path]:
    """A private copy of a corpus and its built index, so a rebuild never touches the originals."""
    shutil.copytree(corpus, dest / "corpus")
    shutil.copytree(index, dest / "index", ignore=shutil.ignore_patterns("tmp", ".lock"))
    return dest / "corpus", dest / "index"


def bench(args: argparse.Namespace) -> dict[str, Any]:
    qs = dev_questions(Path(args.questions))
    report: dict[str, Any] = {"questions": len(qs), "clients": args.clients, "seconds": args.seconds, "runs": []}
    for workers in [int(w) for w in args.workers.split(",")]:
        with tempfile.TemporaryDirectory(prefix="jnqa-load-") as tmp:
            corpus, index = Path(args.corpus), Path(args.index)
            env = {}
            if args.rebuild:
                corpus, index = seed_copy(Path(tmp), corpus, index)
                env = {"JNQA_ADMIN_TOKEN": ADMIN_TOKEN, "JNQA_RELOAD_INTERVAL": "0.5"}
            with serve(index, workers=workers, corpus=corpus, env=env, log=Path(tmp) / "server.log") as server:
                run_load(server.url, qs[:5], clients=2, seconds=2)  # warm-up: first requests load lazy parts
                built: dict[str, Any] = {}

                def rebuild(built: dict[str, Any] = built, url: str = server.url) -> None:
                    time.sleep(args.seconds / 3)
                    built.update(upload_and_rebuild(url, ADMIN_TOKEN))

                run = run_load(
                    server.url,
                    qs,
                    clients=args.clients,
                    seconds=args.seconds,
                    keep_bodies=args.rebuild,
                    during=rebuild if args.rebuild else None,
                )
                mem = memory(server, index)
                entry: dict[str, Any] = {"workers": workers, **run.summary(), "memory": mem}
                if args.rebuild:
                    bodies = [s.body for s in run.samples if s.body is not None]
                    versions = sorted({b["version"] for b in bodies})
                    entry["rebuild"] = {
                        "published": built.get("version"),
                        "seconds": round(built.get("seconds", 0.0), 1),
                        "versions_seen": versions,
                        "answers_checked": len(bodies),
                        "results_checked": sum(len(b["results"]) for b in bodies),
                        "mixed": len(mixed_answers(bodies, version_texts(index, versions))),
                    }
        report["runs"].append(entry)
        print(_line(entry), file=sys.stderr)
    if len(report["runs"]) > 1:
        base = report["runs"][0]["throughput_rps"] or 1.0
        report["scaling"] = {str(r["workers"]): round(r["throughput_rps"] / base, 2) for r in report["runs"]}
    return report


def _line(e: dict[str, Any]) -> str:
    mem = ", ".join(
        f"pid {m['pid']}: RSS {m['rss_mib']} PSS {m['pss_mib']} USS {m['uss_mib']} MiB" for m in e["memory"]
    )
    text = (
        f"workers={e['workers']}: {e['requests']} requests, {e['failed']} failed, {e['throughput_rps']} req/s, "
        f"p50 {e['p50_ms']} ms, p95 {e['p95_ms']} ms, p99 {e['p99_ms']} ms; {mem}"
    )
    if "rebuild" in e:
        text += f"; rebuild: {e['rebuild']}"
    return text


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--clients", type=int, default=32, help="concurrent clients (default 32)")
    p.add_argument("--seconds", type=float, default=60.0, help="length of each run (default 60)")
    p.add_argument("--workers", default="1,2", help="comma-separated worker counts, one run each (default 1,2)")
    p.add_argument("--index", default=str(ROOT / "index"), help="index folder to serve (default ./index)")
    p.add_argument("--corpus", default=str(ROOT / "corpus"), help="corpus folder (default ./corpus)")
    p.add_argument("--questions", default=str(dev_gold()), help="JSON lines with a 'question' field")
    p.add_argument("--rebuild", action="store_true", help="add a source and rebuild half-way (on a copy of the index)")
    p.add_argument("--json", dest="out", help="also write the report to this file")
    args = p.parse_args(argv)
    report = bench(args)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    failed = sum(r["failed"] for r in report["runs"]) + sum(
        r.get("rebuild", {}).get("mixed", 0) for r in report["runs"]
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
