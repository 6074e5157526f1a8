# Sourced by profile.sh and profile-apps.sh: start a bench contender and find it.
#
#   serve_contender NAME OUTDIR [BASELINE_DIR]
#
# Starts NAME with `bench/run.sh --serve` in the background (from the repository root, where
# the caller must be), waits until it serves, and sets: sp (the serving bench's pid), port,
# pids (the contender's session leaders, comma-separated; their children are the workers).
serve_contender() {
  local name=$1 out=$2 base=${3:-}
  bench/run.sh ${base:+--baseline "$base"} --serve "$name" > "$out/serve.log" 2>&1 &
  sp=$!
  for _ in $(seq 1200); do grep -q 'pids' "$out/serve.log" && break; sleep 0.5; done
  port=$(grep -o '127.0.0.1:[0-9]*' "$out/serve.log" | head -1 | cut -d: -f2)
  pids=$(grep -o 'pids \[[^]]*\]' "$out/serve.log" | tr -dc '0-9, ')
}
