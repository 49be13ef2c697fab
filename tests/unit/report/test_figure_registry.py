"""A report figure is one file: a module that registers a function appears in the page, in its order."""

import importlib.util
import sys
import textwrap

import pandas as pd

from aiecg.report import figures
from aiecg.report.html import render_report
from aiecg.report.runs import RunData

FIGURE = textwrap.dedent('''
    """A figure added in one file: the number of results rows per run."""
    from aiecg.report import style
    from aiecg.report.figures import Plot, register_figure


    @register_figure(order=15)
    def rows_per_run(runs):
        plot = Plot("rows_per_run", "Rows per run", "Number of rows in results.csv.")
        fig = style.new_figure(3, 2)
        ax = fig.add_subplot()
        ax.bar([run.label for run in runs], [len(run.results) for run in runs])
        plot.figure = fig
        return plot
''')


def test_a_figure_in_one_file_is_drawn_in_the_page(tmp_path):
    path = tmp_path / "my_figure.py"
    path.write_text(FIGURE)
    spec = importlib.util.spec_from_file_location("my_figure", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["my_figure"] = module
    spec.loader.exec_module(module)
    try:
        order = figures.registered_figures()
        assert module.rows_per_run in order
        position = order.index(module.rows_per_run)  # order 15: between the figures of order 10 and 20
        assert order.index(figures.predicted_vs_true) < position < order.index(figures.bland_altman)
        run = RunData(path=tmp_path, label="a run", kind="evaluate",
                      results=pd.DataFrame({"eid": ["1", "2", "3"], "is_m": [0, 1, 0]}))
        page = render_report([run], tmp_path / "report").read_text()
        assert 'id="rows_per_run"' in page and "Rows per run" in page
        assert (tmp_path / "report" / "figures" / "rows_per_run.png").is_file()
        assert page.index("Rows per run") < page.index("Bland-Altman agreement")
    finally:
        figures.unregister_figure(module.rows_per_run)
        del sys.modules["my_figure"]
    assert module.rows_per_run not in figures.registered_figures()
