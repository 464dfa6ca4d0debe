"""The offline explorable at its default settings: size, state count, build time, browser latency.

    python benchmarks/bench_explorable.py [--site DIR] [--moves 40] [build options: --model, --num-images, ...]

Builds the explorable (`python -m viz explorable`, demo model and its ablation set, 12 canvases) into a
temporary folder, or measures an existing build (`--site`), and prints its size on disk, its number of states,
the build's wall time and CPU time (user + system of this process and its workers: the machine may be
shared, and wall time then says more about the others than about the build). Then opens `index.html` from
file:// in headless Chromium with every request that is not a file aborted (tests/browser_harness.py) and
moves the controls one at a time with the keyboard: the image slider (ArrowRight/ArrowLeft), the SAM block
picker (ArrowDown/ArrowUp), the model radios and the mask radios (arrow keys). The page times each move
itself (`window.explorableTimings`): from the key event's timestamp to the frame after every new picture
is decoded. Prints p50/p95 per control and over all moves, and `p95_ms=<all moves>`.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))


def _percentile(values, q):
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))]


def _size(folder: Path) -> tuple[int, int]:
    files = [f for f in folder.rglob("*") if f.is_file()]
    return sum(f.stat().st_size for f in files), len(files)


def _cpu_seconds() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _latency(site: Path, moves: int) -> dict[str, list[float]]:
    import browser_harness as bh

    why = bh.missing()
    if why is not None:
        print(f"browser latency not measured: {why}")
        return {}
    with bh.chromium(width=1280, height=1000, allow=bh.file_only) as b:
        page = b.page
        page.goto((site / "index.html").as_uri())
        page.wait_for_selector("body[data-state]", timeout=60_000)

        def move(selector: str, key: str) -> None:
            page.focus(selector)
            before = page.evaluate("window.explorableTimings.length")
            page.keyboard.press(key)
            page.wait_for_function(f"window.explorableTimings.length > {before}", timeout=60_000)

        n_img = page.evaluate("Number(document.getElementById('image').max) + 1")
        for k in range(moves):  # back and forth over the images
            move("#image", "ArrowRight" if (k // (n_img - 1)) % 2 == 0 else "ArrowLeft")
        n_blocks = page.evaluate("document.getElementById('block').options.length")
        for k in range(moves):
            move("#block", "ArrowDown" if (k // max(1, n_blocks - 1)) % 2 == 0 else "ArrowUp")
        for _ in range(moves):
            move("#model input:checked", "ArrowDown")
        for _ in range(moves):
            move("#mask input:checked", "ArrowDown")
        assert b.blocked == [], f"requests that were not file: {b.blocked[:3]}"
        assert b.console_errors == [], b.console_errors
        out: dict[str, list[float]] = {}
        for t in page.evaluate("window.explorableTimings"):
            out.setdefault(t["control"], []).append(t["ms"])
        return out


def main() -> int:
    from viz.explorable import build

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--site", help="measure this build instead of building one")
    p.add_argument("--moves", type=int, default=40, help="moves per control")
    p.add_argument("--model", default="main")
    p.add_argument("--images")
    p.add_argument("--num-images", type=int, default=12)
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="explorable-") as tmp:
        if args.site:
            site = Path(args.site)
        else:
            site = Path(tmp) / "site"
            cpu0, t0 = _cpu_seconds(), time.perf_counter()
            r = build(site, model=args.model, images=args.images, num_images=args.num_images,
                      workers=args.workers)
            wall, cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
            print(f"build: {wall:.0f} s wall, {cpu:.0f} s CPU (user + system, {args.workers} worker processes) "
                  f"on {os.cpu_count()} cores; load average before/after: {os.getloadavg()[0]:.1f}")
            print(f"states: {r['states']}")
        size, files = _size(site)
        print(f"size: {size / 1e6:.1f} MB in {files} files")
        times = _latency(site, args.moves)
        everything = [t for ts in times.values() for t in ts]
        for name, ts in list(times.items()) + ([("all", everything)] if everything else []):
            print(f"latency {name:<6} n={len(ts):3d}  p50 {_percentile(ts, 50):6.1f} ms  "
                  f"p95 {_percentile(ts, 95):6.1f} ms  max {max(ts):6.1f} ms")
        if everything:
            print(f"p95_ms={_percentile(everything, 95):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
