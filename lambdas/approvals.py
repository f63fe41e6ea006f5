"""Approvals by signed link, three Lambda functions: `approvals.request` (the task of every approval gate),
`approvals.api` (the links' API: GET shows a confirmation page and changes nothing, only the form's POST
decides) and `approvals.reminder` (scheduled)."""

from urllib.parse import parse_qs

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types

from migrator.approvals import pages
from migrator.approvals.core import APPROVER_MAX, PAST, LinkRefused
from migrator.approvals.events import ApprovalRequest
from migrator.observability import logger, tracer
from migrator.settings import settings
from migrator.wiring import approvals, audit_log, task


@task(ApprovalRequest)
def request(event: ApprovalRequest, context):
    """Every approval gate: store the task token under a random id, email signed links (never the token)."""
    store = approvals()
    result = store.request(event.task_token, event.gate, event.target, event.execution, event.evidence,
                           event.timeout_seconds, store.email_subscribers())
    audit_log(event.execution, event.target).record("approval-requested", gate=event.gate, **result)
    return result


@logger.inject_lambda_context(clear_state=True)
def reminder(event, context):
    """Scheduled: one reminder for each pending approval that expires soon."""
    return {"reminded": approvals().remind(settings().approval_reminder_seconds)}


# --- the approval API -------------------------------------------------------------------------------------

app = APIGatewayRestResolver()
HTML = content_types.TEXT_HTML
HEADERS = {"Cache-Control": "no-store", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
           "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"}


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)  # the page carries the signed form: never in a trace
def api(event, context):
    return app.resolve(event, context)


def _identity() -> str | None:
    """The authenticated caller when the API uses IAM or Cognito (cdk.json `approval_auth`)."""
    context = app.current_event.request_context
    claims = (context.authorizer.claims or {}) if context.authorizer else {}
    return claims.get("email") or claims.get("cognito:username") or context.identity.user_arn or None


def _refused(error: LinkRefused) -> Response:
    status = {"used": 409, "closed": 409, "expired": 410, "unknown": 404}.get(error.reason, 403)
    return Response(status, HTML, pages.refused(error.reason, str(error)), HEADERS)


@app.get("/approvals/<approval_id>")
def confirm(approval_id: str):
    query = app.current_event.query_string_parameters or {}
    try:
        request = approvals().check_link(approval_id, query.get("d", ""), query.get("e", ""), query.get("s", ""))
    except LinkRefused as error:
        return _refused(error)
    page = pages.confirmation(request, query["d"], query["e"], query["s"], _identity())
    return Response(200, HTML, page, HEADERS)


@app.post("/approvals/<approval_id>")
def decide(approval_id: str):
    form = {k: v[0] for k, v in parse_qs(app.current_event.decoded_body or "").items()}
    store = approvals()
    try:
        request = store.check_link(approval_id, form.get("d", ""), form.get("e", ""), form.get("s", ""))
        approver = _identity() or form.get("approver", "").strip()
        if not approver or len(approver) > APPROVER_MAX:
            return Response(400, HTML, pages.refused(
                "forged", f"Say who you are, in at most {APPROVER_MAX} characters: the approver is recorded."), HEADERS)
        identity = app.current_event.request_context.identity
        record = store.decide(approval_id, form["d"], approver, identity.source_ip or "", identity.user_agent or "",
                              form.get("comment", ""))
    except LinkRefused as error:
        return _refused(error)
    audit_log(request["execution"], request["target"]).record(f"approval-{PAST[record['decision']]}", gate=request["gate"],
                                                              **record)
    return Response(200, HTML, pages.outcome(record, request), HEADERS)
