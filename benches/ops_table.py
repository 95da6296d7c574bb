#!/usr/bin/env python3
"""Merge `shared/bench/ops_inproc.py` results with `opossum bench ops --json` results into the
README's operations table (Opossum, each peer, ratio to the fastest peer) and rewrite the block
between `<!-- ops-table:start -->` and `<!-- ops-table:end -->`.

Usage: benches/ops_table.py PEERS.json OPOSSUM.json README.md [--size 4096] [--note TEXT]
Run by benches/peers.sh, which measures both side by side first.
"""
import argparse
import json
import re

LABELS = {
    "blur3": "Gaussian blur σ 3",
    "blur20": "Gaussian blur σ 20",
    "bc": "brightness/contrast",
    "sobel": "greyscale + Sobel",
    "grey": "RGB → grey",
    "resize": "resize ¼ Lanczos3",
    "unsharp": "unsharp mask σ 2",
}
PEERS = [("pyvips", "libvips"), ("opencv", "OpenCV"), ("pillow", "Pillow")]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("peers")
    ap.add_argument("opossum")
    ap.add_argument("readme")
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--note", default="")
    args = ap.parse_args()
    peers = json.load(open(args.peers))
    mine = json.load(open(args.opossum))
    peer_ms = {}
    for row in peers["rows"]:
        if row["size"] == args.size and ":" not in row["tool"]:
            peer_ms[(row["op"], row["tool"])] = row["median_ms"]
    lines = [
        "| %d×%d | Opossum | libvips | OpenCV | Pillow | Opossum / fastest peer | PSNR vs ultra |"
        % (args.size, args.size),
        "|---|---|---|---|---|---|---|",
    ]
    for row in mine:
        if row["size"] != args.size or row["op"] not in LABELS:
            continue
        op = row["op"]
        times = [(peer_ms.get((op, tool)), name)
                 for tool, name in PEERS]
        known = [(t, n) for t, n in times if t is not None]
        if not known:
            continue
        best, best_name = min(known)
        cells = ["%.1f ms" % t if t is not None else "–" for t, _ in times]
        psnr = row.get("psnr_vs_ultra_db")
        quality = "–" if psnr is None else ("identical" if psnr >= 100 else "%.1f dB" % psnr)
        lines.append("| %s | %.1f ms | %s | %.2f× (%s) | %s |" % (
            LABELS[op], row["median_ms"], " | ".join(cells), row["median_ms"] / best, best_name,
            quality))
    block = "\n".join(lines) + "\n"
    if args.note:
        block += "\n" + args.note + "\n"
    text = open(args.readme).read()
    pattern = re.compile(r"(<!-- ops-table:start -->\n).*?(<!-- ops-table:end -->)", re.S)
    if not pattern.search(text):
        raise SystemExit("%s has no ops-table markers" % args.readme)
    text = pattern.sub(lambda m: m.group(1) + block + m.group(2), text)
    open(args.readme, "w").write(text)
    print(block)


if __name__ == "__main__":
    main()
