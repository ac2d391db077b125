#!/usr/bin/env python3
# Soak plot and figures (issue 8): soak.csv + soak-flaps.csv + soak-run.json → soak.png
# (RSS and CPU over time; webhook backlog with the flap periods shaded) and soak-stats.json.
"""Reads, from --dir: soak.csv (scripts/soak.sh sampler), soak-flaps.csv (`epoch,up|down`
transitions of the webhook receiver), soak-run.json (t0 and generation end). Writes soak.png
and soak-stats.json there, and prints the stats. Needs matplotlib.

Definitions used in the stats:
- CPU %: (utime+stime) seconds per wall second × 100, i.e. % of one core; averaged over the
  generation period.
- RSS slope: least-squares fit of RSS over the last 20 minutes of generation (or the whole
  generation period when shorter), in MiB per hour.
- Per flap: the webhook backlog's maximum from the receiver going down until the backlog has
  drained, and the drain time = first sample after the receiver came back up at which the
  webhook backlog is no larger than the file sink's (the file sink never fails, so it is the
  backlog of a healthy sink at that moment).
"""

import argparse
import csv
import json
import statistics

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def load(d):
    with open(f"{d}/soak.csv", encoding="utf-8") as f:
        rows = [{k: float(v) for k, v in r.items()} for r in csv.DictReader(f)]
    run = json.load(open(f"{d}/soak-run.json", encoding="utf-8"))
    flaps = []
    with open(f"{d}/soak-flaps.csv", encoding="utf-8") as f:
        for line in f:
            ts, state = line.strip().split(",")
            flaps.append((float(ts) - run["t0_epoch"], state))
    return rows, run, flaps


def down_periods(flaps, t_end):
    out, start = [], None
    for t, state in flaps:
        if state == "down":
            start = t
        elif state == "up" and start is not None:
            out.append((start, t))
            start = None
    if start is not None:
        out.append((start, t_end))
    return out


def slope_per_hour(ts, ys):
    n = len(ts)
    if n < 2:
        return 0.0
    mt, my = sum(ts) / n, sum(ys) / n
    var = sum((t - mt) ** 2 for t in ts)
    return 0.0 if var == 0 else sum((t - mt) * (y - my) for t, y in zip(ts, ys)) / var * 3600


def stats(rows, run, downs):
    gen_end = run["generation_end_epoch"] - run["t0_epoch"]
    gen = [r for r in rows if r["t_seconds"] <= gen_end]
    rss = [r["rss_kib"] / 1024 for r in gen]
    last = [r for r in gen if r["t_seconds"] >= gen_end - 1200]
    cpu_avg = ((gen[-1]["cpu_seconds_total"] - gen[0]["cpu_seconds_total"])
               / (gen[-1]["t_seconds"] - gen[0]["t_seconds"]) * 100)
    flaps = []
    for down, up in downs:
        drained_at = next((r["t_seconds"] for r in rows if r["t_seconds"] >= up
                           and r["backlog_webhook"] <= r["backlog_file"]), None)
        window = [r for r in rows
                  if down <= r["t_seconds"] <= (drained_at if drained_at is not None else 1e12)]
        flaps.append({
            "down_at_s": round(down, 1), "up_at_s": round(up, 1),
            "max_backlog": int(max((r["backlog_webhook"] for r in window), default=0)),
            "drain_s_after_up": None if drained_at is None else round(drained_at - up, 1),
        })
    return {
        "samples": len(rows),
        "generation_s": round(gen_end, 1),
        "rss_mib": {"min": round(min(rss), 1), "median": round(statistics.median(rss), 1),
                    "max": round(max(rss), 1)},
        "rss_slope_mib_per_h_last_20min": round(slope_per_hour(
            [r["t_seconds"] for r in last], [r["rss_kib"] / 1024 for r in last]), 2),
        "rss_slope_window_s": [round(last[0]["t_seconds"], 1), round(last[-1]["t_seconds"], 1)],
        "cpu_avg_percent_of_one_core": round(cpu_avg, 1),
        "cpu_seconds_during_generation": round(
            gen[-1]["cpu_seconds_total"] - gen[0]["cpu_seconds_total"], 1),
        "flaps": flaps,
    }


def plot(rows, run, downs, path):
    t = [r["t_seconds"] / 60 for r in rows]
    rss = [r["rss_kib"] / 1024 for r in rows]
    cpu = [0.0] + [
        (b["cpu_seconds_total"] - a["cpu_seconds_total"]) / (b["t_seconds"] - a["t_seconds"]) * 100
        for a, b in zip(rows, rows[1:])
    ]
    gen_end = (run["generation_end_epoch"] - run["t0_epoch"]) / 60
    fig, (ax1, ax3) = plt.subplots(2, 1, figsize=(12, 7.5), sharex=True,
                                   gridspec_kw={"height_ratios": [3, 2]})
    rate = run["rate_per_org_per_min"] * run["orgs"] / 60
    fig.suptitle(f"Soak: {run['minutes']} min at {rate:.0f} activities/s "
                 f"({run['orgs']} orgs), sinks: {', '.join(run['sinks'])}")
    for ax in (ax1, ax3):
        for i, (a, b) in enumerate(downs):
            ax.axvspan(a / 60, b / 60, color="tab:red", alpha=0.12, lw=0,
                       label="webhook receiver down" if i == 0 else None)
        ax.axvline(gen_end, color="grey", ls="--", lw=1, label="generation stops")
        ax.grid(alpha=0.3)
    ax1.plot(t, rss, color="tab:blue", lw=1.6, label="RSS (MiB)")
    ax1.set_ylabel("RSS (MiB)", color="tab:blue")
    ax1.set_ylim(0, max(rss) * 1.25)
    ax2 = ax1.twinx()
    ax2.plot(t, cpu, color="tab:orange", lw=0.9, alpha=0.8, label="CPU % of one core (10 s)")
    ax2.set_ylabel("CPU % of one core", color="tab:orange")
    ax2.set_ylim(0, max(max(cpu) * 1.25, 10))
    h1, l1 = ax1.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax1.legend(h1 + h2, l1 + l2, loc="upper left", fontsize=8)
    ax1.set_title("exporter process", fontsize=10)
    for s in run["sinks"]:
        ys = [r[f"backlog_{s}"] for r in rows]
        if s == "webhook":
            ax3.plot(t, ys, color="tab:red", lw=1.8, label="webhook (flapping)")
        else:
            ax3.plot(t, ys, lw=0.8, alpha=0.7, label=s)
    ax3.set_ylabel("backlog (events)")
    ax3.set_xlabel("minutes since start")
    ax3.set_title("sink backlog (clickhouse_audit_sink_backlog_events)", fontsize=10)
    ax3.legend(loc="upper left", fontsize=8, ncol=4)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", default="benches/results")
    a = ap.parse_args()
    rows, run, flaps = load(a.dir)
    downs = down_periods(flaps, rows[-1]["t_seconds"])
    s = stats(rows, run, downs)
    with open(f"{a.dir}/soak-stats.json", "w", encoding="utf-8") as f:
        json.dump(s, f, indent=2)
    print(json.dumps(s, indent=2))
    plot(rows, run, downs, f"{a.dir}/soak.png")


if __name__ == "__main__":
    main()
