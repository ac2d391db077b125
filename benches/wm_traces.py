#!/usr/bin/env python3
"""Prints the fake's request log of chosen runs of scripts/bench-window-modes.sh as Markdown, for
the raw-results file next to the CSV (the traces in window-modes-*.md).

Usage: wm_traces.py KEEP_DIR "TITLE=RUN_DIR/NAME" ...
  e.g. wm_traces.py /tmp/wm "date-only, 100 k/day: backfill=date-only-100000/backfill"
Reads KEEP_DIR/RUN_DIR/NAME.requests.jsonl (written by wm_measure.py). One line per request:
`from`, `to`, status, activities in the answer, bytes the fake wrote, ms it spent writing, and
`dropped` when the client closed the connection after the headers.
"""

from __future__ import annotations

import json
import os
import sys


def main() -> int:
    keep, specs = sys.argv[1], sys.argv[2:]
    for spec in specs:
        title, run = spec.rsplit("=", 1)
        path = os.path.join(keep, run + ".requests.jsonl")
        print(f"### {title}\n\n```")
        with open(path) as f:
            for line in f:
                e = json.loads(line)
                if "/activities" not in e["path"]:
                    continue
                print(f"{e['from']}  {e['to']}  {e['status']}  {e['count']:>7}  {e['bytes']:>10}"
                      f"  {e['ms']:>7}{'  dropped' if e.get('aborted') else ''}")
        print("```\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
