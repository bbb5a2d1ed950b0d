"""Renders each Grafana dashboard of dashboards/ as a static HTML page, from
the dashboard JSON's own panels and PromQL, evaluated against a real
Prometheus; headless Chromium then turns each page into the PNG next to this
file. It is a stand-in for Grafana (which cannot be installed where these
screenshots were made): same layout grid, same queries, same legends,
units, colours and exemplars, drawn with plain SVG.

    python docs/screenshots/render.py --prometheus http://127.0.0.1:9090 --minutes 30
    # needs `chromium` (Debian package) on PATH for the PNGs (--html-only skips it),
    # and uses `pngquant` (Debian package) when present to keep them small

Standard library only. Template variables are at "All" (one agent, --agent,
on the per-agent dashboard); $__rate_interval is 4x --scrape-interval (as
Grafana computes it); dense exemplars are thinned to an even sample in time.
"""

from __future__ import annotations

import argparse
import html
import json
import math
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DASHBOARDS = HERE.parents[1] / "dashboards"
WIDTH = 1600
ROW = 30  # pixels per grid unit of height, as Grafana
GAP = 6
MAX_EXEMPLARS = 160
PALETTE = ["#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9", "#705da0", "#37872d",
           "#fade2a", "#447ebc", "#c4162a", "#1f60c4", "#8f3bb8", "#e0b400", "#56a64b"]
NAMED = {"green": "#73bf69", "red": "#f2495c", "orange": "#ff9830", "blue": "#5794f2", "purple": "#b877d9",
         "gray": "#8e8e8e", "yellow": "#fade2a", "dark-red": "#c4162a", "text": "#ccccdc"}

Json = dict[str, Any]


class Prom:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def get(self, path: str, **params: object) -> Any:
        query = urllib.parse.urlencode({k: str(v) for k, v in params.items()})
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=60) as response:
            body = json.load(response)
        if body["status"] != "success":
            raise RuntimeError(f"{path} {params}: {body.get('error')}")
        return body["data"]


# -- formatting ----------------------------------------------------------------


def fmt(value: float | None, unit: str = "short", decimals: int | None = None) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    if unit == "percentunit":
        return f"{value * 100:.{1 if decimals is None else decimals}f}%"
    if unit == "currencyUSD":
        return f"${value:,.{2 if decimals is None else decimals}f}"
    if unit == "s":
        v = abs(value)
        if v < 1:
            return f"{value * 1000:.0f} ms"
        if v < 60:
            return f"{value:.{1 if decimals is None else decimals}f} s"
        if v < 3600:
            return f"{value / 60:.1f} min"
        if v < 86400:
            return f"{value / 3600:.1f} hour"
        return f"{value / 86400:.1f} day"
    for div, suffix in ((1e9, " B"), (1e6, " M"), (1e3, " K")):
        if abs(value) >= div:
            return f"{value / div:.{1 if decimals is None else decimals}f}{suffix}"
    if decimals is not None:
        return f"{value:.{decimals}f}"
    return f"{value:.2f}".rstrip("0").rstrip(".") if value != int(value) else f"{int(value)}"


def legend(template: str, labels: dict[str, str]) -> str:
    if not template or template == "__auto":
        inner = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
        return "{" + inner + "}"
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template)


def color(name: str | None, index: int) -> str:
    if name:
        return NAMED.get(name, name)
    return PALETTE[index % len(PALETTE)]


# -- rendering -----------------------------------------------------------------------


class Renderer:
    def __init__(self, prom: Prom, minutes: int, scrape: int, agent: str) -> None:
        self.prom = prom
        self.one_agent = agent  # for dashboards whose agent variable takes one value
        self.agent: str | None = None
        self.end = time.time()
        self.start = self.end - minutes * 60
        self.range = f"{minutes}m"
        self.rate_interval = f"{4 * scrape}s"
        self.step = max(scrape, minutes * 60 // 240)

    def promql(self, expr: str) -> str:
        out = expr.replace("$__rate_interval", self.rate_interval).replace("$__range", self.range)
        if self.agent is not None:
            # A regex inside a PromQL string: metacharacters take a doubled backslash.
            literal = re.sub(r"([.*+?^${}()|\[\]\\])", r"\\\\\1", self.agent)
            out = re.sub(r"\$\{?agent\}?", lambda _: literal, out)
        return re.sub(r"\$\{?(source|platform|agent|instance|job)\}?", ".*", out)

    def instant(self, expr: str) -> list[Json]:
        data = self.prom.get("query", query=self.promql(expr), time=self.end)
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])

    def series(self, expr: str) -> list[Json]:
        return list(self.prom.get("query_range", query=self.promql(expr), start=self.start, end=self.end,
                                  step=self.step)["result"])

    def exemplars(self, expr: str) -> list[tuple[float, float]]:
        data = self.prom.get("query_exemplars", query=self.promql(expr), start=self.start, end=self.end)
        return [(float(e["timestamp"]), float(e["value"])) for s in data for e in s["exemplars"]]

    # -- pages

    def page(self, board: Json) -> tuple[str, int]:
        single = [v for v in board["templating"]["list"] if v["name"] == "agent" and not v.get("multi")]
        self.agent = self.one_agent if single else None
        bottom = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in board["panels"])
        height = 96 + bottom * ROW + 40
        parts = [self.panel(p) for p in board["panels"]]
        variables = "".join(
            f'<span class="var"><b>{html.escape(v.get("label") or v["name"])}</b> '
            f'{html.escape(self.chip(v))}</span>'
            for v in board["templating"]["list"])
        since = time.strftime("%H:%M", time.gmtime(self.start))
        until = time.strftime("%H:%M UTC", time.gmtime(self.end))
        body = (f'<div class="top"><div class="title">{html.escape(board["title"])}</div>'
                f'<div class="range">{since} – {until}</div></div><div class="vars">{variables}</div>'
                f'<div class="grid" style="height:{bottom * ROW}px">{"".join(parts)}</div>'
                '<div class="foot">Rendered by docs/screenshots/render.py from this dashboard\'s JSON and its own '
                'PromQL against a real Prometheus scraping agent-activity-exporter and the simulator; a stand-in '
                'for Grafana, not Grafana.</div>')
        return f"<!doctype html><html><head><meta charset='utf-8'><style>{CSS}</style></head><body>{body}</body></html>", height

    def chip(self, var: Json) -> str:
        if var["type"] == "datasource":
            return "Prometheus"
        if var["type"] == "textbox":
            return str(var["current"]["text"])
        if var["name"] == "agent" and self.agent is not None:
            return self.agent
        return "All"

    def panel(self, p: Json) -> str:
        g = p["gridPos"]
        unit = WIDTH / 24
        style = (f"left:{g['x'] * unit + GAP / 2:.0f}px;top:{g['y'] * ROW + GAP / 2}px;"
                 f"width:{g['w'] * unit - GAP:.0f}px;height:{g['h'] * ROW - GAP}px")
        if p["type"] == "row":
            return f'<div class="row" style="{style}">{html.escape(p["title"])}</div>'
        w, h = g["w"] * unit - GAP - 16, g["h"] * ROW - GAP - 34
        try:
            inner = getattr(self, p["type"].replace("-", "_"))(p, w, h)
        except RuntimeError as err:
            inner = f'<div class="err">{html.escape(str(err))}</div>'
        return (f'<div class="panel" style="{style}"><div class="ptitle">{html.escape(p["title"])}</div>'
                f'<div class="pbody">{inner}</div></div>')

    def stat(self, p: Json, w: float, h: float) -> str:
        defaults = p["fieldConfig"]["defaults"]
        target = p["targets"][0]
        result = self.instant(target["expr"])
        if p["options"].get("textMode") == "name":
            text = ", ".join(legend(target["legendFormat"], r["metric"]) for r in result) or "–"
            return f'<div class="stat" style="color:#ccccdc;font-size:{min(h * 0.5, 34):.0f}px">{html.escape(text)}</div>'
        value = float(result[0]["value"][1]) if result else None
        steps = defaults["thresholds"]["steps"]
        col = "text"
        for step in steps:
            if step["value"] is None or (value is not None and value >= step["value"]):
                col = step["color"]
        text = fmt(value, defaults.get("unit", "short"), defaults.get("decimals"))
        return f'<div class="stat" style="color:{color(col, 0)};font-size:{min(h * 0.62, 44):.0f}px">{html.escape(text)}</div>'

    def timeseries(self, p: Json, w: float, h: float) -> str:
        defaults = p["fieldConfig"]["defaults"]
        fixed = {o["matcher"]["options"]: o["properties"][0]["value"]["fixedColor"]
                 for o in p["fieldConfig"]["overrides"]}
        stacked = defaults["custom"]["stacking"]["mode"] == "normal"
        lines: list[tuple[str, list[tuple[float, float]]]] = []
        marks: list[tuple[float, float]] = []
        for target in p["targets"]:
            for s in self.series(target["expr"]):
                points = [(float(t), float(v)) for t, v in s["values"] if math.isfinite(float(v))]
                if points:
                    lines.append((legend(target["legendFormat"], s["metric"]), points))
            if target.get("exemplar"):
                marks += self.exemplars(target["expr"])
        lines.sort(key=lambda item: item[0])
        legend_h = 18 * math.ceil(len(lines) / max(1, int(w // 190))) if lines else 0
        legend_h = min(legend_h, 54)
        chart_h = h - legend_h - 4
        floors: list[list[tuple[float, float]]] = [[(t, 0.0) for t, _ in points] for _, points in lines]
        if stacked:
            totals: dict[float, float] = {}
            stacked_lines = []
            for i, (name, points) in enumerate(lines):
                floors[i] = [(t, totals.get(t, 0.0)) for t, _ in points]
                new = []
                for t, v in points:
                    totals[t] = totals.get(t, 0.0) + v
                    new.append((t, totals[t]))
                stacked_lines.append((name, new))
            lines = stacked_lines
        seen = len(marks)
        if len(marks) > MAX_EXEMPLARS:  # Grafana thins dense exemplars too; keep an even sample in time
            marks = sorted(marks)[:: math.ceil(len(marks) / MAX_EXEMPLARS)]
        values = [v for _, pts in lines for _, v in pts] + [v for _, v in marks]
        top = max(values) if values else 1.0
        top = top * 1.1 if top > 0 else 1.0
        left, bottom = 58, 18
        pw, ph = w - left - 6, chart_h - bottom - 4

        def x(t: float) -> float:
            return left + (t - self.start) / (self.end - self.start) * pw

        def y(v: float) -> float:
            return 4 + ph - v / top * ph

        svg = [f'<svg width="{w:.0f}" height="{chart_h:.0f}">']
        for i in range(5):
            v = top * i / 4
            svg.append(f'<line x1="{left}" x2="{left + pw:.0f}" y1="{y(v):.1f}" y2="{y(v):.1f}" class="gridline"/>'
                       f'<text x="{left - 6}" y="{y(v) + 4:.1f}" class="axis" text-anchor="end">'
                       f'{html.escape(fmt(v, defaults.get("unit", "short")))}</text>')
        for i in range(7):
            t = self.start + (self.end - self.start) * i / 6
            svg.append(f'<text x="{x(t):.0f}" y="{chart_h - 4:.0f}" class="axis" text-anchor="middle">'
                       f'{time.strftime("%H:%M", time.gmtime(t))}</text>')
        for i, (name, points) in enumerate(lines):
            c = color(fixed.get(name), i)
            path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in points)
            if stacked:  # the band between this series and the ones below it
                base = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in reversed(floors[i]))
                svg.append(f'<polygon points="{path} {base}" fill="{c}" fill-opacity="0.25"/>')
            svg.append(f'<polyline points="{path}" fill="none" stroke="{c}" stroke-width="1.5"/>')
        for t, v in marks:
            cx, cy = x(t), y(v)
            svg.append(f'<rect x="{cx - 3:.1f}" y="{cy - 3:.1f}" width="6" height="6" transform="rotate(45 {cx:.1f} {cy:.1f})" '
                       'fill="#e02f97" fill-opacity="0.85"/>')
        if not lines:
            svg.append(f'<text x="{w / 2:.0f}" y="{chart_h / 2:.0f}" class="nodata" text-anchor="middle">No data</text>')
        svg.append("</svg>")
        items = "".join(f'<span class="li"><i style="background:{color(fixed.get(n), i)}"></i>{html.escape(n)}</span>'
                        for i, (n, _) in enumerate(lines))
        if marks:
            shown = f"{len(marks)} of {seen}" if len(marks) < seen else f"{seen}"
            items += (f'<span class="li"><i style="background:#e02f97"></i>exemplars: runs with their trace_id '
                      f'({shown} shown)</span>')
        return "".join(svg) + f'<div class="legend" style="max-height:{legend_h}px">{items}</div>'

    def table(self, p: Json, w: float, h: float) -> str:
        names = {o["matcher"]["options"]: {prop["id"]: prop["value"] for prop in o["properties"]}
                 for o in p["fieldConfig"]["overrides"]}
        multi = len(p["targets"]) > 1
        rows: dict[tuple[tuple[str, str], ...], dict[str, float]] = {}
        labels: list[str] = []
        for target in p["targets"]:
            column = f"Value #{target['refId']}" if multi else "Value"
            for r in self.instant(target["expr"]):
                key = tuple(sorted(r["metric"].items()))
                for k, _ in key:
                    if k not in labels:
                        labels.append(k)
                rows.setdefault(key, {})[column] = float(r["value"][1])
        columns = [f"Value #{t['refId']}" if multi else "Value" for t in p["targets"]]
        sort_by = (p["options"].get("sortBy") or [{}])[0].get("displayName")
        sort_col = next((c for c in columns if names.get(c, {}).get("displayName") == sort_by), None)
        ordered = sorted(rows.items(), key=lambda kv: -(kv[1].get(sort_col, 0) if sort_col else 0)
                         if sort_col and math.isfinite(kv[1].get(sort_col, 0)) else 0)
        head = "".join(f"<th>{html.escape(label)}</th>" for label in labels)
        head += "".join(f"<th>{html.escape(names.get(c, {}).get('displayName', c))}</th>" for c in columns)
        body = []
        max_rows = int((h - 24) // 22)
        for key, vals in ordered[:max_rows]:
            d = dict(key)
            cells = "".join(f'<td class="{"link" if label in names and "links" in names[label] else ""}">'
                            f'{html.escape(d.get(label, ""))}</td>' for label in labels)
            for c in columns:
                props = names.get(c, {})
                v = vals.get(c)
                cell_color = ""
                if "thresholds" in props and v is not None and math.isfinite(v):
                    for step in props["thresholds"]["steps"]:
                        if step["value"] is None or v >= step["value"]:
                            cell_color = color(step["color"], 0)
                cells += (f'<td class="num" style="color:{cell_color}">'
                          f'{html.escape(fmt(v, props.get("unit", "short"), props.get("decimals")))}</td>')
            body.append(f"<tr>{cells}</tr>")
        return f'<table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'

    def heatmap(self, p: Json, w: float, h: float) -> str:
        series = self.series(p["targets"][0]["expr"])
        bounds = sorted({s["metric"]["le"] for s in series}, key=lambda le: math.inf if le == "+Inf" else float(le))
        cumulative: dict[str, dict[float, float]] = {s["metric"]["le"]: {float(t): float(v) for t, v in s["values"]}
                                                     for s in series}
        times = sorted({t for per in cumulative.values() for t in per})
        left, bottom = 58, 18
        pw, ph = w - left - 6, h - bottom - 4
        svg = [f'<svg width="{w:.0f}" height="{h:.0f}">']
        cells = []
        for ti, t in enumerate(times):
            previous = 0.0
            for bi, le in enumerate(bounds):
                count = cumulative[le].get(t, 0.0)
                cells.append((ti, bi, max(0.0, count - previous)))
                previous = count
        peak = max((c for *_, c in cells), default=0) or 1
        cw, chh = pw / max(1, len(times)), ph / max(1, len(bounds))
        for ti, bi, c in cells:
            if c <= 0:
                continue
            alpha = 0.15 + 0.85 * (c / peak) ** 0.5
            svg.append(f'<rect x="{left + ti * cw:.1f}" y="{4 + ph - (bi + 1) * chh:.1f}" width="{cw + 0.5:.1f}" '
                       f'height="{chh - 1:.1f}" fill="#ff780a" fill-opacity="{alpha:.2f}"/>')
        for bi, le in enumerate(bounds):
            if bi % 2 == 0:
                label = "+Inf" if le == "+Inf" else fmt(float(le), "s")
                svg.append(f'<text x="{left - 6}" y="{4 + ph - bi * chh - chh / 2 + 4:.1f}" class="axis" '
                           f'text-anchor="end">≤ {html.escape(label)}</text>')
        for i in range(7):
            t = self.start + (self.end - self.start) * i / 6
            svg.append(f'<text x="{left + (t - self.start) / (self.end - self.start) * pw:.0f}" y="{h - 4:.0f}" '
                       f'class="axis" text-anchor="middle">{time.strftime("%H:%M", time.gmtime(t))}</text>')
        svg.append("</svg>")
        return "".join(svg)

    def state_timeline(self, p: Json, w: float, h: float) -> str:
        target = p["targets"][0]
        series = sorted(self.series(target["expr"]), key=lambda s: legend(target["legendFormat"], s["metric"]))
        left = 150
        pw = w - left - 6
        lane = min(28, (h - 20) / max(1, len(series)))
        svg = [f'<svg width="{w:.0f}" height="{h:.0f}">']
        for i, s in enumerate(series):
            y0 = i * lane
            svg.append(f'<text x="{left - 8}" y="{y0 + lane / 2 + 4:.1f}" class="axis" text-anchor="end">'
                       f'{html.escape(legend(target["legendFormat"], s["metric"]))}</text>')
            values = [(float(t), float(v)) for t, v in s["values"]]
            for j, (t, v) in enumerate(values):
                t2 = values[j + 1][0] if j + 1 < len(values) else self.end
                x1 = left + (t - self.start) / (self.end - self.start) * pw
                x2 = left + (t2 - self.start) / (self.end - self.start) * pw
                svg.append(f'<rect x="{x1:.1f}" y="{y0 + 2:.1f}" width="{max(0.5, x2 - x1):.1f}" height="{lane - 4:.1f}" '
                           f'fill="{NAMED["green"] if v >= 1 else NAMED["red"]}"/>')
        svg.append("</svg>")
        return "".join(svg)


CSS = """
body{margin:0;background:#111217;color:#ccccdc;font:13px Inter,Helvetica,Arial,sans-serif;width:WIDTHpx}
.top{display:flex;justify-content:space-between;align-items:center;padding:14px 16px 4px}
.title{font-size:20px;font-weight:500;color:#d8d9da}.range{color:#8e8e8e}
.vars{padding:4px 16px 10px}.var{display:inline-block;margin-right:8px;background:#22252b;border:1px solid #2f3238;
padding:3px 8px;border-radius:2px;color:#ccccdc}.var b{color:#8ab8ff;font-weight:500;margin-right:4px}
.grid{position:relative}
.panel{position:absolute;background:#181b1f;border:1px solid #24272e;border-radius:2px;overflow:hidden}
.ptitle{height:26px;line-height:26px;padding:0 8px;font-weight:500;color:#d8d9da;white-space:nowrap;overflow:hidden}
.pbody{padding:0 8px 8px}.row{position:absolute;font-size:15px;font-weight:500;color:#d8d9da;padding-top:6px}
.stat{font-weight:500;text-align:center;line-height:1.6}
.gridline{stroke:#2a2d33;stroke-width:1}.axis{fill:#9fa0a8;font-size:10.5px}.nodata{fill:#6e6e6e;font-size:13px}
.legend{overflow:hidden;font-size:11.5px;line-height:18px}.li{display:inline-block;margin-right:14px;white-space:nowrap}
.li i{display:inline-block;width:12px;height:3px;margin:0 5px 3px 0;vertical-align:middle}
table{border-collapse:collapse;width:100%;font-size:12px}th{text-align:left;color:#8ab8ff;font-weight:500;
border-bottom:1px solid #2f3238;padding:3px 6px;white-space:nowrap}td{padding:3px 6px;border-bottom:1px solid #22252b;
white-space:nowrap;overflow:hidden;max-width:260px;text-overflow:ellipsis}td.num{text-align:right}
td.link{color:#6e9fff;text-decoration:underline}.err{color:#f2495c}
.foot{color:#6e6e6e;font-size:11px;padding:8px 16px}
""".replace("WIDTH", str(WIDTH))


def screenshot(page: Path, png: Path, height: int) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise SystemExit("chromium not found (apt-get install chromium), or use --html-only")
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--force-device-scale-factor=1", f"--window-size={WIDTH},{height}",
                    f"--screenshot={png}", page.as_uri()], check=True, capture_output=True, timeout=120)
    if shutil.which("pngquant"):  # Debian `pngquant`: a 256-colour PNG, a third of the size
        subprocess.run(["pngquant", "--force", "--quality=60-90", "--speed=1", "--output", str(png), str(png)],
                       check=True, capture_output=True, timeout=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prometheus", default="http://127.0.0.1:9090")
    parser.add_argument("--minutes", type=int, default=30, help="time range shown")
    parser.add_argument("--scrape-interval", type=int, default=15, help="seconds, for $__rate_interval")
    parser.add_argument("--agent", default="support-triage", help="the agent of the per-agent dashboard")
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("--html-only", action="store_true")
    args = parser.parse_args()
    renderer = Renderer(Prom(args.prometheus), args.minutes, args.scrape_interval, args.agent)
    args.out.mkdir(parents=True, exist_ok=True)
    for path in sorted(DASHBOARDS.glob("*.json")):
        board = json.loads(path.read_text())
        text, height = renderer.page(board)
        page = args.out / f"{path.stem}.html"
        page.write_text(text)
        if not args.html_only:
            png = args.out / f"{path.stem}.png"
            screenshot(page, png, height)
            page.unlink()
            print(f"{png} ({png.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
