#!/bin/sh
# bench/peers/plot.sh CSV PNG: total PSS (master + workers) against the
# number of workers, one line per server, from bench/peers.sh's CSV
# (server,workers,requests,seconds,total_pss_before_mib,total_pss_mib,...):
# a solid line after the load, a dotted one of the same colour once the
# server was up, before it; the legend gives each server's figure after the
# load at the most workers.
set -eu
CSV=$1
PNG=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

name() {
  case $1 in
  cowdag) echo "cowdag, freeze + immortal" ;;
  node) echo "node cluster" ;;
  gthread) echo "gunicorn + CPython, gthread, gc.freeze" ;;
  sync) echo "gunicorn + CPython, sync, gc.freeze" ;;
  *) echo "$1" ;;
  esac
}
style() {
  case $1 in cowdag) echo 1 ;; node) echo 2 ;; gthread) echo 3 ;; sync) echo 4 ;; *) echo 5 ;; esac
}

plots=""
for s in $(awk -F, 'NR > 1 && !seen[$1]++ { print $1 }' "$CSV"); do
  awk -F, -v s="$s" 'NR > 1 && $1 == s { print $2, $6, $5 }' "$CSV" | sort -n > "$tmp/$s"
  set -- $(tail -n 1 "$tmp/$s")
  k=$(style "$s")
  plots="$plots${plots:+, }'$tmp/$s' using 1:2 with linespoints linestyle $k title '$(name "$s"): $(printf %.0f "$2") MiB at $1'"
  plots="$plots, '$tmp/$s' using 1:3 with lines linestyle $k dashtype 3 linewidth 1.2 notitle"
done
max=$(awk -F, 'NR > 1 { print $2 }' "$CSV" | sort -n | tail -n 1)

cat > "$tmp/plot.gp" <<GP
set terminal pngcairo size 1000,600 noenhanced font "DejaVu Sans,12" linewidth 2
set output "$PNG"
set style line 1 linecolor rgb "#2ca02c" dashtype 1 pointtype 7 pointsize 1.1
set style line 2 linecolor rgb "#1f77b4" dashtype 1 pointtype 5 pointsize 1.1
set style line 3 linecolor rgb "#d62728" dashtype 2 pointtype 9 pointsize 1.2
set style line 4 linecolor rgb "#ff7f0e" dashtype 4 pointtype 13 pointsize 1.2
set style line 5 linecolor rgb "#555555" dashtype 1 pointtype 3 pointsize 1.0
set grid linecolor rgb "#dddddd"
set border back
set title "Total PSS of master + workers after the same load per worker\n(customer_score over 200,000 customer records)"
set xlabel "workers"
set ylabel "total PSS (MiB)"
set logscale x 2
set xrange [0.8:$max * 1.25]
set xtics (1, 2, 4, 8, 16, 32, 64)
set yrange [0:*]
set key top left box opaque samplen 3 spacing 1.2 title "after the load (dotted: before it)"
plot $plots
GP
gnuplot "$tmp/plot.gp"
