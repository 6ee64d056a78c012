"""The reports' CSV: one writer for the API (`Accept: text/csv`) and the dashboard's download, so both give the
same bytes for the same figures."""

import csv
import io
from typing import Any


def report_csv(data: dict[str, Any]) -> str:
    """The time series one row per period; the summary one `figure,value` row per figure (nested names joined
    with dots: `orders.count`, `points.expiring.30`, `tiers.bronze.members`)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if "periods" in data:
        periods = data["periods"]
        columns = ["start", *[k for k in (periods[0] if periods else {}) if k != "start"]]
        writer.writerow(columns)
        for period in periods:
            writer.writerow([period[c] for c in columns])
    else:
        writer.writerow(["figure", "value"])
        for name, value in summary_figures(data):
            writer.writerow([name, value])
    return out.getvalue()


def summary_figures(data, prefix: str = ""):
    """(dotted name, value) for every figure of a summary, in its order."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield from summary_figures(value, f"{prefix}{key}.")
    elif isinstance(data, list):  # the tiers, named by their code
        for item in data:
            code = item.get("code", "")
            yield from summary_figures({k: v for k, v in item.items() if k != "code"}, f"{prefix}{code}.")
    else:
        yield prefix.rstrip("."), data
