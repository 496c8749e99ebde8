#!/bin/sh
# Model-checks jetq's delivery protocol (model/jetq.pml, docs/design/attempts.md) with SPIN:
# exhaustive safety and liveness runs that must pass, findings on the design as written that
# must still be refuted, and one-line mutations that SPIN must reject. model/README.md explains each.
# Usage: sh scripts/model.sh [name...]   (no name: every run)
set -eu
cd "$(dirname "$0")/.."

if ! command -v spin >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "model: installing Debian's spin (apt-get install spin)" >&2
    (apt-get install -y -qq spin >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get install -y -qq spin >/dev/null; }) >&2
  else
    echo "model: SPIN is not installed. Install it: sudo apt-get install spin (Debian/Ubuntu), brew install spin (macOS)," >&2
    echo "       or from https://spinroot.com; then run npm run model again." >&2
    exit 1
  fi
fi
command -v gcc >/dev/null 2>&1 || { echo "model: gcc is needed to compile SPIN's verifier: sudo apt-get install gcc" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/jetq-model.XXXXXX")
trap 'rm -rf "$work"' EXIT
cp model/jetq.pml "$work/"
keep="${JETQ_MODEL_TRAILS:-}"   # a directory to keep counterexample trails and stories in

# The design with the fixes model/README.md proposes (F-stale, F6); the gate runs check it.
FIXED="-DFIX_STALE -DFIX_DEAD_RECORD"
# Bounds: 2 jobs (a poison job and an ordinary one), 2 workers of concurrency 2, maxAttempts 2,
# maxCrashes 2, 2 handler failures; each run adds its own budget of crashes, stalls, stops, strays.
# GIVEUPB: suspects handed back because a handler beside them hangs (none in the liveness run: a
# hang is finite there, and each give-up spends a delivery towards the cut-off DMAX).
C1="-DCRASHB=1 -DLAPSEB=0 -DSTRAYB=0 -DSTOPB=1 -DGIVEUPB=1"
C2="-DCRASHB=1 -DLAPSEB=0 -DSTRAYB=1 -DSTOPB=0 -DGIVEUPB=1"
C3="-DCRASHB=0 -DLAPSEB=1 -DSTRAYB=0 -DSTOPB=0 -DGIVEUPB=1 -DDMAX=4"
C4="-DCRASHB=1 -DLAPSEB=1 -DSTRAYB=0 -DSTOPB=0 -DGIVEUPB=1 -DDMAX=4"
CL="-DCRASHB=1 -DLAPSEB=0 -DSTRAYB=0 -DSTOPB=0 -DDMAX=8"   # no stalls: a cycle at the cut-off would fail the run

# name | expect (pass/fail) | kind (safety/liveness) | flags
RUNS="
safety-crash-stop|pass|safety|$FIXED $C1 -DSTRICT_GUILT -DSTRICT_ATTEMPT
safety-crash-stray|pass|safety|$FIXED $C2 -DSTRICT_GUILT -DSTRICT_ATTEMPT
safety-stall|pass|safety|$FIXED $C3
liveness|pass|liveness|$FIXED $CL
finding-F1-handback-as-read|fail|safety|$FIXED $C1 -DSPEC_HANDBACK_AS_READ
finding-F2-stale-classify|fail|safety|-DFIX_DEAD_RECORD $C3
finding-F3-stale-attempt|fail|safety|$FIXED $C3 -DSTRICT_ATTEMPT
finding-F4-stall-or-stale-nak-charged|fail|safety|$FIXED $C3 -DSTRICT_GUILT
finding-F5-dead-letter-on-stale-read|fail|safety|-DFIX_STALE $C4
mutation-attempt-is-delivery|fail|safety|$FIXED $C1 -DM_ATTEMPT_IS_DELIVERY
mutation-term-before-dead-letter|fail|safety|$FIXED $C1 -DM_TERM_FIRST
mutation-nak-before-ledger-write|fail|safety|$FIXED $C1 -DM_NAK_BEFORE_WRITE
mutation-no-compare-and-set|fail|safety|$FIXED $C3 -DM_NO_CAS
mutation-no-dead-letter-msg-id|fail|safety|$FIXED $C1 -DM_NO_MSGID
mutation-charge-every-unexplained|fail|safety|$FIXED $C1 -DM_CHARGE_UNEXPLAINED
mutation-isolate-without-waiting|fail|safety|$FIXED $C1 -DM_NO_WAIT
mutation-suspect-runs-among-others|fail|safety|$FIXED $C1 -DM_SUSPECT_RUNS
mutation-hand-back-unrecorded|fail|safety|$FIXED $C1 -DM_HANDBACK_UNRECORDED
mutation-no-crash-limit|fail|liveness|$FIXED $CL -DM_NO_CRASH_LIMIT
"

failed=0
total_start=$(date +%s)
printf '%-38s %-6s %-9s %12s %8s  %s\n' run expect result states seconds "first violation"
echo "$RUNS" | while IFS='|' read -r name expect kind flags; do
  [ -n "$name" ] || continue
  if [ $# -gt 0 ]; then
    match=0; for want in "$@"; do [ "$want" = "$name" ] && match=1; done
    [ $match = 1 ] || continue
  fi
  d="$work/$name"; mkdir -p "$d"; cp "$work/jetq.pml" "$d/"
  # A run expected to pass searches everything: compile for speed. One expected to fail stops at
  # its first violation, usually in well under a second: compile fast.
  opt=-O0; [ "$expect" = pass ] && opt=-O2
  # shellcheck disable=SC2086
  if [ "$kind" = liveness ]; then
    (cd "$d" && spin -a -DLIVENESS $flags jetq.pml >/dev/null && gcc -w $opt -DCOLLAPSE -DNOBOUNDCHECK -DLIVENESS $flags -o pan pan.c)
    (cd "$d" && ./pan -a -f -m200000 -w24 >out.txt 2>&1) || true
  else
    (cd "$d" && spin -a $flags jetq.pml >/dev/null && gcc -w $opt -DSAFETY -DCOLLAPSE -DNOBOUNDCHECK $flags -o pan pan.c)
    (cd "$d" && ./pan -m200000 -w24 >out.txt 2>&1) || true
  fi
  errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' "$d/out.txt" | head -1)
  states=$(sed -n 's/^ *\([0-9e.+]*\) states, stored.*/\1/p' "$d/out.txt" | head -1)
  secs=$(sed -n 's/^pan: elapsed time \([0-9.e+]*\).*/\1/p' "$d/out.txt" | head -1)
  what=$(grep -m1 '^pan:1:' "$d/out.txt" | sed 's/^pan:1: //; s/ (at depth.*//' | cut -c1-90 || true)
  incomplete=$(grep -c 'Search not completed\|max search depth too small' "$d/out.txt" || true)
  if [ -z "$errors" ]; then result=broken
  elif [ "$errors" = 0 ]; then result=pass
  else result=violated; fi
  ok=0
  if [ "$expect" = pass ] && [ "$result" = pass ] && [ "$incomplete" = 0 ]; then ok=1; fi
  if [ "$expect" = fail ] && [ "$result" = violated ]; then ok=1; fi
  mark=ok; [ $ok = 1 ] || mark=UNEXPECTED
  printf '%-38s %-6s %-9s %12s %8s  %s %s\n' "$name" "$expect" "$result" "${states:-?}" "${secs:-?}" "$what" "$([ $mark = ok ] || echo "<-- $mark")"
  if [ "$result" = violated ] && [ -n "$keep" ]; then
    mkdir -p "$keep"
    # shellcheck disable=SC2086
    (cd "$d" && spin -t $flags $([ "$kind" = liveness ] && echo -DLIVENESS) jetq.pml 2>&1 | grep -E 'STORY|assertion|cycle' > "$keep/$name.story" || true)
    cp "$d/jetq.pml.trail" "$keep/$name.trail" 2>/dev/null || true
  fi
  if [ $ok = 0 ]; then
    [ "$incomplete" = 0 ] || echo "  $name: the search did not complete (depth or memory bound): $(grep -m1 -E 'not completed|too small' "$d/out.txt")"
    [ "$result" != broken ] || sed 's/^/  | /' "$d/out.txt" | tail -20
    touch "$work/FAILED"
  fi
done
elapsed=$(( $(date +%s) - total_start ))
if [ -e "$work/FAILED" ]; then
  echo "model: FAILED in ${elapsed}s (a run did not end as expected; see above)" >&2
  exit 1
fi
echo "model: all runs ended as expected in ${elapsed}s"
