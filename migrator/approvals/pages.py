"""The pages a person sees: a confirmation form (GET) and the outcome (POST)."""

from __future__ import annotations

import datetime as dt
import html
import json

from migrator.approvals.core import APPROVER_MAX, PAST

STYLE = """body{font-family:system-ui,sans-serif;max-width:44rem;margin:2rem auto;color:#222}
dl{display:grid;grid-template-columns:12rem 1fr;gap:.3rem 1rem}dt{font-weight:600}
pre{background:#f5f5f5;padding:.6rem;overflow:auto;font-size:12px}
button{font-size:1rem;padding:.5rem 1.2rem;border:0;border-radius:4px;color:#fff;cursor:pointer}
.approve{background:#1d7a33}.reject{background:#b02a2a}input,textarea{width:100%;font-size:1rem;margin:.2rem 0 .8rem}"""


def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<meta name='robots' content='noindex'><style>{STYLE}</style></head><body>{body}</body></html>")


def confirmation(request: dict, decision: str, expires: str, signature: str, identity: str | None) -> str:
    """What is asked, and a form whose submit is a POST: the only thing that acts."""
    expiry = dt.datetime.fromtimestamp(request["expires_at"], dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    notified = ", ".join(request["notified"]) or "the notification topic's subscribers"
    who = (f"<p>You are signed in as <b>{html.escape(identity)}</b>.</p>" if identity else
           "<label for='approver'>Your name or email (recorded with the decision)</label>"
           f"<input id='approver' name='approver' required maxlength='{APPROVER_MAX}' autocomplete='email'>")
    verb = "Approve" if decision == "approve" else "Reject"
    body = (
        f"<h1>{verb} {html.escape(request['gate'])} of {html.escape(request['target'])}?</h1>"
        f"<dl><dt>Target</dt><dd>{html.escape(request['target'])}</dd>"
        f"<dt>Gate</dt><dd>{html.escape(request['gate'])}</dd>"
        f"<dt>Expires</dt><dd>{expiry}</dd>"
        f"<dt>Also notified</dt><dd>{html.escape(notified)}</dd>"
        f"<dt>Execution</dt><dd><code>{html.escape(request['execution'])}</code></dd></dl>"
        f"<h2>Evidence</h2><pre>{html.escape(json.dumps(request['evidence'], indent=2, default=str))}</pre>"
        f"<form method='post'>{who}"
        f"<label for='comment'>Comment (optional)</label><textarea id='comment' name='comment' maxlength='1000'></textarea>"
        f"<input type='hidden' name='d' value='{html.escape(decision)}'>"
        f"<input type='hidden' name='e' value='{html.escape(expires)}'>"
        f"<input type='hidden' name='s' value='{html.escape(signature)}'>"
        f"<button type='submit' class='{decision}'>{verb}</button></form>"
        "<p>Opening this page changed nothing. Only the button above sends the decision, once.</p>"
    )
    return _page(f"{verb} {request['gate']}", body)


def outcome(record: dict, request: dict) -> str:
    word = PAST[record["decision"]]
    recorded = f"Recorded: {word} by <b>{html.escape(record['by'])}</b> at {html.escape(record['at'])}. "
    if record.get("callback_error"):  # SendTask* refused: the execution ended (timed out, stopped) meanwhile
        return _page("Too late", (
            f"<h1 class='late'>{html.escape(request['target'])}: {html.escape(request['gate'])} not {word}</h1>"
            f"<p>{recorded}But the migration had already ended before this decision reached it "
            f"({html.escape(record['callback_error'])}), so it changed nothing. See the execution "
            f"<code>{html.escape(request['execution'])}</code>.</p>"))
    return _page(f"{word.capitalize()}", (
        f"<h1 class='done'>{html.escape(request['target'])}: {html.escape(request['gate'])} {word}</h1>"
        f"<p>{recorded}The migration continues accordingly.</p>"))


def refused(reason: str, message: str) -> str:
    titles = {"used": "Already used", "expired": "Expired", "forged": "Invalid link", "unknown": "Unknown request",
              "closed": "No longer waiting"}
    return _page(titles.get(reason, "Refused"),
                 f"<h1 class='{html.escape(reason)}'>{titles.get(reason, 'Refused')}</h1><p>{html.escape(message)}</p>")
