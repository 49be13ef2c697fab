"""A static HTML page that opens offline: inline CSS, no script, no network; every image and download is a file
inside the report folder, referenced by a relative path.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from aiecg import __version__
from aiecg.csvfile import write_csv
from aiecg.files import atomic_write
from aiecg.report import figures as figs
from aiecg.report import tables
from aiecg.report.runs import RunData
from aiecg.report.style import save_figure

CSS = """
body{font-family:Helvetica,Arial,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#111;line-height:1.4}
h1{font-size:1.6em}h2{font-size:1.25em;border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
h3{font-size:1.05em}
table{border-collapse:collapse;font-size:.82em;margin:.5em 0 1em}
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f2f2f2}
figure{margin:1em 0 2em}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.85em;color:#333;max-width:900px}
.note{font-size:.85em;color:#8a4b00;background:#fff6e5;padding:.3em .6em;border-left:3px solid #e69f00}
nav{font-size:.9em}nav a{margin-right:1em}
dl.card{display:grid;grid-template-columns:12em 1fr;gap:.2em 1em;font-size:.9em}dl.card dt{font-weight:bold}
"""


def _esc(text: object) -> str:
    return html.escape(str(text))


def _table(frame: pd.DataFrame, out: Path, name: str) -> str:
    """The table as HTML, and as CSV beside the page."""
    write_csv(frame, out / "tables" / f"{name}.csv")
    body = frame.to_html(index=False, na_rep="", escape=True, border=0, float_format=lambda v: f"{v:.3g}")
    return body + f'<p><a href="tables/{_esc(name)}.csv">{_esc(name)}.csv</a></p>'


def _figure(plot: figs.Plot, out: Path) -> str:
    parts = [f'<section id="{_esc(plot.name)}"><h3>{_esc(plot.title)}</h3>']
    for note in plot.notes:
        parts.append(f'<p class="note">{_esc(note)}</p>')
    if plot.figure is not None:
        files = save_figure(plot.figure, out / "figures", plot.name)
        plot.figure.clear()
        parts.append(f'<figure><img src="figures/{_esc(files["png"])}" alt="{_esc(plot.title)}">'
                     f'<figcaption>{_esc(plot.caption)} <a href="figures/{_esc(files["svg"])}">SVG</a></figcaption>'
                     "</figure>")
    parts.append("</section>")
    return "\n".join(parts)


def render_report(runs: list[RunData], out: str | Path, title: str = "aiecg report") -> Path:
    """Write ``index.html`` with its ``figures/`` and ``tables/`` into ``out``; returns the page's path.

    The page is written last, atomically, and an earlier page is removed first: a report killed while
    re-rendering leaves no page rather than the old page over new figures.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "index.html").unlink(missing_ok=True)
    results = [r for r in runs if r.kind != "explain"]
    explains = [r for r in runs if r.kind == "explain"]
    body: list[str] = []
    nav = ['<a href="#summary">Summary</a>', '<a href="#figures">Figures</a>', '<a href="#tables">Tables</a>']

    body.append('<h2 id="summary">Runs</h2>')
    summary = pd.DataFrame([{"run": r.label, "kind": r.kind, "cohort": r.cohort_name, "folder": r.path.name,
                             **tables.headline_numbers(r)} for r in results])
    if len(summary):
        body.append(_table(summary, out, "runs"))
    for run in runs:
        for note in run.notes:
            body.append(f'<p class="note">{_esc(run.label)}: {_esc(note)}</p>')

    body.append('<h2 id="figures">Figures</h2>')
    plots = figs.draw_figures(results)  # every registered figure (aiecg.report.figures), in page order
    for plot in plots:
        body.append(_figure(plot, out))
    if explains:
        nav.append('<a href="#explain">Explanations</a>')
        body.append('<h2 id="explain">Explanations</h2>')
        for run in explains:
            for plot in figs.explanation_plots(run):
                body.append(_figure(plot, out))

    body.append('<h2 id="tables">Tables</h2>')
    by_cohort = tables.characteristics_by_cohort(results)
    if by_cohort is not None:
        body.append("<h3>Participant characteristics by cohort</h3>")
        body.append("<p>Median (SD) with Welch's t-test; n (%) with Fisher's exact or chi-squared test.</p>")
        body.append(_table(by_cohort, out, "characteristics_by_cohort"))
    for i, run in enumerate(results):
        slug = f"{i}_" + "".join(c if c.isalnum() else "_" for c in run.label)
        body.append(f"<h3>{_esc(run.label)} ({_esc(run.cohort_name)})</h3>")
        characteristics = tables.characteristics_by_lvh(run)
        if characteristics is not None:
            body.append("<h4>Participant characteristics, LVH vs no LVH (every participant of the run)</h4>")
            body.append("<p>Median (SD) with Welch's t-test; n (%) with Fisher's exact or chi-squared test.</p>")
            body.append(_table(characteristics, out, f"characteristics_{slug}"))
        flow = tables.participant_flow(run)
        if flow is not None:
            body.append("<h4>Flow of participants</h4>")
            body.append(_table(flow, out, f"flow_{slug}"))
        metrics = tables.metrics_table(run)
        if len(metrics):
            body.append("<h4>Metrics with 95% intervals</h4>")
            body.append(_table(metrics, out, f"metrics_{slug}"))
        coverage = tables.interval_coverage_table(run)
        if coverage is not None:
            method = run.metrics["conformal"].get("method", "split-conformal")
            body.append("<h4>Prediction intervals: coverage on the test participants</h4>")
            body.append(f"<p>{_esc(method)}, calibrated on the {_esc(run.metrics['conformal'].get('calibration', ''))}"
                        "; each participant with the interval of their sex. Coverage should be near the level.</p>")
            body.append(_table(coverage, out, f"intervals_{slug}"))
        comparison = tables.comparison_table(run)
        if comparison is not None:
            body.append("<h4>Comparison with baselines and classic criteria (LVH)</h4>")
            body.append("<p>p-values against the row of highest AUROC: DeLong for AUROC, McNemar for sensitivity "
                        "and specificity.</p>")
            body.append(_table(comparison, out, f"comparison_{slug}"))
        regression = tables.regression_comparison_table(run)
        if regression is not None:
            body.append("<h4>Comparison of continuous predictions</h4>")
            body.append(_table(regression, out, f"comparison_regression_{slug}"))
        card = tables.model_card(run)
        body.append("<h4>Model card</h4><dl class=\"card\">"
                    + "".join(f"<dt>{_esc(k)}</dt><dd>{_esc(v)}</dd>" for k, v in card) + "</dl>")

    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_esc(title)}</title><style>{CSS}</style></head><body>"
            f"<h1>{_esc(title)}</h1><p>aiecg {__version__}, written {stamp} from the saved results of "
            f"{len(results)} run(s){' and ' + str(len(explains)) + ' explanation(s)' if explains else ''}; no model "
            f"was run to make this page.</p><nav>{''.join(nav)}</nav>" + "\n".join(body) + "</body></html>\n")
    path = out / "index.html"
    with atomic_write(path, "w") as handle:
        handle.write(page)
    return path
