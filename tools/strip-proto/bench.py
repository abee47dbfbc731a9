#!/usr/bin/env python3
"""Times strip-proto against vipsthumbnail (and shoebox, when built), as scripts/bench-resize does:
one process per image under GNU time (%e wall is taken around the process here, %M is the
command's own peak RSS), 1 warm-up run per case, then N rounds over every case, the tool
order rotating from round to round; medians.

    tools/strip-proto/bench.py --runs 7 --widths 320,1280 [--shoebox PATH] [--proto PATH] > results.txt
"""
import argparse, math, os, shutil, statistics, subprocess, sys, tempfile, time
from pathlib import Path

CAMERA = Path("/work/shared/testdata/photos/camera")
TIME = "/usr/bin/time"

def run_once(argv, rss_file):
    start = time.perf_counter()
    p = subprocess.run([TIME, "-f", "%M", "-o", str(rss_file), *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - start
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {p.stderr.decode(errors='replace')}")
    return wall, int(Path(rss_file).read_text().split()[-1]) * 1024

def geomean(v):
    return math.exp(sum(math.log(x) for x in v) / len(v))

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--widths", default="320,1280")
    ap.add_argument("--proto", default="/work/target-strips/release/strip-proto")
    ap.add_argument("--proto-c", default="/work/target-strips-nonasm/release/strip-proto",
                    help="a build without nasm (libjpeg-turbo's plain C), for the proto-c variant")
    ap.add_argument("--shoebox", default="/work/target-release/release/shoebox")
    ap.add_argument("--variants", default="proto,proto-moz")
    ap.add_argument("files", nargs="*")
    a = ap.parse_args()
    files = [Path(f) for f in a.files] or sorted(CAMERA.glob("*.jpg"))
    widths = [int(w) for w in a.widths.split(",")]
    tmp = Path(tempfile.mkdtemp())
    out, rss = tmp / "out.jpg", tmp / "rss"
    vips = shutil.which("vipsthumbnail")

    def commands(path, w):
        c = {"vips": [vips, str(path), "--size", f"{w}x", "-o", f"{out}[Q=80]"]}
        if Path(a.shoebox).is_file():
            c["shoebox"] = [a.shoebox, "resize", str(path), "--fit", f"{w}x1000000", "-o", str(out), "--quality", "80"]
        base = [a.proto, str(path), "--width", str(w), "-o", str(out), "--quality", "80"]
        variants = {
            "proto": base,                                   # 2 threads, jpeg-encoder on the whole output
            "proto-moz": base + ["--encoder", "mozjpeg"],    # 2 threads, libjpeg encoder fed row chunks
            "proto-1t": base + ["--encoder", "mozjpeg", "--from-file", "--threads", "1"],
            "proto-whole": base + ["--whole", "--encoder", "mozjpeg"],
            "proto-moz-file": base + ["--encoder", "mozjpeg", "--from-file"],
            "proto-c": [a.proto_c, *base[1:], "--encoder", "mozjpeg", "--from-file"],
            "proto-moz-noopt": base + ["--encoder", "mozjpeg", "--from-file", "--no-optimize"],
        }
        for v in a.variants.split(","):
            c[v] = variants[v]
        return c

    cases = [(f, w) for f in files for w in widths]
    names = list(commands(*cases[0]).keys())
    samples = {c: {n: [] for n in names} for c in cases}
    print(f"load before: {os.getloadavg()}", flush=True)
    for c in cases:
        for argv in commands(*c).values():
            run_once(argv, rss)
    for r in range(a.runs):
        for c in cases:
            order = list(commands(*c).items())
            k = r % len(order)
            order = order[k:] + order[:k]
            if r % 2:
                order.reverse()
            for n, argv in order:
                samples[c][n].append(run_once(argv, rss))
    print(f"load after: {os.getloadavg()}")
    print()
    hdr = f"{'file':<24} {'W':>5} " + " ".join(f"{n+' ms':>13} {'MB':>6}" for n in names) + "  " + " ".join(f"{n[:9]+' t/vips':>16} {'rss/vips':>8}" for n in names if n != "vips")
    print(hdr)
    ratios = {n: {w: [] for w in widths} for n in names}
    for (f, w), s in samples.items():
        med = {n: (statistics.median(x[0] for x in v) * 1000, statistics.median(x[1] for x in v) / 1e6) for n, v in s.items()}
        line = f"{f.name[:24]:<24} {w:>5} " + " ".join(f"{med[n][0]:>13.1f} {med[n][1]:>6.1f}" for n in names) + "  "
        for n in names:
            if n == "vips":
                continue
            tr, rr = med[n][0] / med["vips"][0], med[n][1] / med["vips"][1]
            ratios[n][w].append(tr)
            line += f" {tr:>16.2f} {rr:>8.2f}"
        print(line)
    print()
    for n in names:
        if n == "vips":
            continue
        per = "  ".join(f"{w} px {geomean(ratios[n][w]):.2f}" for w in widths)
        allr = [x for w in widths for x in ratios[n][w]]
        print(f"geomean time/vips {n:<12} {per}  all {geomean(allr):.2f}")
    # raw samples for the record
    print()
    for (f, w), s in samples.items():
        for n, v in s.items():
            print(f"raw {f.name} {w} {n} " + " ".join(f"{x[0]*1000:.0f}/{x[1]//1024//1024}" for x in v))

if __name__ == "__main__":
    main()
