"""``--html FILE``: one self-contained page for a fleet run (no external assets, works offline).

A summary bar (ok / changed / failed / other), one row per host (system, engine, status, time,
each step's status and time), failures expanded with the error and the fix, doctor findings with
their evidence, verify's failed checks; sortable by any column and filterable by status and text,
with a few lines of inline JavaScript. Built from the same dicts as ``--json`` (masked)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

from hostsetup.host.versions import engine_version
from hostsetup.run.report import write_private
from hostsetup.secrets import mask_data

GOOD = {"ok", "passed", "healthy"}
CHANGED = {"changed", "fixed", "planned", "reverted"}
BAD = {"failed", "unhealthy"}


def kind_of(status: str) -> str:
    """The four groups the summary bar and the filters use."""
    return "ok" if status in GOOD else "changed" if status in CHANGED else "failed" if status in BAD else "other"


def _steps(host: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Steps (install, configure, login), checks (verify) or fix steps (doctor), as name/status/seconds/text."""
    if host.get("checks") is not None:
        return [{"name": c["name"], "status": c["status"], "seconds": 0, "text": c.get("message", "")}
                for c in host["checks"]]
    fixes = (host.get("fixes") or {}).get("steps") if isinstance(host.get("fixes"), dict) else None
    steps = fixes if fixes is not None else host.get("steps") or []
    return [{"name": s.get("name", ""), "status": s.get("status", ""), "seconds": s.get("seconds", 0),
             "text": s.get("error") or s.get("summary") or s.get("note") or ""} for s in steps]


def _details(host: Mapping[str, Any]) -> list[str]:
    """The expanded part of a row: the error and the fix, failed steps, findings with evidence, warnings."""
    parts = []
    if host.get("error"):
        parts.append(f'<p class="error">{escape(str(host["error"]))}</p>')
    for step in _steps(host):
        if step["status"] in BAD and step["text"] and step["text"] != host.get("error"):
            parts.append(f'<p class="error"><b>{escape(step["name"])}</b>: {escape(str(step["text"]))}</p>')
    for finding in host.get("findings") or []:
        evidence = "".join(f"<li><code>{escape(str(e))}</code></li>" for e in finding.get("evidence") or [])
        fix = finding.get("command") or finding.get("fix") or ""
        parts.append(f'<div class="finding"><b>{escape(str(finding.get("code", "")))}</b> '
                     f'{escape(str(finding.get("summary", "")))}'
                     + (f"<ul>{evidence}</ul>" if evidence else "")
                     + (f'<p class="fix">fix: <code>{escape(str(fix))}</code></p>' if fix else "") + "</div>")
    for manual in ((host.get("fixes") or {}).get("manual") or []) if isinstance(host.get("fixes"), dict) else []:
        parts.append(f'<p class="fix">{escape(str(manual.get("code", "")))}: '
                     f'<code>{escape(str(manual.get("command") or manual.get("fix") or ""))}</code></p>')
    for warning in host.get("warnings") or []:
        parts.append(f'<p class="warning">warning: {escape(str(warning))}</p>')
    return parts


def _chip(step: Mapping[str, Any]) -> str:
    took = f" {float(step['seconds']):.1f}s" if step["seconds"] else ""
    return (f'<span class="chip {kind_of(step["status"])}" title="{escape(str(step["text"]))}">'
            f'{escape(step["name"])} <small>{escape(step["status"])}{took}</small></span>')


def _row(index: int, host: Mapping[str, Any]) -> str:
    status = str(host.get("status", ""))
    seconds = float(host.get("seconds") or 0)
    steps = _steps(host)
    chips = "".join(_chip(s) for s in steps if s["status"] not in ("ok", "passed", "skipped") or len(steps) <= 12)
    details = _details(host)
    expanded = kind_of(status) == "failed" and details
    cells = (f'<td>{escape(str(host.get("host", "")))}</td><td>{escape(str(host.get("system") or "?"))}</td>'
             f'<td>{escape(engine_version(str(host.get("engine") or "")) or "-")}</td>'
             f'<td><span class="status {kind_of(status)}">{escape(status)}</span></td>'
             f'<td data-value="{seconds:.3f}">{seconds:.1f} s</td><td class="steps">{chips}</td>')
    row = (f'<tr class="host" data-kind="{kind_of(status)}" data-index="{index}" '
           f'data-text="{escape(json.dumps(host, sort_keys=True, ensure_ascii=False).lower())}">{cells}</tr>')
    if details:
        row += (f'<tr class="details{" open" if expanded else ""}" data-for="{index}">'
                f'<td colspan="6">{"".join(details)}</td></tr>')
    return row


_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1d2127;background:#fff}
h1{font-size:20px;margin:0 0 4px} .meta{color:#667;margin-bottom:16px}
.bar{display:flex;height:28px;border-radius:6px;overflow:hidden;margin:8px 0 4px;background:#eee}
.bar div{color:#fff;font-weight:600;display:flex;align-items:center;justify-content:center;min-width:0}
.legend span{margin-right:16px;color:var(--c)}
.ok{--c:#2e7d32} .changed{--c:#1565c0} .failed{--c:#c62828} .other{--c:#757575}
.bar .ok,.bar .changed,.bar .failed,.bar .other{background:var(--c)}
.controls{margin:16px 0 8px;display:flex;gap:8px;align-items:center;flex-wrap:wrap}
button{border:1px solid #ccd;background:#f6f7f9;border-radius:4px;padding:4px 10px;cursor:pointer}
button.on{background:#1d2127;color:#fff} input{padding:4px 8px;border:1px solid #ccd;border-radius:4px;width:260px}
table{border-collapse:collapse;width:100%} th{text-align:left;border-bottom:2px solid #ccd;padding:6px;cursor:pointer;
user-select:none;white-space:nowrap} th.sorted-asc:after{content:" \\25B2"} th.sorted-desc:after{content:" \\25BC"}
td{border-bottom:1px solid #e4e6ea;padding:6px;vertical-align:top}
tr.host{cursor:pointer} tr.host:hover{background:#f6f8fb}
.status{color:#fff;background:var(--c);border-radius:10px;padding:1px 8px;font-weight:600}
.chip{display:inline-block;border-left:4px solid var(--c);background:#f4f5f7;border-radius:3px;padding:1px 6px;
margin:1px 4px 1px 0;white-space:nowrap} .chip small{color:#556}
tr.details{display:none} tr.details.open{display:table-row} tr.details td{background:#fbfbfc}
.error{color:#b71c1c;white-space:pre-wrap;margin:4px 0} .warning{color:#8d6e00;margin:4px 0} .fix code{color:#0d47a1}
.finding{margin:4px 0} code{font:12px ui-monospace,monospace;white-space:pre-wrap}
"""

_SCRIPT = """
(function () {
  var rows = Array.prototype.slice.call(document.querySelectorAll("tr.host"));
  var body = document.querySelector("tbody"), kind = "all", text = "";
  function detailsOf(row) { return document.querySelector('tr.details[data-for="' + row.dataset.index + '"]'); }
  function apply() {
    var shown = 0;
    rows.forEach(function (row) {
      var visible = (kind === "all" || row.dataset.kind === kind) && row.dataset.text.indexOf(text) >= 0;
      row.style.display = visible ? "" : "none";
      var d = detailsOf(row); if (d) { d.style.display = visible ? "" : "none"; }
      if (visible) { shown += 1; }
    });
    document.getElementById("shown").textContent = shown + " of " + rows.length + " hosts shown";
  }
  document.querySelectorAll("button[data-kind]").forEach(function (button) {
    button.addEventListener("click", function () {
      kind = button.dataset.kind;
      document.querySelectorAll("button[data-kind]").forEach(function (b) { b.classList.toggle("on", b === button); });
      apply();
    });
  });
  document.getElementById("filter").addEventListener("input", function (e) {
    text = e.target.value.toLowerCase(); apply();
  });
  rows.forEach(function (row) {
    row.addEventListener("click", function () { var d = detailsOf(row); if (d) { d.classList.toggle("open"); } });
  });
  document.querySelectorAll("th").forEach(function (th, column) {
    th.addEventListener("click", function () {
      var asc = !th.classList.contains("sorted-asc");
      document.querySelectorAll("th").forEach(function (h) { h.classList.remove("sorted-asc", "sorted-desc"); });
      th.classList.add(asc ? "sorted-asc" : "sorted-desc");
      rows.sort(function (a, b) {
        var x = a.cells[column], y = b.cells[column];
        var u = x.dataset.value !== undefined ? parseFloat(x.dataset.value) : x.textContent.toLowerCase();
        var v = y.dataset.value !== undefined ? parseFloat(y.dataset.value) : y.textContent.toLowerCase();
        return (u < v ? -1 : u > v ? 1 : 0) * (asc ? 1 : -1);
      });
      rows.forEach(function (row) { body.appendChild(row); var d = detailsOf(row); if (d) { body.appendChild(d); } });
    });
  });
  var wanted = location.hash.replace("#", "");   // report.html#failed: open with that filter (a link to share)
  document.querySelectorAll("button[data-kind]").forEach(function (b) {
    if (b.dataset.kind === wanted) { b.click(); }
  });
  apply();
  document.body.dataset.ready = "1";
})();
"""


def render_html(task: str, hosts: Sequence[Mapping[str, Any]], now: datetime | None = None) -> str:
    """The page for one run of ``task`` over ``hosts`` (each a report's ``as_dict``); secrets masked."""
    data = mask_data([dict(h) for h in hosts])
    counts = Counter(kind_of(str(h.get("status", ""))) for h in data)
    total = max(1, len(data))
    bar = "".join(f'<div class="{k}" style="width:{100 * counts[k] / total:.2f}%">{counts[k]}</div>'
                  for k in ("ok", "changed", "failed", "other") if counts[k])
    legend = "".join(f'<span class="{k}">&#9632; {counts[k]} {k}</span>' for k in ("ok", "changed", "failed", "other"))
    buttons = "".join(f'<button data-kind="{k}"{" class=on" if k == "all" else ""}>{k}</button>'
                      for k in ("all", "ok", "changed", "failed", "other"))
    when = (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    rows = "".join(_row(i, h) for i, h in enumerate(data))
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>hostsetup {escape(task)}: {len(data)} hosts</title><style>{_STYLE}</style></head>
<body data-ready="0"><h1>hostsetup {escape(task)}</h1>
<div class="meta">{len(data)} hosts &middot; {escape(when)}</div>
<div class="bar" id="summary">{bar}</div><div class="legend">{legend}</div>
<div class="controls">{buttons}<input id="filter" type="search" placeholder="filter: host, system, step, error">
<span id="shown"></span></div>
<table><thead><tr><th>host</th><th>system</th><th>engine</th><th>status</th><th>time</th><th>steps</th></tr></thead>
<tbody>{rows}</tbody></table>
<script>{_SCRIPT}</script></body></html>
"""
    return page  # (the data was masked above; masking the page would also hit its own markup)


def write_html(path: str | Path, task: str, hosts: Sequence[Mapping[str, Any]]) -> None:
    """``--html FILE``: the page, private to its owner (it names hosts, users and errors)."""
    write_private(path, render_html(task, hosts))
