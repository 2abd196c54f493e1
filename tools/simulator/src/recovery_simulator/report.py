"""One self-contained HTML page: the results table and four inline SVG plots, drawn here (no plotting library)."""

from __future__ import annotations

import html
from collections.abc import Sequence

from recovery_simulator.runner import Comparison

COLOURS = ("#1b6ca8", "#d1495b", "#2e933c", "#edae49", "#6c4f9c")
WIDTH, HEIGHT, LEFT, BOTTOM, TOP, RIGHT = 560, 300, 48, 36, 30, 12


def _frame(title: str, body: list[str], y_max: float, y_label: str, legend: Sequence[str]) -> str:
    plot_h = HEIGHT - TOP - BOTTOM
    parts = [
        f"<figure><figcaption>{html.escape(title)}</figcaption>",
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" role="img" '
        f'aria-label="{html.escape(title)}">',
    ]
    for i in range(5):
        value = y_max * i / 4
        y = TOP + plot_h - plot_h * i / 4
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e3e3e3"/>')
        label = f"{value:.0%}" if y_label == "%" else f"{value:.0f}"
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">{label}</text>')
    parts.extend(body)
    parts.append(f'<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{TOP + plot_h}" stroke="#555"/>')
    parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{TOP + plot_h}" y2="{TOP + plot_h}" stroke="#555"/>')
    for i, name in enumerate(legend):
        x = LEFT + 10 + i * 120
        parts.append(f'<rect x="{x}" y="4" width="10" height="10" fill="{COLOURS[i % len(COLOURS)]}"/>')
        parts.append(f'<text x="{x + 14}" y="13" class="tick">{html.escape(name)}</text>')
    parts.append("</svg></figure>")
    return "".join(parts)


def line_chart(title: str, series: dict[str, list[float]], x_label: str) -> str:
    length = max((len(v) for v in series.values()), default=1)
    y_max = max([0.05, *(max(v, default=0) for v in series.values())])
    y_max = min(1.0, round(y_max * 1.1 + 0.005, 2))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    body = []
    for i, values in enumerate(series.values()):
        points = " ".join(
            f"{LEFT + plot_w * x / max(1, length - 1):.1f},{TOP + plot_h - plot_h * v / y_max:.1f}"
            for x, v in enumerate(values)
        )
        body.append(f'<polyline fill="none" stroke="{COLOURS[i % len(COLOURS)]}" stroke-width="2" points="{points}"/>')
    for x in range(0, length, max(1, length // 10)):
        px = LEFT + plot_w * x / max(1, length - 1)
        body.append(f'<text x="{px:.1f}" y="{TOP + plot_h + 16}" text-anchor="middle" class="tick">{x}</text>')
    body.append(f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 4}" text-anchor="middle" class="tick">{x_label}</text>')
    return _frame(title, body, y_max, "%", list(series))


def bar_chart(title: str, categories: Sequence[str], series: dict[str, list[float]], percent: bool) -> str:
    y_max = max([0.01, *(max(v, default=0) for v in series.values())]) * 1.1
    if percent:
        y_max = min(1.0, y_max)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    group_w = plot_w / max(1, len(categories))
    bar_w = group_w * 0.8 / max(1, len(series))
    body = []
    for c, category in enumerate(categories):
        x0 = LEFT + c * group_w + group_w * 0.1
        for s, values in enumerate(series.values()):
            value = values[c]
            h = plot_h * value / y_max
            body.append(
                f'<rect x="{x0 + s * bar_w:.1f}" y="{TOP + plot_h - h:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                f'fill="{COLOURS[s % len(COLOURS)]}"><title>{html.escape(category)}: {value:.3g}</title></rect>'
            )
        body.append(
            f'<text x="{x0 + group_w * 0.4:.1f}" y="{TOP + plot_h + 16}" text-anchor="middle" class="tick">'
            f"{html.escape(category)}</text>"
        )
    return _frame(title, body, y_max, "%" if percent else "n", list(series))


def render(comparison: Comparison, table_text: str) -> str:
    results = comparison.results
    curves = {r.algorithm: r.cumulative_by_day(comparison.days) for r in results}
    most = max((max(r.attempts_histogram, default=0) for r in results), default=0)
    bins = list(range(most + 1))
    attempts = {r.algorithm: [r.attempts_histogram.get(b, 0) / max(1, r.payments) for b in bins] for r in results}
    groups = sorted({g for r in results for g in r.payments_by_group})
    by_group = {
        r.algorithm: [r.recovered_by_group[g] / max(1, r.payments_by_group[g]) for g in groups] for r in results
    }
    top = max((max(r.recovered_by_attempt, default=0) for r in results), default=0)
    numbers = list(range(1, top + 1))
    by_attempt = {
        r.algorithm: [r.recovered_by_attempt.get(n, 0) / max(1, r.payments) for n in numbers] for r in results
    }
    figures = [
        line_chart("Cumulative recovery over days since the first failure", curves, "days"),
        bar_chart("Attempts per payment (share of payments)", [str(b) for b in bins], attempts, percent=True),
        bar_chart("Recovery rate by first decline", groups, by_group, percent=True),
        bar_chart("Recovered on attempt number (share of payments)", [str(n) for n in numbers], by_attempt, True),
    ]
    title = f"Recovery simulation: model {comparison.model}, seed {comparison.seed}"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }}
pre {{ background: #f6f6f6; padding: 12px; overflow-x: auto; }}
figure {{ display: inline-block; margin: 8px 16px 8px 0; }}
figcaption {{ font-weight: 600; margin-bottom: 4px; }}
.tick {{ font-size: 11px; fill: #444; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{comparison.results[0].payments if results else 0} payments per algorithm over {comparison.days} days
(population: {html.escape(comparison.source)}). The real scheduler planner decided every attempt; the issuer model
answered; violations come from the simulator's independent network-rule checker.</p>
<pre>{html.escape(table_text)}</pre>
{"".join(figures)}
</body></html>
"""
