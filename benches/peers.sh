#!/usr/bin/env bash
# Regenerate the README's operations table: the peers (shared/bench/ops_inproc.py: libvips,
# OpenCV, Pillow) and `opossum bench ops` on the same photo, back to back in one
# sitting, then benches/ops_table.py rewrites the table between the ops-table markers.
#
#   bash benches/peers.sh [SIZE] [RUNS]      # default 4096 px, 5 runs
#
# BENCH_DIR: a prepared copy of shared/bench (setup_tools.sh and make_corpus.sh already run);
# without it a copy is made under /tmp and prepared (several minutes). PRESET: the quality
# preset Opossum runs at (default high, the issue's bar).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
size="${1:-4096}"
runs="${2:-5}"
preset="${PRESET:-high}"
if [ -z "${BENCH_DIR:-}" ]; then
  BENCH_DIR="$(mktemp -d)/bench"
  cp -r "$here/../shared/bench" "$BENCH_DIR"
  (cd "$BENCH_DIR" && bash setup_tools.sh && bash make_corpus.sh)
fi
photo="$BENCH_DIR/corpus/photos/$size/kleiber.png"
[ -f "$photo" ] || { echo "no $photo: run make_corpus.sh in $BENCH_DIR" >&2; exit 2; }
(cd "$here" && cargo build --release --quiet)
out="$(mktemp -d)"
"$BENCH_DIR/.venv/bin/python" "$BENCH_DIR/ops_inproc.py" --sizes "$size" --runs "$runs" \
  --out "$out/peers"
"$here/target/release/opossum" bench ops --sizes "$size" --runs "$runs" --image "$photo" \
  --quality-preset "$preset" --json "$out/opossum.json"
python3 "$here/benches/ops_table.py" "$out/peers.json" "$out/opossum.json" "$here/README.md" \
  --size "$size" --note "Measured $(date -u +%F) by \`bash benches/peers.sh $size $runs\` ($(nproc) cores, medians of $runs runs, Opossum at the \`$preset\` preset)."
