"""`porting parity --plot`: per-layer error against depth, the tolerance line, the first failure marked."""
from __future__ import annotations

from pathlib import Path

from porting.compare import Report


def plot_report(report: Report, path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(12, 5), dpi=110)
    runtimes = list(dict.fromkeys(r.runtime for r in report.rows))
    for runtime in runtimes:
        rows = [r for r in report.rows if r.runtime == runtime]
        # error in units of the tested scale, max(1, max|ref|): the pass line is then rtol for every layer
        errors = [max(r.max_abs / max(r.bound / report.rtol, 1e-30), 1e-12) for r in rows]
        depth = range(len(rows))
        ax.plot(depth, errors, marker=".", label=runtime, linewidth=1)
        first = report.first_failure(runtime)
        if first is not None:
            i = rows.index(first)
            ax.scatter([i], [errors[i]], s=140, facecolors="none", edgecolors="red", linewidths=2, zorder=5)
            ax.annotate(f"first failure: {first.layer}", (i, errors[i]), textcoords="offset points", xytext=(8, 8),
                        color="red")
    ax.axhline(report.rtol, color="red", linestyle="--", label=f"tolerance {report.rtol:g}")
    ax.set_yscale("log")
    ax.set_xlabel("layer (source order; the last point is the logits)")
    ax.set_ylabel("max |ref - out| / max(1, max |ref|)")
    verdict = "PASS" if report.ok else "FAIL"
    ax.set_title(f"parity {report.spec}: {verdict} (batch {report.info.get('batch')}, size {report.info.get('size')})")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
