"""The audit report of an execution: its history and audit records as a timeline of
steps with durations, approvals (who, when), resources created and changed, errors.
For a fleet execution, every child execution it started is part of the report."""

from __future__ import annotations

import datetime as dt
import html
import json

from migrator.audit import read_trail


def _seconds(stamp) -> float:
    return stamp.timestamp() if isinstance(stamp, dt.datetime) else dt.datetime.fromisoformat(str(stamp)).timestamp()


def history(sfn, execution_arn: str) -> list[dict]:
    events = []
    for page in sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn):
        events.extend(page["events"])
    return events


def steps_of(events: list[dict]) -> list[dict]:
    """Each state entered, with its duration, retries and outcome."""
    steps, open_steps = [], {}
    for event in events:
        kind = event["type"]
        if kind.endswith("StateEntered"):
            name = event["stateEnteredEventDetails"]["name"]
            step = {"step": name, "start": _seconds(event["timestamp"]), "end": None, "attempts": 0,
                    "outcome": "running", "error": None}
            steps.append(step)
            open_steps[name] = step
        elif kind.endswith("StateExited"):
            step = open_steps.pop(event["stateExitedEventDetails"]["name"], None)
            if step:
                step["end"] = _seconds(event["timestamp"])
                step["outcome"] = "ok" if step["outcome"] == "running" else step["outcome"]
        elif kind in ("LambdaFunctionScheduled", "TaskScheduled") and steps:
            steps[-1]["attempts"] += 1
        elif kind.endswith("Failed") or kind.endswith("TimedOut"):
            details = next((v for k, v in event.items() if k.endswith("EventDetails")), {})
            if steps and details.get("error") not in ("NotReadyYet", "EvictionBlocked"):
                steps[-1]["error"] = f"{details.get('error', kind)}: {str(details.get('cause', ''))[:300]}"
                steps[-1]["outcome"] = "failed"
    last = _seconds(events[-1]["timestamp"]) if events else 0
    for step in steps:
        step["end"] = step["end"] or last
        step["seconds"] = round(step["end"] - step["start"], 1)
    return steps


def approvals_of(events: list[dict]) -> list[dict]:
    """Gates: what was asked, and who answered when (from the task's outcome)."""
    asked, found = {}, []
    for event in events:
        if event["type"] == "TaskSubmitted" and "waitForTaskToken" in event["taskSubmittedEventDetails"].get("resource", ""):
            asked[event["previousEventId"]] = event
        if event["type"] == "TaskScheduled":
            details = event["taskScheduledEventDetails"]
            payload = json.loads(details.get("parameters", "{}")).get("Payload")
            if "waitForTaskToken" in details.get("resource", "") + details.get("resourceType", "") or (
                    isinstance(payload, dict) and "task_token" in payload):
                found.append({"gate": f"{payload['target']}/{payload['gate']}", "asked_at": _seconds(event["timestamp"]),
                              "decision": "pending", "by": None, "at": None})
        if found and event["type"] == "TaskSucceeded" and found[-1]["decision"] == "pending":
            output = json.loads(event["taskSucceededEventDetails"].get("output") or "{}")
            if isinstance(output, dict) and (output.get("decision") or output.get("approver") or output.get("by")):
                found[-1].update(decision=output.get("decision", "approve"), by=output.get("by") or output.get("approver"),
                                 at=output.get("at"))
        if found and event["type"] in ("TaskFailed", "TaskTimedOut") and found[-1]["decision"] == "pending":
            details = event.get("taskFailedEventDetails") or event.get("taskTimedOutEventDetails") or {}
            found[-1].update(decision="timed out" if event["type"] == "TaskTimedOut" or details.get("error") == "States.Timeout"
                             else "rejected", at=_seconds(event["timestamp"]))
    return found


def children_of(events: list[dict]) -> list[str]:
    """Child executions a fleet execution started (.sync tasks)."""
    arns = []
    for event in events:
        if event["type"] == "TaskSubmitted":
            output = json.loads(event["taskSubmittedEventDetails"].get("output") or "{}")
            if isinstance(output, dict) and output.get("ExecutionArn"):
                arns.append(output["ExecutionArn"])
    return sorted(set(arns))


def build_report(sfn, dynamodb, table: str | None, execution_arn: str, depth: int = 1) -> dict:
    described = sfn.describe_execution(executionArn=execution_arn)
    events = history(sfn, execution_arn)
    records = read_trail(dynamodb, table, execution_arn) if table else []
    report = {
        "execution_arn": execution_arn,
        "name": described["name"],
        "state_machine": described["stateMachineArn"].rsplit(":", 1)[-1],
        "status": described["status"],
        "error": described.get("error"),
        "cause": described.get("cause"),
        "events": len(events),
        "steps": steps_of(events),
        "approvals": approvals_of(events),
        "records": records,
        "children": [],
    }
    if depth > 0:
        report["children"] = [build_report(sfn, dynamodb, table, arn, depth - 1) for arn in children_of(events)]
    return report


def _when(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if isinstance(seconds, str):
        return seconds[:19]
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def render_text(report: dict, indent: str = "") -> str:
    lines = [f"{indent}{report['state_machine']} / {report['name']}: {report['status']}"
             + (f" ({report['error']}: {report['cause'][:200]})" if report.get("error") else "")]
    for step in report["steps"]:
        retries = f" x{step['attempts']}" if step["attempts"] > 1 else ""
        error = f"  {step['error'][:120]}" if step["error"] else ""
        lines.append(f"{indent}  {_when(step['start'])}  {_duration(step['seconds']):>9}  {step['step']}{retries}{error}")
    for approval in report["approvals"]:
        lines.append(f"{indent}  approval {approval['gate']}: {approval['decision']}"
                     f" by {approval['by'] or '-'} at {_when(approval['at'])}")
    changed = [r for r in report["records"] if r["action"] not in ("preflight-passed",)]
    if changed:
        lines.append(f"{indent}  audit records: " + ", ".join(r["action"] for r in changed))
    for child in report["children"]:
        lines.append(render_text(child, indent + "    "))
    return "\n".join(lines)


def render_html(report: dict) -> str:
    """A self-contained page: summary, a timeline chart (inline SVG) and the details."""
    rows = [(report, step) for step in report["steps"]]
    for child in report["children"]:
        rows += [(child, step) for step in child["steps"]]
    start = min((s["start"] for _, s in rows), default=0)
    end = max((s["end"] for _, s in rows), default=start + 1)
    span = max(1.0, end - start)
    width, row_height, label = 900, 16, 330
    bars = []
    for index, (owner, step) in enumerate(rows):
        x = label + (step["start"] - start) / span * (width - label)
        w = max(1.5, step["seconds"] / span * (width - label))
        color = {"failed": "#d64545", "running": "#e0a526"}.get(step["outcome"], "#3a7bd5")
        title = html.escape(f"{owner['name']} {step['step']} {_duration(step['seconds'])}"
                            + (f" {step['error']}" if step["error"] else ""))
        text = html.escape(f"{owner['name'][-28:]} · {step['step']}")
        y = index * row_height
        bars.append(f'<text x="0" y="{y + 12}" font-size="11">{text}</text>'
                    f'<rect x="{x:.1f}" y="{y + 2}" width="{w:.1f}" height="{row_height - 4}" fill="{color}">'
                    f"<title>{title}</title></rect>")
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{len(rows) * row_height + 4}" '
           f'role="img" aria-label="timeline">{"".join(bars)}</svg>')

    def section(item: dict) -> str:
        steps = "".join(
            f"<tr><td>{html.escape(s['step'])}</td><td>{_when(s['start'])}</td><td>{_duration(s['seconds'])}</td>"
            f"<td>{s['attempts']}</td><td class='{s['outcome']}'>{s['outcome']}</td>"
            f"<td>{html.escape(s['error'] or '')}</td></tr>" for s in item["steps"])
        approvals = "".join(
            f"<li>{html.escape(a['gate'])}: <b>{html.escape(a['decision'])}</b> by {html.escape(str(a['by'] or '-'))} "
            f"at {_when(a['at'])}</li>" for a in item["approvals"]) or "<li>none</li>"
        records = "".join(
            f"<tr><td>{html.escape(r['at'])}</td><td>{html.escape(r['target'])}</td><td>{html.escape(r['action'])}</td>"
            f"<td><code>{html.escape(json.dumps(r['detail'])[:400])}</code></td></tr>" for r in item["records"])
        error = f"<p class='failed'>{html.escape(item['error'] or '')}: {html.escape(item['cause'] or '')}</p>" \
            if item.get("error") else ""
        return (f"<section><h2>{html.escape(item['state_machine'])} / {html.escape(item['name'])}: "
                f"<span class='{item['status'].lower()}'>{item['status']}</span></h2>{error}"
                f"<table><tr><th>step</th><th>started</th><th>took</th><th>attempts</th><th>outcome</th><th>error</th></tr>"
                f"{steps}</table><h3>Approvals</h3><ul>{approvals}</ul>"
                f"<h3>Resources created and changed</h3><table><tr><th>at</th><th>target</th><th>action</th>"
                f"<th>detail</th></tr>{records}</table></section>")

    sections = section(report) + "".join(section(child) for child in report["children"])
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>AL2023 migration audit: {html.escape(report['name'])}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; }}
table {{ border-collapse: collapse; margin: .5rem 0 1rem; font-size: 13px; }}
td, th {{ border: 1px solid #ddd; padding: 3px 6px; text-align: left; vertical-align: top; }}
.failed, .rolled_back {{ color: #b02a2a; }} .succeeded, .ok {{ color: #1d7a33; }}
code {{ font-size: 11px; word-break: break-all; }}
</style></head><body>
<h1>Audit of {html.escape(report['name'])}</h1>
<p>{html.escape(report['state_machine'])}: <b class="{report['status'].lower()}">{report['status']}</b>,
{len(report['children'])} child executions, {report['events']} history events.</p>
<h2>Timeline</h2>{svg}
{sections}
</body></html>
"""
