"""The audit report of an execution: its history and audit records as a timeline of
steps with durations, approvals (who, when, and through what), resources created and
changed, errors. For a fleet execution, every child execution it started is part of
the report. The HTML page is self-contained (no script, no font, no CDN)."""

from __future__ import annotations

import datetime as dt
import html
import json

from botocore.exceptions import BotoCoreError, ClientError

from migrator.approvals.core import APPROVAL_KEY_PREFIX
from migrator.audit import read_trail

# Errors a polling step raises until the thing it waits for is ready: retries, not failures.
POLLING_ERRORS = ("NotReadyYet", "EvictionBlocked")
# What a step spends its time on. `work`: a task doing or polling something; `wait`: a Wait
# state (a bake, a retention); `approval`: a gate waiting for a person; `child`: a Map, or a
# task waiting for the child executions it started; `flow`: Choice, Pass, Succeed, Fail.
KINDS = ("work", "wait", "approval", "child", "flow")
WAITS = ("wait", "approval")
# What the history cannot say about an answer given with the raw task token.
NO_CALLER_IN_HISTORY = ("Step Functions' execution history does not record who called SendTaskSuccess or "
                        "SendTaskFailure; CloudTrail does")


def _seconds(stamp) -> float:
    return stamp.timestamp() if isinstance(stamp, dt.datetime) else dt.datetime.fromisoformat(str(stamp)).timestamp()


def iso(moment) -> str:
    """A moment (Unix seconds, datetime or ISO text) as ISO 8601 in UTC, to the second: 2026-01-08T00:24:55Z."""
    if moment is None or moment == "":
        return "-"
    if isinstance(moment, str):
        try:
            moment = dt.datetime.fromisoformat(moment.replace("Z", "+00:00"))
        except ValueError:
            return moment
    if isinstance(moment, dt.datetime):
        moment = moment.timestamp() if moment.tzinfo else moment.replace(tzinfo=dt.UTC).timestamp()
    return dt.datetime.fromtimestamp(int(moment), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def history(sfn, execution_arn: str) -> list[dict]:
    events = []
    for page in sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn):
        events.extend(page["events"])
    return events


def _details(event: dict) -> dict:
    return next((v for k, v in event.items() if k.endswith("EventDetails") and isinstance(v, dict)), {})


def _json(text) -> object:
    try:
        return json.loads(text or "null")
    except (TypeError, ValueError):
        return text


def steps_of(events: list[dict]) -> list[dict]:
    """Each state entered, with its kind, duration, retries and outcome.

    Events are tied to their state through `previousEventId`, so the states of parallel
    Map iterations keep their own times; a state's exit closes the state of that name it
    follows from (or the latest one open)."""
    steps, by_event, open_steps = [], {}, []
    for event in events:
        kind, details = event["type"], _details(event)
        owner = by_event.get(event.get("previousEventId"))
        if kind.endswith("StateEntered"):
            entered = kind.removesuffix("StateEntered")
            step = {"step": details.get("name", entered), "type": entered, "kind": {"Wait": "wait", "Map": "child", "Parallel": "child",
                                                                  "Task": "work"}.get(entered, "flow"),
                    "start": _seconds(event["timestamp"]), "end": None, "attempts": 0, "outcome": "running",
                    "error": None, "gate": None}
            steps.append(step)
            open_steps.append(step)
            owner = step
        elif kind.endswith("StateExited"):
            name = details.get("name")
            if owner is None or owner["step"] != name or owner["end"] is not None:
                owner = next((s for s in reversed(open_steps) if s["step"] == name), None)
            if owner is not None:
                owner["end"] = _seconds(event["timestamp"])
                owner["outcome"] = "ok" if owner["outcome"] == "running" else owner["outcome"]
                open_steps.remove(owner)
        elif kind.startswith(("Map", "Parallel")):  # an iteration's end belongs to its Map, not to its last state
            name = details.get("name")
            owner = next((s for s in reversed(open_steps) if s["type"] in ("Map", "Parallel")
                          and name in (None, s["step"])), owner)
        by_event[event["id"]] = owner
        if owner is None:
            continue
        if kind in ("LambdaFunctionScheduled", "TaskScheduled"):
            owner["attempts"] += 1
            resource = f"{details.get('resourceType', '')}:{details.get('resource', '')}"
            payload = (_json(details.get("parameters")) or {}).get("Payload") if kind == "TaskScheduled" else None
            if "waitForTaskToken" in resource:
                owner["kind"] = "approval" if isinstance(payload, dict) and payload.get("gate") else "wait"
                if owner["kind"] == "approval":
                    owner["gate"] = {"target": payload.get("target"), "gate": payload["gate"],
                                     "token": payload.get("task_token"), "answer": None}
            elif "startExecution.sync" in resource:
                owner["kind"] = "child"
        elif kind in ("TaskSucceeded", "TaskFailed", "TaskTimedOut") and owner["gate"] is not None:
            owner["gate"]["answer"] = event
        if kind.endswith(("Failed", "TimedOut")) and details.get("error") not in POLLING_ERRORS:
            if kind.startswith(("Execution", "MapIteration")):
                continue
            owner["error"] = f"{details.get('error', kind)}: {str(details.get('cause', ''))[:300]}"
            owner["outcome"] = "failed"
        elif kind in ("LambdaFunctionSucceeded", "TaskSucceeded") and owner["outcome"] == "failed":
            owner["outcome"] = "running"  # a retry succeeded: the error stays on record
            owner["error"] = f"retried after {owner['error']}"
    last = _seconds(events[-1]["timestamp"]) if events else 0
    for step in steps:
        step["end"] = step["end"] if step["end"] is not None else last
        step["seconds"] = round(step["end"] - step["start"], 1)
    return steps


def approvals_of(events: list[dict]) -> list[dict]:
    """Gates: what was asked, the answer and through what it came.

    `via` is `approvals` for an answer given through the project's approvals (the emailed
    link or `al2023-migrate approvals`), which send the approver's record as the task's
    output; `task token` for one given with the raw task token (SendTaskSuccess or
    SendTaskFailure from the console, the CLI or a script), whose caller the history
    does not know."""
    found = []
    for step in steps_of(events):
        gate = step["gate"]
        if gate is None:
            continue
        approval = {"gate": f"{gate['target']}/{gate['gate']}", "asked_at": step["start"], "decision": "pending",
                    "by": None, "at": None, "via": None, "comment": None, "answer_says": None, "caller": None,
                    "token": gate["token"]}
        answer = gate["answer"]
        if answer is not None:
            details, approval["at"] = _details(answer), iso(answer["timestamp"])
            if answer["type"] == "TaskSucceeded":
                output = _json(details.get("output"))
                ours = isinstance(output, dict) and output.get("approval_id") and output.get("by")
                approval.update(decision=output.get("decision", "approve") if ours else "approve",
                                via="approvals" if ours else "task token")
                if ours:
                    approval.update(by=output["by"], comment=output.get("comment") or None)
                else:
                    approval["answer_says"] = f"output {_short(details.get('output'))}"
            elif answer["type"] == "TaskTimedOut" or details.get("error") == "States.Timeout":
                approval.update(decision="timed out", via="timeout")
            else:
                cause, error = str(details.get("cause") or ""), details.get("error")
                ours = error == "Rejected" and cause.startswith("rejected by ")
                approval.update(decision="reject", via="approvals" if ours else "task token")
                if ours:
                    by, _, comment = cause.removeprefix("rejected by ").partition(": ")
                    approval.update(by=by, comment=comment or None)
                else:
                    approval["answer_says"] = f"error {error}" + (f", cause {_short(cause)}" if cause else "")
        elif step["outcome"] != "running":  # the gate's state ended without an answer (its execution stopped)
            approval["decision"] = "unanswered"
        found.append(approval)
    return found


def _short(text, limit: int = 160) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def children_of(events: list[dict]) -> list[str]:
    """Child executions a fleet execution started (.sync tasks)."""
    arns = []
    for event in events:
        if event["type"] == "TaskSubmitted":
            output = _json(event["taskSubmittedEventDetails"].get("output"))
            if isinstance(output, dict) and output.get("ExecutionArn"):
                arns.append(output["ExecutionArn"])
    return sorted(set(arns))


def _confirm_with_requests(approvals: list[dict], records: list[dict], dynamodb, table: str) -> None:
    """An output that looks like ours counts only if the request was decided through us:
    the request's item says `used` (a raw-token caller can send any output)."""
    requested = [r for r in records if r["action"] == "approval-requested"]
    for approval in approvals:
        target, _, gate = approval["gate"].rpartition("/")
        request = next((r for r in requested if r["target"] == target and r["detail"].get("gate") == gate), None)
        if request is None:
            continue
        requested.remove(request)
        approval_id = request["detail"].get("approval_id")
        approval["approval_id"] = approval_id
        if approval["via"] != "approvals" or not approval_id:
            continue
        item = dynamodb.get_item(TableName=table, Key={"pk": {"S": f"{APPROVAL_KEY_PREFIX}{approval_id}"},
                                                       "sk": {"S": "request"}}).get("Item") or {}
        if item.get("status", {}).get("S") != "used":
            approval.update(via="task token", answer_says=f"an approver record for {approval['by']} that the "
                                                          f"approvals never made", by=None)


def _callers(approvals: list[dict], cloudtrail) -> None:
    """Who answered with the raw task token: CloudTrail's SendTaskSuccess or SendTaskFailure
    event carrying that token (or the only one at that moment), which names the caller."""
    for approval in approvals:
        if approval["via"] != "task token":
            continue
        name = "SendTaskSuccess" if approval["decision"] == "approve" else "SendTaskFailure"
        approval["caller"] = caller = {"found": False, "call": name, "missing": "CloudTrail was not asked"}
        if cloudtrail is None or approval["at"] in (None, "-"):
            continue
        moment = dt.datetime.fromisoformat(approval["at"].replace("Z", "+00:00"))
        try:
            events = cloudtrail.lookup_events(
                LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": name}],
                StartTime=moment - dt.timedelta(minutes=5), EndTime=moment + dt.timedelta(minutes=5))["Events"]
        except (ClientError, BotoCoreError) as error:
            caller["missing"] = f"CloudTrail could not be read ({_short(error, 120)})"
            continue
        trails = [_json(e.get("CloudTrailEvent")) for e in events]
        trails = [t for t in trails if isinstance(t, dict) and t.get("eventSource") == "states.amazonaws.com"
                  and not t.get("errorCode")]
        same_token = [t for t in trails if (t.get("requestParameters") or {}).get("taskToken") == approval["token"]]
        match = same_token[0] if same_token else trails[0] if len(trails) == 1 else None
        if match is None:
            caller["missing"] = f"CloudTrail's event history has no {name} of this token around {approval['at']}"
            continue
        identity = match.get("userIdentity") or {}
        caller.update(found=True, arn=identity.get("arn") or identity.get("principalId") or "?",
                      source_ip=match.get("sourceIPAddress"), at=iso(match.get("eventTime")),
                      matched="by its task token" if same_token else "the only such call at that moment")


def build_report(sfn, dynamodb, table: str | None, execution_arn: str, depth: int = 1, cloudtrail=None) -> dict:
    described = sfn.describe_execution(executionArn=execution_arn)
    events = history(sfn, execution_arn)
    records = read_trail(dynamodb, table, execution_arn) if table else []
    approvals = approvals_of(events)
    for approval in approvals:
        if approval["decision"] == "pending" and described["status"] != "RUNNING":
            approval["decision"] = "unanswered"
    if table:
        _confirm_with_requests(approvals, records, dynamodb, table)
    _callers(approvals, cloudtrail)
    targets = {r["target"] for r in records}
    report = {
        "execution_arn": execution_arn,
        "name": described["name"],
        "target": targets.pop() if len(targets) == 1 else None,
        "state_machine": described["stateMachineArn"].rsplit(":", 1)[-1],
        "status": described["status"],
        "started": _seconds(described["startDate"]),
        "stopped": _seconds(described["stopDate"]) if described.get("stopDate") else None,
        "error": described.get("error"),
        "cause": described.get("cause"),
        "events": len(events),
        "steps": steps_of(events),
        "approvals": approvals,
        "records": records,
        "children": [],
    }
    if depth > 0:
        report["children"] = [build_report(sfn, dynamodb, table, arn, depth - 1, cloudtrail)
                              for arn in children_of(events)]
    return report


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def human(seconds: float) -> str:
    """A duration as a person reads it: 42 s, 11 min 34 s, 1 h 19 min, 168 h."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min" + (f" {seconds % 60} s" if seconds % 60 else "")
    hours, minutes = seconds // 3600, seconds % 3600 // 60
    return f"{hours} h" + (f" {minutes} min" if minutes else "")


def describe_approval(approval: dict) -> str:
    """The answer in a line: the decision, who and when, and through what."""
    if approval["via"] == "approvals":
        text = f"{approval['decision']} by {approval['by']} at {iso(approval['at'])}"
        return text + (f" ({approval['comment']})" if approval.get("comment") else "")
    if approval["via"] == "task token":
        caller = approval["caller"] or {"found": False, "call": "SendTask*", "missing": "CloudTrail was not asked"}
        if caller["found"]:
            who = (f"caller {caller['arn']}" + (f" from {caller['source_ip']}" if caller.get("source_ip") else "")
                   + f" (CloudTrail {caller['call']}, {caller['matched']})")
        else:
            who = f"caller unknown: {NO_CALLER_IN_HISTORY}, and {caller['missing']}"
        return (f"{approval['decision']} at {iso(approval['at'])} with the raw task token ({caller['call']}), "
                f"not through al2023-migrate approvals; {who}; the answer's own words, unchecked: "
                f"{approval['answer_says']}")
    if approval["via"] == "timeout":
        return f"timed out at {iso(approval['at'])}: counts as not approved"
    return f"{approval['decision']} (asked at {iso(approval['asked_at'])})"


def render_text(report: dict, indent: str = "") -> str:
    title = f"{report['target']}: " if report.get("target") else ""
    lines = [f"{indent}{title}{report['state_machine']} / {report['name']}: {report['status']}, "
             f"started {iso(report['started'])}, stopped {iso(report['stopped']) if report['stopped'] else '-'}"
             + (f" ({report['error']}: {(report['cause'] or '')[:200]})" if report.get("error") else "")]
    for step in report["steps"]:
        retries = f" x{step['attempts']}" if step["attempts"] > 1 else ""
        kind = f" [{step['kind']}]" if step["kind"] in WAITS else ""
        error = f"  {step['error'][:120]}" if step["error"] else ""
        lines.append(f"{indent}  {iso(step['start'])}  {_duration(step['seconds']):>9}  {step['step']}{retries}"
                     f"{kind}{error}")
    for approval in report["approvals"]:
        lines.append(f"{indent}  approval {approval['gate']}: {describe_approval(approval)}")
    changed = [r for r in report["records"] if r["action"] not in ("preflight-passed",)]
    if changed:
        lines.append(f"{indent}  audit records: " + ", ".join(r["action"] for r in changed))
    for child in report["children"]:
        lines.append(render_text(child, indent + "    "))
    return "\n".join(lines)


# --- the HTML page -------------------------------------------------------------------------------------------

BREAK_SHARE = 0.04  # of the time axis, for each long wait drawn on a broken scale
TICK_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


class TimeScale:
    """Time -> position on the axis (0..100 %), broken where a long stretch holds no work.

    A stretch in which only waits run (approvals, Wait states, child executions being
    waited for) that is longer than half of all the rest, and at least ten minutes, is
    drawn as a break of fixed width: a 168 h retention does not crush the minutes of
    work around it. Everything else is drawn to one linear scale."""

    def __init__(self, steps: list[dict]):
        drawn = [s for s in steps if s["kind"] != "flow"]
        self.start = min((s["start"] for s in drawn), default=0.0)
        self.end = max((s["end"] for s in drawn), default=self.start)
        if self.end <= self.start:
            self.end = self.start + 1
        # Between two moments at which some step starts or ends, with no work running: a
        # candidate. A wait that follows another (a retention, then the approval after
        # it) is its own candidate, so the short one stays drawn to scale.
        cuts = sorted({self.start, self.end, *(t for s in drawn for t in (s["start"], s["end"]))})
        work = [(s["start"], s["end"]) for s in drawn if s["kind"] == "work" and s["end"] > s["start"]]
        idle = [(a, b) for a, b in zip(cuts, cuts[1:]) if not any(lo < b and hi > a for lo, hi in work)]
        total, chosen = self.end - self.start, []
        for a, b in sorted(idle, key=lambda g: g[0] - g[1]):  # longest first
            rest = total - sum(y - x for x, y in chosen) - (b - a)
            if b - a >= 600 and b - a > 0.5 * rest:
                chosen.append((a, b))
        kept = total - sum(b - a for a, b in chosen)
        # each break keeps a stretch at each end to scale, so the wait's bar is seen to begin and end
        margin = [min((b - a) / 4, 0.04 * kept) for a, b in chosen]
        self.breaks = sorted((a + m, b - m) for (a, b), m in zip(chosen, margin))
        kept = total - sum(b - a for a, b in self.breaks)
        self._per_second = (100 - 100 * BREAK_SHARE * len(self.breaks)) / max(kept, 1e-9)

    def x(self, moment: float) -> float:
        position, at = 0.0, self.start
        for a, b in self.breaks:
            if moment <= a:
                break
            position += (a - at) * self._per_second
            if moment < b:
                return position + 100 * BREAK_SHARE * (moment - a) / (b - a)
            position += 100 * BREAK_SHARE
            at = b
        return min(100.0, position + (moment - at) * self._per_second)

    def ticks(self) -> list[tuple[float, str]]:
        """Round moments of the linear stretches, about one per 7 % of the axis."""
        step = next((s for s in TICK_STEPS if s * self._per_second >= 7), TICK_STEPS[-1])
        found, day = [], None
        stretches, at = [], self.start
        for a, b in self.breaks:
            stretches.append((at, a))
            at = b
        stretches.append((at, self.end))
        for a, b in stretches:
            moment = (int(a) // step + 1) * step
            while moment < b:
                position = self.x(moment)
                if all(abs(position - p) >= 5 for p, _ in found) and not any(
                        abs(position - self.x(ba)) < 3 or abs(position - self.x(bb)) < 3 for ba, bb in self.breaks):
                    when = dt.datetime.fromtimestamp(moment, dt.UTC)
                    text = when.strftime("%H:%M:%S" if step < 60 else "%H:%M")
                    if when.date() != day:
                        text, day = when.strftime("%m-%d ") + text, when.date()
                    found.append((position, text))
                moment += step
        return found


def _bar(step: dict, scale: TimeScale) -> str:
    width = max(0.25, scale.x(step["end"]) - scale.x(step["start"]))
    left = min(scale.x(step["start"]), 100 - width)  # a last instant's sliver stays inside the track
    classes = f"bar {step['kind']} {step['outcome']}"
    title = html.escape(f"{step['step']}: {human(step['seconds'])} from {iso(step['start'])}"
                        + (f"; {step['error']}" if step["error"] else ""))
    bar = (f'<span class="{classes}" style="left:{left:.2f}%;width:{width:.2f}%" title="{title}"></span>')
    if step["seconds"] < 1:
        return bar
    label = human(step["seconds"])
    if width >= 12:  # inside the bar
        place = f'left:{left:.2f}%;width:{width:.2f}%;text-align:center" class="dur in {step["kind"]}'
    elif left + width <= 84:
        place = f'left:calc({left + width:.2f}% + 4px)" class="dur'
    else:
        place = f'right:calc({100 - left:.2f}% + 4px)" class="dur'
    return bar + f'<span style="{place}">{html.escape(label)}</span>'


def _timeline(report: dict) -> str:
    groups = [report, *report["children"]]
    scale = TimeScale([s for g in groups for s in g["steps"]])
    breaks = "".join(
        f'<span class="break" style="left:{scale.x(a):.2f}%;width:{100 * BREAK_SHARE:.2f}%" '
        f'title="{html.escape(human(b - a))} without work, drawn shortened"></span>' for a, b in scale.breaks)
    ticks = "".join(f'<span class="tick" style="left:{p:.2f}%">{html.escape(t)}</span>' for p, t in scale.ticks()
                    if 4 <= p <= 96)  # a label centred on it stays on the axis
    gaps = "".join(f'<span class="gap" style="left:{min(92.0, max(8.0, scale.x(a) + 50 * BREAK_SHARE)):.2f}%">'
                   f'≈ {html.escape(human(b - a))}</span>' for a, b in scale.breaks)
    rows = [f'<div class="row axis"><div class="label">time (UTC)</div><div class="track">{ticks}{gaps}</div></div>']
    for group in groups:
        title = group.get("target") or group["name"]
        rows.append(f'<div class="row group"><div class="label" title="{html.escape(group["execution_arn"])}">'
                    f'<b>{html.escape(title)}</b> <span class="muted">{html.escape(group["state_machine"])} / '
                    f'{html.escape(group["name"])}</span> <span class="{group["status"].lower()}">'
                    f'{group["status"]}</span></div></div>')
        for step in group["steps"]:
            if step["kind"] == "flow":
                continue
            retries = f" ×{step['attempts']}" if step["attempts"] > 1 else ""
            rows.append(f'<div class="row step {step["kind"]}"><div class="label">{html.escape(step["step"])}'
                        f'<span class="muted">{retries}</span></div>'
                        f'<div class="track">{breaks}{_bar(step, scale)}</div></div>')
    legend = ('<p class="legend"><span class="key work"></span> work <span class="key wait"></span> Wait state '
              '(bake, retention) <span class="key approval"></span> approval gate <span class="key child"></span> '
              'child executions, Map <span class="key failed"></span> failed'
              + (' <span class="key brk"></span> long wait drawn shortened (≈ its length)' if scale.breaks else "")
              + "</p>")
    return legend + '<div class="timeline" role="figure" aria-label="timeline">' + "".join(rows) + "</div>"


TIME_KEYS = ("at", "time", "expires", "started", "stopped", "deadline", "timestamp")


def _detail_value(key: str, value) -> str:
    """Unix times under a time's key, and ISO times with an offset, as ISO 8601 UTC to the second."""
    name = key.rsplit(".", 1)[-1].split("[")[0]
    timeish = name in TIME_KEYS or name.endswith(tuple(f"_{k}" for k in TIME_KEYS))
    if isinstance(value, (int, float)) and not isinstance(value, bool) and timeish and 1e9 < value < 4.2e9:
        return iso(value)
    if isinstance(value, str) and len(value) >= 19 and value[4:5] == "-" and value[10:11] == "T" and value[13:14] == ":":
        return iso(value)
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def detail_items(detail, prefix: str = "") -> list[tuple[str, str]]:
    """An audit record's detail as (key, text) pairs: nested keys dotted, times in ISO 8601."""
    if isinstance(detail, dict):
        if not detail:
            return [(prefix, "-")] if prefix else []
        return [item for key, value in detail.items() for item in detail_items(value, f"{prefix}.{key}" if prefix
                                                                                 else str(key))]
    if isinstance(detail, list):
        if all(not isinstance(v, (dict, list)) for v in detail):
            return [(prefix, ", ".join(_detail_value(prefix, v) for v in detail) or "none")]
        return [item for index, value in enumerate(detail) for item in detail_items(value, f"{prefix}[{index}]")]
    return [(prefix, _detail_value(prefix, detail))]


def _records_table(records: list[dict]) -> str:
    if not records:
        return "<p class='muted'>none</p>"
    rows = []
    for record in records:
        items = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in detail_items(record["detail"]))
        rows.append(f"<tr><td class='when'>{iso(record['at'])}</td><td>{html.escape(record['target'])}</td>"
                    f"<td>{html.escape(record['action'])}</td><td><dl>{items}</dl></td></tr>")
    return ("<table class='records'><colgroup><col class='c-when'><col class='c-target'><col class='c-action'><col>"
            "</colgroup><tr><th>at (UTC)</th><th>target</th><th>action</th><th>detail</th></tr>"
            + "".join(rows) + "</table>")


def _approval_item(approval: dict) -> str:
    css = "raw" if approval["via"] == "task token" else ""
    return (f"<li class='{css}'>{html.escape(approval['gate'])}: <b>{html.escape(approval['decision'])}</b> "
            f"{html.escape(describe_approval(approval).removeprefix(approval['decision']).strip())}</li>")


def _section(item: dict) -> str:
    steps = "".join(
        f"<tr><td>{html.escape(s['step'])}</td><td>{s['kind']}</td><td class='when'>{iso(s['start'])}</td>"
        f"<td>{_duration(s['seconds'])}</td><td>{s['attempts']}</td><td class='{s['outcome']}'>{s['outcome']}</td>"
        f"<td>{html.escape(s['error'] or '')}</td></tr>" for s in item["steps"])
    approvals = "".join(_approval_item(a) for a in item["approvals"]) or "<li>none</li>"
    error = (f"<p class='failed'>{html.escape(item['error'] or '')}: {html.escape(item['cause'] or '')}</p>"
             if item.get("error") else "")
    title = f"{item['target']}: " if item.get("target") else ""
    return (f"<section><h2>{html.escape(title)}{html.escape(item['state_machine'])} / {html.escape(item['name'])}: "
            f"<span class='{item['status'].lower()}'>{item['status']}</span></h2>"
            f"<p class='muted'>started {iso(item['started'])}, stopped "
            f"{iso(item['stopped']) if item['stopped'] else '-'}</p>{error}"
            f"<table class='steps'><tr><th>step</th><th>kind</th><th>started (UTC)</th><th>took</th><th>attempts</th>"
            f"<th>outcome</th><th>error</th></tr>{steps}</table><h3>Approvals</h3><ul>{approvals}</ul>"
            f"<h3>Resources created and changed</h3>{_records_table(item['records'])}</section>")


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; max-width: 100rem; }
h2 { font-size: 1.2rem; overflow-wrap: anywhere; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-size: 13px; width: 100%; table-layout: fixed; }
td, th { border: 1px solid #ddd; padding: 3px 6px; text-align: left; vertical-align: top; overflow-wrap: anywhere; }
table.steps th:nth-child(1) { width: 16rem; } table.steps th:nth-child(2) { width: 5rem; }
table.steps th:nth-child(3) { width: 11rem; } table.steps th:nth-child(4) { width: 5rem; }
table.steps th:nth-child(5) { width: 5rem; } table.steps th:nth-child(6) { width: 5rem; }
col.c-when { width: 11rem; } col.c-target { width: 12rem; } col.c-action { width: 14rem; }
td.when { white-space: nowrap; font-variant-numeric: tabular-nums; }
dl { display: grid; grid-template-columns: 14rem 1fr; gap: 0 .8rem; margin: 0; }
dt { color: #555; overflow-wrap: anywhere; } dd { margin: 0; overflow-wrap: anywhere; }
.failed, .rolled_back, .aborted, .timed_out { color: #b02a2a; } .succeeded, .ok { color: #1d7a33; }
.muted { color: #666; font-weight: normal; }
li.raw { color: #8a4b00; }
.timeline { font-size: 12px; border: 1px solid #ddd; }
.row { display: grid; grid-template-columns: 17rem 1fr; border-top: 1px solid #f0f0f0; }
.row .label { padding: 1px 6px; overflow-wrap: anywhere; border-right: 1px solid #ddd; }
.row.group { grid-template-columns: 1fr; background: #f6f7f9; border-top: 1px solid #ddd; }
.row.group .label { border-right: 0; padding: 3px 6px; }
.row.axis { position: sticky; top: 0; background: #fff; z-index: 2; border-bottom: 1px solid #bbb; height: 22px; }
.track { position: relative; min-height: 18px; margin: 0 10px; }
.tick { position: absolute; top: 3px; transform: translateX(-50%); white-space: nowrap; color: #444;
        font-variant-numeric: tabular-nums; }
.tick::before { content: ""; position: absolute; left: 50%; top: 16px; height: 4px; border-left: 1px solid #888; }
.gap { position: absolute; top: 3px; transform: translateX(-50%); white-space: nowrap; color: #6b5a2e;
       font-weight: 600; background: #fff; padding: 0 3px; }
.break { position: absolute; top: 0; bottom: 0; z-index: 1; background: repeating-linear-gradient(135deg, transparent 0 3px,
         rgba(120, 100, 40, .18) 3px 5px); }
.bar { position: absolute; top: 3px; height: 12px; border-radius: 2px; min-width: 2px; }
.bar.work { background: #3a7bd5; }
.bar.wait { background: repeating-linear-gradient(45deg, #c9d1da 0 4px, #eef1f4 4px 8px); border: 1px dashed #7f8c99;
            box-sizing: border-box; }
.bar.approval { background: repeating-linear-gradient(45deg, #f2c46b 0 4px, #fcefd4 4px 8px);
                border: 1px dashed #b57d14; box-sizing: border-box; }
.bar.child { top: 6px; height: 6px; background: transparent; border: 1px solid #7a8aa0; box-sizing: border-box; }
.bar.failed { background: #d64545; border-color: #8f1d1d; }
.bar.running { outline: 2px solid #e0a526; }
.dur { position: absolute; top: 2px; white-space: nowrap; color: #333; font-variant-numeric: tabular-nums; }
.dur.in { color: #222; text-shadow: 0 0 2px #fff, 0 0 2px #fff; }
.dur.in.work { color: #fff; text-shadow: 0 0 2px #123; }
.legend .key { display: inline-block; width: 22px; height: 10px; margin: 0 3px 0 12px; vertical-align: middle; }
.key.work { background: #3a7bd5; } .key.failed { background: #d64545; }
.key.wait { background: repeating-linear-gradient(45deg, #c9d1da 0 4px, #eef1f4 4px 8px); border: 1px dashed #7f8c99; }
.key.approval { background: repeating-linear-gradient(45deg, #f2c46b 0 4px, #fcefd4 4px 8px);
                border: 1px dashed #b57d14; }
.key.child { height: 6px; border: 1px solid #7a8aa0; }
.key.brk { background: repeating-linear-gradient(135deg, transparent 0 3px, rgba(120, 100, 40, .35) 3px 5px); }
@media print { .row.axis { position: static; } body { margin: 1cm; } }
"""


def render_html(report: dict) -> str:
    """A self-contained page: summary, a timeline on a time axis, and the details."""
    title = report.get("target") or report["name"]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>AL2023 migration audit: {html.escape(title)}</title>
<style>{STYLE}</style></head><body>
<h1>Audit of {html.escape(title)}</h1>
<p>{html.escape(report['state_machine'])} / {html.escape(report['name'])}:
<b class="{report['status'].lower()}">{report['status']}</b>, started {iso(report['started'])}, stopped
{iso(report['stopped']) if report['stopped'] else '-'}; {len(report['children'])} child executions,
{report['events']} history events. Times are UTC.</p>
<h2>Timeline</h2>{_timeline(report)}
{_section(report)}{"".join(_section(child) for child in report["children"])}
</body></html>
"""
