#!/bin/sh
# bench/soak_plot.sh SOAK_CSV OUT_PNG MODES: the soak's plot (bench/soak.sh):
# per mode, a row of three panels over time -- RSS MiB of each worker slot
# and of the master, heap objects alive per worker slot, and copied MiB of
# state per worker slot.  Each reload replaces the workers: the lines step
# at each one.
set -eu
csv=$1 png=$2 modes=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0
for mode in $modes; do n=$((n + 1)); done
{
  echo "set terminal pngcairo size 1500,$((n * 360)) font ',10'"
  echo "set output '$png'"
  echo "set datafile separator ','"
  echo "set key top left"
  echo "set grid"
  echo "set xlabel 'seconds'"
  echo "set multiplot layout $n,3"
  for mode in $modes; do
    safe=$(echo "$mode" | tr '+' '_')
    for s in 0 1; do
      awk -F, -v m="\"$mode\"" -v s="$s" '$2 == m && $3 == "\"worker\"" && $4 == s && $7 == "\"ready\"" { gsub(/"/, ""); print $1 "," $10 "," $11 "," $13 }' \
        "$csv" > "$tmp/$safe.w$s"
    done
    awk -F, -v m="\"$mode\"" '$2 == m && $3 == "\"master\"" { gsub(/"/, ""); print $1 "," $10 }' "$csv" > "$tmp/$safe.m"
    echo "set title '$mode: RSS MiB'"
    echo "plot '$tmp/$safe.w0' using 1:2 with linespoints title 'worker 0', '$tmp/$safe.w1' using 1:2 with linespoints title 'worker 1', '$tmp/$safe.m' using 1:2 with linespoints title 'master'"
    echo "set title '$mode: heap objects alive'"
    echo "plot '$tmp/$safe.w0' using 1:3 with linespoints title 'worker 0', '$tmp/$safe.w1' using 1:3 with linespoints title 'worker 1'"
    echo "set title '$mode: copied MiB of state'"
    echo "plot '$tmp/$safe.w0' using 1:4 with linespoints title 'worker 0', '$tmp/$safe.w1' using 1:4 with linespoints title 'worker 1'"
  done
  echo "unset multiplot"
} > "$tmp/plot.gp"
gnuplot "$tmp/plot.gp"
