"""`al2023-migrate local serve`: the local runtime as an AWS endpoint on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading

from migrator.workstation.local.approvals import approval_notice
from migrator.workstation.local.demo import rollout_input
from migrator.workstation.local.runtime import LocalRuntime
from migrator.workstation.local.scenario import DEFAULT_SEED, Scenario


class LocalServer:
    """The runtime plus moto's HTTP server on the same backends, so the AWS CLI
    and boto3 (`--endpoint-url`) reach the very state machines and fleet."""

    def __init__(self, scenario: Scenario, port: int, seed: int = DEFAULT_SEED, manual_approvals: bool = False):
        self.port = port
        self.manual_approvals = manual_approvals
        self.runtime = LocalRuntime(scenario, seed)
        self._server = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        # moto's interpreter calls back into the server on MOTO_PORT
        os.environ["MOTO_PORT"] = str(self.port)
        self.runtime.start()
        self.runtime.fidelity.people_answer = True
        if self.manual_approvals:
            self.runtime.leave_gates_to_people(lambda request: print(approval_notice(request, self.endpoint), flush=True))
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log on the console
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()

    def stop(self) -> None:
        if self._server:
            self._server.stop()
        self.runtime.stop()

    def banner(self) -> str:
        runtime = self.runtime
        lines = [f"local runtime for scenario {runtime.scenario.name} at {self.endpoint} (region {runtime.region})"]
        for name, arn in runtime.state_machines.items():
            lines.append(f"  state machine {name}: {arn}")
        for spec in runtime.scenario.auto_scaling_groups:
            lines.append(f"  Auto Scaling group {spec.name}: {spec.size} instances on AL2")
        example = dict(rollout_input(runtime.scenario.auto_scaling_groups[0], runtime.scenario)) if (
            runtime.scenario.auto_scaling_groups) else {"group_name": "NAME"}
        arn = runtime.state_machines.get("asg-rollout", "ARN")
        lines += [
            "try:",
            "  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION="
            + runtime.region,
            f"  aws --endpoint-url {self.endpoint} stepfunctions start-execution --state-machine-arn {arn} "
            f"--name try-1 --input '{json.dumps(example)}'",
            f"approval emails: `al2023-migrate approvals list --endpoint-url {self.endpoint}`; "
            f"their links open pages on {runtime.approval_api.base_url}",
            "gates: every one is left to you, its links printed here as it is reached" if self.manual_approvals
            else "gates: answered as the scenario says (--approvals manual leaves them to you)",
            "Ctrl-C stops it.",
        ]
        return "\n".join(lines)


def serve_forever(scenario: Scenario, port: int, seed: int = DEFAULT_SEED, manual_approvals: bool = False) -> int:
    server = LocalServer(scenario, port, seed, manual_approvals)
    server.start()
    print(server.banner(), flush=True)
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    try:
        stopped.wait()
    finally:
        server.stop()
    return 0
