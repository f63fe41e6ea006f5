"""Lambda: the real handlers, invoked in-process instead of in Docker."""

from __future__ import annotations

import datetime as dt
import json
import sys
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from aws_lambda_powertools.utilities.parameters import base as parameters_base
from moto.awslambda.models import LambdaFunction

from migrator.workstation.local.fidelity.context import Context


@dataclass
class LambdaContext:
    """What Powertools reads from the Lambda context object."""

    function_name: str
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = ""
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/local"
    log_stream_name: str = "local"

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


class Lambda:
    def __init__(self, ctx: Context, handlers: dict[str, Callable]):
        self.ctx = ctx
        self.handlers = handlers  # function name -> handler(event, context)
        self.output: deque[str] = deque(maxlen=10_000)  # what Lambda would send to CloudWatch Logs

    def install(self) -> None:
        ctx, handlers = self.ctx, self.handlers

        # AWS: Lambda runs the handler, and an exception becomes the error name and
        # message Step Functions' Retry and Catch see; moto: runs it in Docker.
        def invoke(function, event=None):
            handler = handlers.get(function.function_name)
            if handler is None:
                return json.dumps({"errorType": "ResourceNotFoundException",
                                   "errorMessage": f"no local handler for {function.function_name}"}), True, ""
            payload = json.loads(event) if isinstance(event, (str, bytes)) and event else (event or {})
            context = LambdaContext(function.function_name, invoked_function_arn=function.function_arn)
            with ctx.clock.busy():
                ctx.handler_thread.active = True
                try:
                    return json.dumps(handler(payload, context), default=str), False, ""
                except Exception as error:  # the error reaches the state machine
                    body = {"errorType": type(error).__name__, "errorMessage": str(error)}
                    return json.dumps(body), True, ""
                finally:
                    ctx.handler_thread.active = False

        ctx.patches.patch(LambdaFunction, "_invoke_lambda", invoke)

        # AWS: a warm container keeps what Powertools cached (the approval secret)
        # for its max_age; in-process the cache aged in real time, so a slower
        # machine made more calls. Here it ages with simulated time.
        clock = ctx.clock

        class SimulatedDatetime(dt.datetime):
            @classmethod
            def now(cls, tz=None):
                return cls.fromtimestamp(clock.now(), tz)

        ctx.patches.patch(parameters_base, "datetime", SimulatedDatetime)
        # Each run starts with cold containers: nothing cached by an earlier run of this
        # process (its secret fetch would otherwise be missing from this run's calls).
        parameters_base.clear_caches()
        ctx.patches.patch(sys, "stdout", _HandlerOutput(self, sys.stdout))


class _HandlerOutput:
    """AWS: what a handler prints (Powertools' EMF metrics, logs) goes to CloudWatch
    Logs; here it is kept as Lambda's log output instead of mixing into the CLI's."""

    def __init__(self, service: Lambda, stream):
        self._service = service
        self._stream = stream

    def write(self, text: str) -> int:
        if self._service.ctx.in_handler():
            if text.strip():
                self._service.output.append(text)
            return len(text)
        return self._stream.write(text)

    def __getattr__(self, name):
        return getattr(self._stream, name)
