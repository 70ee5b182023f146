"""A validation report: measured against simulated latency, as markdown tables and charts.

``write_report`` puts ``report.md`` in a folder with one chart per run (measured and simulated
cumulative distributions of TTFT, TPOT and E2E) and one chart of the mean errors of all runs,
so a reader sees at a glance where the prediction misses and by how much.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers or in CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from calibrate.replay import METRICS, STATS  # noqa: E402

ALL_METRICS = (*METRICS, "ITL")


@dataclass(frozen=True)
class RunValidation:
    """One replayed run: per-request latencies (s) measured and simulated, and the error table."""

    name: str
    measured: pd.DataFrame
    simulated: pd.DataFrame
    errors: pd.DataFrame


def markdown_table(errors: pd.DataFrame, profile: str) -> str:
    """Measured vs simulated per run and metric, and the median APE of each metric's mean."""
    lines = [f"Latency profile: {profile}", "",
             "| run | metric | " + " | ".join(f"{s} measured / simulated ms (APE)" for s in STATS)
             + " |", "|---|---|" + "---|" * len(STATS)]
    for (run, metric), group in errors.groupby(["run", "metric"], sort=False):
        lines.append(f"| {run} | {metric} | " + " | ".join(_cell(r) for r in group.itertuples())
                     + " |")
    means = errors[errors["stat"] == "mean"].groupby("metric", sort=False)["ape_pct"].median()
    lines += ["", "Median over runs of the APE of the mean: "
              + ", ".join(f"{m} {v:.1f} %" for m, v in means.items() if np.isfinite(v))]
    return "\n".join(lines)


def _cell(row) -> str:
    if row.measured_ms is None or not np.isfinite(row.measured_ms):
        return "–"  # ITL percentiles: request timestamps do not give every token's time
    return f"{row.measured_ms:,.1f} / {row.simulated_ms:,.1f} ({row.ape_pct:.1f} %)"


def write_report(folder: Path, runs: list[RunValidation], profile: str) -> Path:
    """Write ``report.md`` and its charts into ``folder``; returns the report's path."""
    folder.mkdir(parents=True, exist_ok=True)
    errors = pd.concat([r.errors for r in runs], ignore_index=True)
    parts = [f"# Validation: measured vs simulated latency ({date.today().isoformat()})", "",
             "Each run's requests were replayed at their arrival times through the simulator "
             "set up as the measured engine was. APE: absolute percentage error of the "
             "simulated figure against the measured one.", "",
             markdown_table(errors, profile), "",
             f"![Mean errors per run]({_error_chart(folder, errors)})", ""]
    for run in runs:
        parts += [f"## {run.name}", "", f"![{run.name}]({_distribution_chart(folder, run)})", ""]
    path = folder / "report.md"
    path.write_text("\n".join(parts))
    return path


def _distribution_chart(folder: Path, run: RunValidation) -> str:
    fig, axes = plt.subplots(1, len(METRICS), figsize=(4 * len(METRICS), 3.4))
    for ax, metric in zip(axes, METRICS):
        for frame, label, style in ((run.measured, "measured", "-"),
                                    (run.simulated, "simulated", "--")):
            values = np.sort(frame[metric].dropna().to_numpy()) * 1e3
            ax.plot(values, np.arange(1, values.size + 1) / values.size, style, label=label)
        ax.set_title(f"{metric} distribution")
        ax.set_xlabel(f"{metric} (ms)")
        ax.set_ylabel("share of requests")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle(run.name)
    fig.tight_layout()
    name = f"{_file_name(run.name)}.png"
    fig.savefig(folder / name, dpi=110)
    plt.close(fig)
    return name


def _error_chart(folder: Path, errors: pd.DataFrame) -> str:
    means = errors[errors["stat"] == "mean"].pivot(index="run", columns="metric",
                                                   values="ape_pct")
    means = means[[m for m in ALL_METRICS if m in means.columns]]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.6 * len(means) + 2), 3.6))
    width = 0.8 / len(means.columns)
    x = np.arange(len(means))
    for i, metric in enumerate(means.columns):
        ax.bar(x + i * width, means[metric].to_numpy(), width, label=metric)
    ax.set_xticks(x + width * (len(means.columns) - 1) / 2, means.index, rotation=15,
                  ha="right")
    ax.set_ylabel("absolute error of the mean (%)")
    ax.set_title("Simulated vs measured means, per run")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(folder / "errors.png", dpi=110)
    plt.close(fig)
    return "errors.png"


def _file_name(run: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in run)
