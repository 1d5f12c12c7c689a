"""The shadow replay's report: a JSON document and the same as a self-contained HTML page
(the old and the new reply side by side). Every text is escaped: a message holding a script
tag shows it verbatim."""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

from agentstream.streams.shadow import ASKED, FAILED, HANDOFF_NOTICE, NOT_ASKED, Pair, report_paths


def side_summary(sides: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Totals of one column (old or new replies)."""
    known = [s["costUsd"] for s in sides if s["costUsd"] is not None]
    lengths, latencies = [s["length"] for s in sides], [s["latencyMs"] for s in sides]
    return {
        "replies": len(sides),
        "meanLength": round(statistics.fmean(lengths), 1) if lengths else None,
        "meanLatencyMs": round(statistics.fmean(latencies), 1) if latencies else None,
        "maxLatencyMs": max(latencies) if latencies else None,
        "fallbacks": sum(1 for s in sides if s["fallback"]),
        "promptTokens": sum(s["promptTokens"] for s in sides),
        "completionTokens": sum(s["completionTokens"] for s in sides),
        "costUsd": round(sum(known), 8) if known else None,
        "costUnknown": len(sides) - len(known),
    }


def build_report(meta: dict[str, Any], pairs: Sequence[Pair]) -> dict[str, Any]:
    """The JSON report: the run, a summary of both columns over the asked pairs, every pair."""
    rows = [p.to_json() for p in pairs]
    asked = [r for r in rows if r["status"] == ASKED]
    return {
        **meta,
        "summary": {
            "inbounds": len(rows), "asked": len(asked),
            "notAsked": sum(1 for r in rows if r["status"] == NOT_ASKED),
            "notRebuilt": sum(1 for r in rows if r["status"] == FAILED),
            "handoffNotices": sum(1 for r in rows if r["status"] == HANDOFF_NOTICE),
            "reproduced": sum(1 for r in asked if r["reproduced"]),
            "old": side_summary([r["old"] for r in asked]),
            "new": side_summary([r["new"] for r in asked]),
        },
        "pairs": rows,
    }


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def money(value: float | None, unknown: int = 0) -> str:
    """A cost for a person: "unknown" when no price is known, and how many were not priced."""
    if value is None:
        return "unknown"
    text = f"${value:.6f}"
    return f"{text} (+{unknown} unknown)" if unknown else text


def _side_cell(side: dict[str, Any] | None) -> str:
    if side is None:
        return '<td class="none">—</td>'
    flags = ' <span class="fallback">fallback</span>' if side["fallback"] else ""
    meta = (f'{_e(side["model"])} · {side["length"]} chars · {side["latencyMs"]} ms · '
            f'{side["promptTokens"]}+{side["completionTokens"]} tokens · {_e(money(side["costUsd"]))}')
    return f'<td><div class="text">{_e(side["content"])}</div><div class="meta">{meta}{flags}</div></td>'


def _pair_row(row: dict[str, Any]) -> str:
    inbound = row["inbound"]
    status = _e(row["status"]) + ("" if row["reproduced"] in (True, None) else " · context not reproduced")
    detail = f'<div class="meta">{_e(row["detail"])}</div>' if row["detail"] else ""
    return (f'<tr><td><div class="text">{_e(inbound["content"])}</div>'
            f'<div class="meta">{_e(inbound["occurredAt"])} · {_e(row["streamId"])} · seq {inbound["seq"]} · {status}</div>{detail}</td>'
            f'{_side_cell(row["old"])}{_side_cell(row["new"])}</tr>')


def _summary_rows(summary: dict[str, Any]) -> str:
    old, new = summary["old"], summary["new"]
    lines = [("replies", old["replies"], new["replies"]), ("mean length (chars)", old["meanLength"], new["meanLength"]),
             ("mean latency (ms)", old["meanLatencyMs"], new["meanLatencyMs"]),
             ("max latency (ms)", old["maxLatencyMs"], new["maxLatencyMs"]), ("fallbacks", old["fallbacks"], new["fallbacks"]),
             ("prompt tokens", old["promptTokens"], new["promptTokens"]),
             ("completion tokens", old["completionTokens"], new["completionTokens"]),
             ("estimated cost", money(old["costUsd"], old["costUnknown"]), money(new["costUsd"], new["costUnknown"]))]
    return "".join(f"<tr><th>{_e(name)}</th><td>{_e('—' if a is None else a)}</td><td>{_e('—' if b is None else b)}</td></tr>"
                   for name, a, b in lines)


STYLE = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;width:100%}
td,th{border:1px solid #ddd;padding:.5em;vertical-align:top;text-align:left}.text{white-space:pre-wrap}
.meta{color:#666;font-size:.85em;margin-top:.3em}.fallback{color:#b00;font-weight:bold}.none{color:#999}
table.summary{width:auto;margin-bottom:1.5em}pre{white-space:pre-wrap;background:#f6f6f6;padding:.5em}"""


def render_html(report: dict[str, Any]) -> str:
    """The report as one HTML page (no script, every text escaped)."""
    s, c = report["summary"], report["candidate"]
    instructions = (f"<details><summary>candidate system instructions ({_e(c['instructionsFile'])})</summary>"
                    f"<pre>{_e(c['instructions'])}</pre></details>") if c["instructions"] is not None else \
        "<p>system instructions: the ones each reply used</p>"
    notes = "".join(f"<p class=\"meta\">{_e(n)}</p>" for n in report["notes"])
    counts = (f"{s['inbounds']} inbound messages with a reply; candidate asked for {s['asked']}; "
              f"not asked (--max-calls): {s['notAsked']}; not rebuilt: {s['notRebuilt']}; "
              f"handoff notices (not asked): {s['handoffNotices']}; "
              f"context reproduced exactly: {s['reproduced']} of {s['asked']}")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Shadow replay: {_e(report['business'])}</title>
<style>{STYLE}</style></head><body>
<h1>Shadow replay of {_e(report['business'])}</h1>
<p>run {_e(report['runId'])} at {_e(report['startedAt'])}; since {_e(report['since'] or 'the beginning')};
candidate model {_e(c['model'])}; limit {_e(report['limit'])}; max calls {_e(report['maxCalls'] if report['maxCalls'] is not None else 'no cap')}</p>
{instructions}{notes}<p>{_e(counts)}</p>
<table class="summary"><tr><th></th><th>old (logged)</th><th>new (candidate)</th></tr>{_summary_rows(s)}</table>
<table><tr><th>customer message</th><th>old reply</th><th>new reply</th></tr>
{''.join(_pair_row(r) for r in report['pairs'])}
</table></body></html>
"""


def write_report(out: Path, report: dict[str, Any]) -> tuple[Path, Path]:
    """Write the report as HTML and JSON beside each other (same basename); their paths."""
    html_path, json_path = report_paths(out)
    html_path.write_text(render_html(report), encoding="utf-8")
    json_path.write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    return html_path, json_path
