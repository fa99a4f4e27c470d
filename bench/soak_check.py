#!/usr/bin/env python3
"""bench/soak_check.py SOAK_CSV VERDICTS SECONDS OUT_MD: the verdict of
bench/soak.sh (its header states the bound), written to OUT_MD as
markdown; exit status 1 if the soak failed.

Series, per mode: for each worker slot, the last sample of each worker
(pid) while it was "ready", taken from the first minute on (one point per
generation, just before the reload that retired it); and for the master,
the least of its samples in each generation's time (from the first sample
showing that generation's workers to the first showing the next's) that
began after the first minute: while it loads the next generation the
master holds both states for a moment, and the least sample is its
steady figure between reloads.  Growth: the
least-squares slope times (SECONDS - 60); allowed: max(2% of the series'
mean, 20000 objects or 8 MiB)."""
import csv
import sys

FIRST_MINUTE = 60.0
SHARE = 0.02
FLOOR = {"objects": 20000.0, "rss_mib": 8.0}


def slope(points):
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    sxx = sum((t - mx) ** 2 for t, _ in points)
    return sum((t - mx) * (v - my) for t, v in points) / sxx if sxx else 0.0


def main():
    path, verdicts_path, seconds, out = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
    rows = list(csv.DictReader(open(path)))
    verdicts = list(csv.reader(open(verdicts_path)))
    span = max(seconds - FIRST_MINUTE, 1.0)
    lines, failed = [], []
    lines.append("| mode | series | points | start | end | slope /min | growth over the soak | allowed | verdict |")
    lines.append("|---|---|---|---|---|---|---|---|---|")
    summary = []
    for v in verdicts:
        mode, good, non2xx, sockerr, bad_ans, not4xx, slow_ok, slow_fail, slow_s, deaths, hups = v
        mrows = [r for r in rows if r["mode"] == mode]
        workers = [r for r in mrows if r["process"] == "worker"]
        # The reloads, as seen in the samples: a generation's first appearance.
        gen_start = {}
        for r in workers:
            g = int(r["generation"])
            gen_start.setdefault(g, float(r["time_s"]))
        series = {}
        last = {}
        for r in workers:
            if r["status"] == "ready" and float(r["time_s"]) >= FIRST_MINUTE:
                last[r["pid"]] = r
        for r in last.values():
            for key in ("objects", "rss_mib"):
                series.setdefault(("worker %s" % r["slot"], key), []).append((float(r["time_s"]), float(r[key])))
        starts = sorted(gen_start.values())
        for a, b in zip(starts, starts[1:] + [float("inf")]):
            if a < FIRST_MINUTE:
                continue
            cycle = [(float(r["time_s"]), float(r["rss_mib"])) for r in mrows
                     if r["process"] == "master" and a <= float(r["time_s"]) < b]
            if cycle:
                series.setdefault(("master", "rss_mib"), []).append(min(cycle, key=lambda p: p[1]))
        for (who, key), pts in sorted(series.items()):
            pts.sort()
            s = slope(pts)
            mean = sum(p for _, p in pts) / len(pts)
            growth = s * span
            allowed = max(SHARE * mean, FLOOR[key])
            ok = growth <= allowed
            unit = " MiB" if key == "rss_mib" else ""
            name = "%s %s" % (who, "RSS" if key == "rss_mib" else "objects alive")
            lines.append("| %s | %s | %d | %.0f%s | %.0f%s | %+.1f%s | %+.0f%s | %.0f%s | %s |" % (
                mode, name, len(pts), pts[0][1], unit, pts[-1][1], unit, s * 60, unit, growth, unit, allowed, unit,
                "ok" if ok else "GROWS"))
            if not ok:
                failed.append("%s: %s grows by %.0f%s over the soak (allowed %.0f)" % (mode, name, growth, unit, allowed))
            if len(pts) < 3:
                failed.append("%s: %s has %d points, too few to judge" % (mode, name, len(pts)))
        crashes = max([int(r["crashes"] or 0) for r in workers] or [0])
        summary.append("| %s | %s | %s | %s | %s | %s | %s ok, %s failed (%s s each) | %s | %s |" % (
            mode, good, non2xx, sockerr, bad_ans, not4xx, slow_ok, slow_fail, slow_s, hups,
            int(deaths) + crashes))
        if non2xx != "0" or sockerr != "none":
            failed.append("%s: good requests failed: %s non-2xx, socket errors %s" % (mode, non2xx, sockerr))
        if not4xx != "0" or bad_ans in ("?", "0"):
            failed.append("%s: bad requests: %s answered, %s not 4xx" % (mode, bad_ans, not4xx))
        if slow_fail != "0" or slow_ok == "0":
            failed.append("%s: slow reads: %s ok, %s failed" % (mode, slow_ok, slow_fail))
        if int(deaths) or crashes:
            failed.append("%s: workers died: %s in the master's log, %d in /stats" % (mode, deaths, crashes))
    with open(out, "w") as f:
        f.write("| mode | good requests | non-2xx | socket errors | bad requests | bad not 4xx | slow reads | reloads | worker deaths |\n")
        f.write("|---|---|---|---|---|---|---|---|---|\n")
        f.write("\n".join(summary) + "\n\n")
        f.write("\n".join(lines) + "\n\n")
        f.write("Verdict: %s\n" % ("PASS" if not failed else "FAIL"))
        for x in failed:
            f.write("- %s\n" % x)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
