"""``python -m visionfw compare``: test.py reports and train.py runs side by side."""
import os

import click

from visionfw.cli.common import OneLineCommand, one_line_errors


@click.command("compare", cls=OneLineCommand)
@click.argument("items", nargs=-1, required=True, metavar="REPORT.json|RUN_FOLDER...")
@click.option("--metric", default=None,
              help="The figure to tabulate from reports: psnr, ssim, kernel_psnr, ... "
                   "(default: psnr, or kernel_psnr for a kernel estimator's report).")
@click.option("--markdown", is_flag=True, help="A Markdown table instead of aligned text.")
@one_line_errors
def compare(items, metric, markdown):
    """Tabulate test.py JSON reports (one column each, a row per dataset, scale and variant,
    a mean row per dataset) and train.py run folders (a row each from val.csv)."""
    from visionfw.evaluate.compare import (CompareError, distinct_parts, format_table,
                                           load_report, load_run, report_table, run_table)

    reports, runs = [], []
    for item in items:
        if os.path.isdir(item):
            runs.append(load_run(item))
        elif item.endswith(".json") or os.path.isfile(item):
            reports.append((item, load_report(item)))
        else:
            raise CompareError(f"{item}: no such report or run folder")
    labels = [(r["results"][0].get("model") if r["results"] else None) or path
              for path, r in reports]
    if len(set(labels)) < len(labels):           # the same method twice: name by file
        labels = distinct_parts([os.path.basename(path).removesuffix(".json")
                                 for path, _ in reports])
    parts = []
    if reports:
        header, rows = report_table(list(zip(labels, (r for _, r in reports))), metric)
        if metric and all(all(v is None for v in row[3:]) for row in rows):
            raise CompareError(f"--metric {metric}: no report has it")
        parts.append(format_table(header, rows, markdown))
    if runs:
        parts.append(format_table(*run_table(runs), markdown=markdown))
    click.echo("\n\n".join(parts))
