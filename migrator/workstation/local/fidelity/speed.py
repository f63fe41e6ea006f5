"""Where moto repeats costly work on every call, the local runtime does it once.

None of these changes an answer: each caches something moto rebuilds although it
never changes for a given input (a parsed definition, a parsed JSONPath, a class's
method names, an SDK client). Together they were about a quarter of a rehearsal's
CPU time (`make bench` says where the time goes).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable

Patch = Callable[[object, str, object], None]


def install(patch: Patch) -> None:
    _parse_definitions_once(patch)
    _parse_json_paths_once(patch)
    _list_response_methods_once(patch)
    _share_interpreter_clients(patch)


@functools.cache
def _cached(function: Callable) -> Callable:
    """One cache per cached function and process: every runtime of the process shares it."""
    return functools.lru_cache(maxsize=1024)(function)


def _parse_definitions_once(patch: Patch) -> None:
    """moto parses the ASL with ANTLR at every CreateStateMachine and StartExecution
    (half a second each); the parsed program keeps no execution state (that lives in
    the execution's environment), so executions of one definition share it."""
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    patch(AmazonStateLanguageParser, "parse", staticmethod(_cached(AmazonStateLanguageParser.parse)))


def _parse_json_paths_once(patch: Patch) -> None:
    """Every InputPath, ResultPath and Choice builds a new JSONPath parser (PLY lexer
    and tables) for its path; a parsed path is immutable."""
    from jsonpath_ng import ext

    from moto.stepfunctions.parser.asl.utils import json_path

    parse = _cached(ext.parse)
    patch(ext, "parse", parse)
    patch(json_path, "parse", parse)


def _list_response_methods_once(patch: Patch) -> None:
    """moto lists a response class's methods with `inspect.getmembers` on every request."""
    from moto.core import responses, utils

    patch(responses, "method_names_from_class", _cached(utils.method_names_from_class))


def _share_interpreter_clients(patch: Patch) -> None:
    """The interpreter builds a new boto3 client for every Lambda task and service
    integration; clients are thread-safe and moto ignores their credentials, so one
    per service, region and endpoint serves every task."""
    from moto.core.models import botocore_stubber
    from moto.settings import moto_server_port
    from moto.stepfunctions.parser.asl.utils import boto_client

    original = boto_client.boto_client_for

    @functools.lru_cache(maxsize=None)
    def shared(region: str, service: str, intercepting: bool, port: int):
        return original(region, service)

    def boto_client_for(region: str, service: str, state_credentials=None):
        return shared(region, service, botocore_stubber.enabled, moto_server_port())

    for module in list(sys.modules.values()):
        name = getattr(module, "__name__", "") or ""
        if name.startswith("moto.stepfunctions.parser") and module.__dict__.get("boto_client_for") is original:
            patch(module, "boto_client_for", boto_client_for)
