"""Run an ncanalyze command on a pseudo-terminal (where its progress bar is drawn) and print
the bar's fill and its remaining-time estimate at fractions of the wall time, to see whether
the bar tracks the work (docs/PERFORMANCE.md).

    python benchmarks/progress_trace.py ncanalyze metrics big.h5 -f json -o /tmp/out.json
"""
import os
import pty
import re
import sys
import time

BAR = "━╸╺"
start = time.monotonic()
pid, fd = pty.fork()
if pid == 0:
    os.environ["COLUMNS"] = "100"
    os.execvp(sys.argv[1], sys.argv[1:])
frames, pending = [], ""
while True:
    try:
        data = os.read(fd, 65536)
    except OSError:
        break
    if not data:
        break
    pending += data.decode(errors="replace")
    *done, pending = re.split(r"\r|\n", pending)
    now = time.monotonic() - start
    for frame in done:
        if "━" not in frame:
            continue
        grey = sum(len(m.group(1)) for m in re.finditer(r"\x1b\[90m([" + BAR + "]+)", frame))
        total = sum(frame.count(c) for c in BAR)
        eta = re.findall(r"(\d+:\d\d:\d\d|-:--:--)", frame)
        epochs = re.findall(r"(\d+/\d+) epochs", frame)
        done_epochs = epochs[-1].split("/") if epochs else ["", "?"]
        pct = 100.0 if done_epochs[0] == done_epochs[1] else 100 * (total - grey) / total
        frames.append((now, pct, eta[-1] if eta else "?", epochs[-1] if epochs else "?"))
_, status = os.waitpid(pid, 0)
total = time.monotonic() - start
print(f"exit {os.waitstatus_to_exitcode(status)}, {total:.1f} s, {len(frames)} frames")
for frac in (0.1, 0.25, 0.5, 0.75, 0.9, 0.97):
    t = frac * total
    shown = [f for f in frames if f[0] <= t]
    if shown:
        _, pct, eta, ep = shown[-1]
        print(f"at {frac:.0%} of the time ({t:5.1f} s): bar {pct:5.1f}%, {ep} epochs, "
              f"remaining shown {eta}")
