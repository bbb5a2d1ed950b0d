"""The status page: /status for a browser, rendered on the server from the
very dict /status.json serves (so the two never disagree, and the page
shows nothing the JSON does not: no secret reaches either).

One self-contained HTML document: inline CSS, system fonts, no script, no
external asset (it works offline and inside a cluster), reloaded by a
<meta http-equiv="refresh">. Every value from the status passes
`html.escape`, links included.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from html import escape

from exporter.progress import human_duration

REFRESH_SECONDS = 10
NONE = "&ndash;"  # shown for a value not known (yet)
OUTCOMES = {  # agent_exporter_{spans,log_records}_exported_total{outcome}, as the page names them
    "success": "{} delivered",
    "failure": "{}: failed sends (retried)",
    "rejected": "{} rejected by the backend",
    "dropped": "{} dropped (outbox full)",
}

CSS = """
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 -apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,"Liberation Sans",
"DejaVu Sans",sans-serif;color:#212529;background:#f4f5f7}
header{background:#1b1d21;color:#e9ecef;padding:0 24px;display:flex;align-items:center;gap:24px;height:52px}
header .brand{font-weight:600;font-size:16px;color:#fff}
header .brand small{color:#8e959d;font-weight:400;margin-left:8px}
header nav a{color:#c5cad0;text-decoration:none;margin-right:18px}
header nav a:hover,header nav a.active{color:#fff}
header nav a.active{border-bottom:2px solid #f46800;padding-bottom:14px}
header .when{margin-left:auto;color:#8e959d;font-size:12px}
main{padding:20px 24px 40px;max-width:1500px}
h2{font-size:15px;font-weight:600;margin:26px 0 10px;color:#343a40}
h2 .count{color:#6c757d;font-weight:400}
.panel{background:#fff;border:1px solid #dfe3e8;border-radius:4px;overflow:hidden}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:8px 12px;border-bottom:1px solid #e9ecef;vertical-align:top}
th{background:#f8f9fa;font-weight:600;font-size:12px;color:#495057;white-space:nowrap}
tr:last-child td{border-bottom:0}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.muted{color:#6c757d}
.mono{font-family:SFMono-Regular,Menlo,Consolas,"Liberation Mono","DejaVu Sans Mono",monospace;font-size:12px}
.badge{display:inline-block;padding:2px 8px;border-radius:3px;font-size:11px;font-weight:700;
letter-spacing:.03em;text-transform:uppercase;color:#fff;background:#6c757d}
.up,.succeeded,.success{background:#28a745}
.down,.failed,.timed_out,.failure,.rejected,.dropped{background:#dc3545}
.cancelled,.incomplete,.unknown{background:#e0a800;color:#212529}
.running{background:#007bff}
.error{color:#b02a37;max-width:420px;word-break:break-word}
.progress{position:relative;height:18px;min-width:180px;background:#e9ecef;border-radius:3px;overflow:hidden}
.progress .bar{height:100%;background:#1f78c1}
.progress .label{position:absolute;inset:0;text-align:center;font-size:11px;line-height:18px;color:#212529;
font-weight:600}
.sub{font-size:12px;color:#6c757d;margin-top:3px;white-space:nowrap}
.t{white-space:nowrap}
.ok{color:#1e7e34}
details summary{cursor:pointer;color:#1f78c1}
details pre{margin:6px 0 0;max-width:460px;max-height:240px;overflow:auto;background:#f8f9fa;
border:1px solid #e9ecef;padding:6px;font-size:11px}
.cards{display:flex;gap:12px;flex-wrap:wrap}
.card{background:#fff;border:1px solid #dfe3e8;border-radius:4px;padding:12px 16px;min-width:170px}
.card .v{font-size:22px;font-weight:600;font-variant-numeric:tabular-nums}
.card .k{font-size:12px;color:#6c757d}
a{color:#1f78c1}
"""


def render_status_page(status: Mapping[str, object], refresh: int = REFRESH_SECONDS) -> str:
    """The page for `status` (what Exporter.status() returns)."""
    version = escape(_text(status.get("version")))
    generated = _parse(status.get("generated_at"))
    sources = _map(status.get("sources"))
    runs = _list(status.get("recent_runs"))
    return "".join(
        [
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
            f'<meta http-equiv="refresh" content="{int(refresh)}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>Status · agent-activity-exporter {version}</title><style>{CSS}</style></head><body>",
            '<header><span class="brand">agent-activity-exporter',
            f"<small>{version}</small></span>",
            '<nav><a class="active" href="/status">Status</a><a href="/metrics">Metrics</a>',
            '<a href="/status.json">JSON</a><a href="/healthz">Health</a></nav>',
            f'<span class="when">updated {escape(_time(generated))} · refreshes every {int(refresh)}s</span>',
            "</header><main>",
            f'<h2>Sources <span class="count">({len(sources)})</span></h2>',
            _state_error(status.get("state")),
            _sources(sources, generated),
            _replicas(status.get("replicas")),
            "<h2>Delivery</h2>",
            _delivery(status),
            f'<h2>Recent runs <span class="count">(last {len(runs)} finished)</span></h2>',
            _runs(runs, generated),
            "</main></body></html>\n",
        ]
    )


def _sources(sources: Mapping[str, object], now: datetime | None) -> str:
    windows = {_num(_map(_map(s).get("recent_requests")).get("window_seconds")) for s in sources.values()}
    window = next(iter(windows), None)
    per = f" ({escape(_window(window))})" if len(windows) == 1 and window else ""
    head = (
        "<tr><th>Source</th><th>State</th><th>Last successful poll</th><th>Data lag</th>"
        f'<th class="num">Open runs</th><th class="num">Requests{per}</th><th class="num">429s{per}</th>'
        "<th>Backfill</th><th>Checkpoint</th></tr>"
    )
    rows = [_source_row(name, _map(s), now) for name, s in sources.items()]
    return f'<div class="panel"><table id="sources">{head}{"".join(rows)}</table></div>'


def _state_error(error: object) -> str:
    """The state database does not answer (replicas on PostgreSQL): the
    sources' rows need it, so only this is shown of them."""
    return f'<div class="panel error" id="state">{escape(_text(error))}</div>' if error else ""


def _replicas(replicas: object) -> str:
    """With state.url: this replica, and which replica holds which lease."""
    if not isinstance(replicas, Mapping):
        return ""
    me, database = _text(replicas.get("replica")), _text(replicas.get("database"))
    title = f'<h2>Leases <span class="count">(this replica: {escape(me)}; database: {escape(database)})</span></h2>'
    leases = replicas.get("leases")
    if not isinstance(leases, Mapping):  # the database does not answer: only what this replica holds is known
        held = ", ".join(escape(str(name)) for name in _map(replicas.get("held"))) or NONE
        return f'{title}<div class="panel"><table id="leases"><tr><td>held here: {held}</td></tr></table></div>'
    head = '<tr><th>Lease</th><th>Holder</th><th class="num">Epoch</th><th class="num">Expires in</th></tr>'
    rows = []
    for name, lease in leases.items():
        row = _map(lease)
        holder = _text(row.get("holder")) or "none"
        mine = ' <span class="badge up">this replica</span>' if holder == me else ""
        expires = _num(row.get("expires_in"))
        rows.append(
            f"<tr><td><strong>{escape(str(name))}</strong></td><td>{escape(holder)}{mine}</td>"
            f'<td class="num">{_int(row.get("epoch"))}</td>'
            f'<td class="num">{NONE if expires is None else escape(_short(max(0.0, expires)))}</td></tr>'
        )
    return f'{title}<div class="panel"><table id="leases">{head}{"".join(rows)}</table></div>'


def _source_row(name: str, s: Mapping[str, object], now: datetime | None) -> str:
    up = s.get("up") is True
    error = s.get("last_error")
    if s.get("lease_held") is False:  # replicas: another one reads it (see Leases)
        state = '<span class="badge">elsewhere</span><div class="sub">another replica holds its lease</div>'
    elif not s.get("polls"):  # its first poll runs (a backfill may take long): neither up nor down yet
        state = '<span class="badge">pending</span><div class="sub">first poll running</div>'
    else:
        state = f'<span class="badge {"up" if up else "down"}">{"up" if up else "down"}</span>'
    if error:
        state += f'<div class="error">{escape(_text(error))}</div>'
    recent = _map(s.get("recent_requests"))
    lag = _num(s.get("data_lag_seconds"))
    return (
        f'<tr data-source="{escape(name)}"><td><strong>{escape(name)}</strong>'
        f'<div class="sub">{escape(_text(s.get("platform")))}</div></td>'
        f"<td>{state}</td>"
        f"<td>{_when(s.get('last_success_at'), now)}</td>"
        f'<td class="num">{NONE if lag is None else escape(human_duration(lag))}</td>'
        f'<td class="num">{_int(s.get("open_runs"))}</td>'
        f'<td class="num">{_int(recent.get("requests"))}</td>'
        f'<td class="num">{_int(recent.get("rate_limited"))}</td>'
        f"<td>{_backfill(s)}</td>"
        f"<td>{_checkpoint(s.get('checkpoint'))}</td></tr>"
    )


def _backfill(s: Mapping[str, object]) -> str:
    b = s.get("backfill")
    if not isinstance(b, Mapping):
        # Not behind by more than a backfill's worth: a live poll's few seconds are not shown.
        return '<span class="ok">caught up</span>' if s.get("up") is True else f'<span class="muted">{NONE}</span>'
    fraction = min(1.0, max(0.0, _num(b.get("fraction")) or 0.0))
    pct = f"{fraction * 100:.0f}%"
    eta = _num(b.get("eta_seconds"))
    rate = _num(b.get("records_per_second"))
    details = [
        f"{escape(human_duration(_num(b.get('remaining_seconds')) or 0.0))} of history to read",
        "time left unknown" if eta is None else f"about {escape(human_duration(eta))} left",
    ]
    if rate is not None:
        details.append(f"{rate:,.0f} records/s")
    return (
        f'<div class="progress" role="progressbar" aria-valuenow="{fraction * 100:.0f}" aria-valuemin="0"'
        f' aria-valuemax="100"><div class="bar" style="width:{fraction * 100:.1f}%"></div>'
        f'<div class="label">{pct}</div></div><div class="sub">{" · ".join(details)}</div>'
    )


def _checkpoint(cp: object) -> str:
    if not cp:
        return '<span class="muted">none yet</span>'
    text = json.dumps(cp, indent=1, sort_keys=True, default=str)
    return f'<details><summary>show</summary><pre class="mono">{escape(text)}</pre></details>'


def _delivery(status: Mapping[str, object]) -> str:
    """Traces (and log records, when they are on): the outbox they share,
    then what became of them."""
    outbox, bound = _num(status.get("outbox_spans")) or 0.0, _num(status.get("outbox_max_spans"))
    fill = "" if not bound else f'<div class="sub">of {bound:,.0f} at most ({outbox / bound * 100:.1f}% full)</div>'
    logs = _text(status.get("logs")) or "off"
    cards = [
        ("Traces", escape(_text(status.get("traces"))), ""),
        *([("Logs", escape(logs), "")] if logs != "off" else []),
        ("Waiting in the outbox", f"{outbox:,.0f}", fill),
        *_outcome_cards("Spans", _map(status.get("spans_exported"))),
        *_outcome_cards("Log records", _map(status.get("log_records_exported"))),
    ]
    body = "".join(f'<div class="card"><div class="v">{v}</div><div class="k">{k}</div>{x}</div>' for k, v, x in cards)
    return f'<div class="cards" id="delivery">{body}</div>'


def _outcome_cards(what: str, exported: Mapping[str, object]) -> list[tuple[str, str, str]]:
    return [(escape(OUTCOMES.get(k, "{} " + k).format(what)), f"{_num(v) or 0:,.0f}", "") for k, v in exported.items()]


def _runs(runs: list[object], now: datetime | None) -> str:
    if not runs:
        return (
            '<div class="panel"><table id="runs"><tr><td class="muted">No run has finished yet.</td></tr></table></div>'
        )
    head = (
        '<tr><th>Ended</th><th>Source</th><th>Agent</th><th>Status</th><th class="num">Duration</th><th>Trace</th></tr>'
    )
    rows = []
    for item in runs:
        r = _map(item)
        status, duration = _text(r.get("status")), _num(r.get("duration_seconds"))
        trace = _text(r.get("trace_id"))
        rows.append(
            f"<tr><td>{_when(r.get('ended_at'), now)}</td><td>{escape(_text(r.get('source')))}</td>"
            f"<td>{escape(_text(r.get('agent')))}</td>"
            f'<td><span class="badge {escape(status)}">{escape(status.replace("_", " "))}</span></td>'
            f'<td class="num">{NONE if duration is None else escape(_short(duration))}</td>'
            f'<td><a class="mono trace" href="{escape(_text(r.get("trace_url")))}">{escape(trace)}</a></td></tr>'
        )
    return f'<div class="panel"><table id="runs">{head}{"".join(rows)}</table></div>'


def _when(value: object, now: datetime | None) -> str:
    at = _parse(value)
    if at is None:
        return '<span class="muted">never</span>'
    ago = "" if now is None else f'<div class="sub">{escape(human_duration((now - at).total_seconds()))} ago</div>'
    return f'<span class="t">{escape(_time(at))}</span>{ago}'


def _window(seconds: float) -> str:
    """A window length as people say it: 5m, 90s."""
    return f"{seconds / 60:g}m" if seconds % 60 == 0 else f"{seconds:g}s"


def _short(seconds: float) -> str:
    return f"{seconds:.1f}s" if seconds < 60 else human_duration(seconds)


def _time(at: datetime | None) -> str:
    return NONE if at is None else at.strftime("%Y-%m-%d %H:%M:%S UTC")


def _parse(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _num(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _int(value: object) -> str:
    number = _num(value)
    return NONE if number is None else f"{number:,.0f}"


def _map(value: object) -> Mapping[str, object]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[object]:
    return value if isinstance(value, list) else []
