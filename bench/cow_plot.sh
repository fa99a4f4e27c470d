#!/bin/sh
# bench/cow_plot.sh CSV OUT_DIR [SECONDS]: the two figures of the
# copy-on-write matrix, drawn with gnuplot from bench/cow_matrix.sh's CSV:
#
#   OUT_DIR/cow_private.png   private MiB of state per worker over time
#   OUT_DIR/cow_objects.png   heap objects alive per worker over time
#
# One line per mode, the mean over that mode's workers at each sample; the
# legend gives each mode's figure at the last sample.  SECONDS (the load's
# length) draws the "load ends" marker.
set -eu
CSV=$1
OUT=$2
DURATION=${3:-}
PAGE=$(getconf PAGESIZE)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Per mode, per sample: time, mean private MiB, mean objects (millions), in
# $tmp/plot.MODE; the modes in CSV order in $tmp/modes; then the state's size
# and the workers per mode.
awk -F, -v dir="$tmp" -v page="$PAGE" '
  NR == 1 { next }
  { gsub(/"/, "", $2); key = $2 SUBSEP $1
    if (!($2 in seen)) { seen[$2] = 1; modes[++m] = $2 }
    if (!(key in cnt)) { order[++n] = key; modeof[key] = $2; tof[key] = $1 }
    cnt[key]++; priv[key] += $7; obj[key] += $10; pages = $4; workers[$2 SUBSEP $3] = 1 }
  END {
    for (i = 1; i <= n; i++) { k = order[i]; f = dir "/plot." modeof[k]
      printf "%s %.3f %.4f\n", tof[k], priv[k] / cnt[k], obj[k] / cnt[k] / 1e6 > f }
    for (i = 1; i <= m; i++) print modes[i] > (dir "/modes")
    w = 0; for (k in workers) w++
    printf "%.1f %d\n", pages * page / 1048576, w / m > (dir "/state") }' "$CSV"
read -r state_mib workers < "$tmp/state"

style() { # MODE -> line style number, fixed per mode
  case $1 in tuned) echo 1 ;; tuned-high) echo 2 ;; disable) echo 3 ;; freeze) echo 4 ;; freeze+immortal) echo 5 ;; *) echo 6 ;; esac
}
priv_plots="" obj_plots=""
while read -r mode; do
  k=$(style "$mode")
  f="$tmp/plot.$mode"
  set -- $(tail -n 1 "$f")
  pt=$(awk -v p="$2" -v s="$state_mib" 'BEGIN { printf "%.1f MiB = %.1f%% of the state", p, 100 * p / s }')
  ot=$(awk -v o="$3" 'BEGIN { printf "%.2f million", o }')
  priv_plots="$priv_plots${priv_plots:+, }'$f' using 1:2 with linespoints linestyle $k title '$mode: $pt'"
  obj_plots="$obj_plots${obj_plots:+, }'$f' using 1:3 with linespoints linestyle $k title '$mode: $ot'"
done < "$tmp/modes"

# Lines that end within 3% of the axis of each other hide one another: one
# label above each such group names its modes.  ARGS: column (2 or 3), axis
# maximum or 0 for the data's; prints gnuplot "set label" lines.
overlap_labels() {
  while read -r mode; do
    tail -n 1 "$tmp/plot.$mode" | awk -v m="$mode" -v c="$1" '{ print $c, m }'
  done < "$tmp/modes" | sort -g | awk -v axis="$2" -v xmid="$xmid" '
    { v[NR] = $1; $1 = ""; name[NR] = substr($0, 2) }
    END {
      if (axis == 0) for (i = 1; i <= NR; i++) if (v[i] > axis) axis = v[i]
      tol = 0.03 * axis; start = 1
      for (i = 2; i <= NR + 1; i++) {
        if (i <= NR && v[i] - v[i - 1] <= tol) continue
        if (i - start >= 2) {
          names = name[start]; for (j = start + 1; j < i; j++) names = names ", " name[j]
          printf "set label \"%s (lines overlap)\" at %s, %g center front\n", names, xmid, v[i - 1] + 0.045 * axis
        }
        start = i
      } }'
}
xmid=$(awk -v d="${DURATION:-0}" 'BEGIN { print (d > 0 ? d : 30) / 2 }')

end_marker=""
[ -n "$DURATION" ] && end_marker="set arrow from $DURATION, graph 0 to $DURATION, graph 1 nohead dashtype 2 linecolor rgb '#555555' linewidth 1
set label 'load ends' at $DURATION, graph 0.97 right offset -0.5,0 textcolor rgb '#555555'"

cat > "$tmp/plot.gp" <<GP
set terminal pngcairo size 1000,600 noenhanced font "DejaVu Sans,12" linewidth 2
set style line 1 linecolor rgb "#d62728" dashtype 1 pointtype 7 pointsize 0.9
set style line 2 linecolor rgb "#ff7f0e" dashtype 2 pointtype 5 pointsize 0.9
set style line 3 linecolor rgb "#555555" dashtype 4 pointtype 9 pointsize 1.0
set style line 4 linecolor rgb "#1f77b4" dashtype 3 pointtype 13 pointsize 1.0
set style line 5 linecolor rgb "#2ca02c" dashtype 1 pointtype 11 pointsize 1.0
set style line 6 linecolor rgb "#9467bd" dashtype 1 pointtype 3 pointsize 1.0
set grid linecolor rgb "#dddddd"
set border back
set key box opaque samplen 3 spacing 1.2 title "mode: value at the last sample"
set xlabel "time since load start (s)"
set xrange [-0.5:*]

set output "$OUT/cow_private.png"
set title "Private (copied) pages of the inherited state per worker, mean over the $workers workers\n($state_mib MiB of state; the rest is still shared with the master)"
set ylabel "private state (MiB)"
set y2label "private state (% of the state's pages)"
set yrange [0:$state_mib]
set link y2 via y * 100.0 / $state_mib inverse y * $state_mib / 100.0
set ytics 25 nomirror
set y2tics 10
set key top left
$end_marker
$(overlap_labels 2 "$state_mib")
plot $priv_plots
unset label
unset arrow

unset link y2
unset y2tics
unset y2label
set ytics autofreq mirror
set output "$OUT/cow_objects.png"
set title "Heap objects alive per worker, mean over the $workers workers\n(disable never collects the cycles the graph requests leave)"
set ylabel "objects alive (millions)"
set yrange [0:*]
set key top left
$end_marker
$(overlap_labels 3 0)
plot $obj_plots
GP
gnuplot "$tmp/plot.gp"
