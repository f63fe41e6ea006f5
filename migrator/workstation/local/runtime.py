"""The local runtime: the project's real state machines and handlers on moto.

One process holds everything: moto's AWS backends and Step Functions
interpreter, the handlers (invoked in-process by the Lambda fidelity fix), the
simulated clock, the scenario's fleet and the approval bot. `serve()` exposes
the same backends on 127.0.0.1 for the AWS CLI and boto3.
"""

from __future__ import annotations

import io
import json
import logging
import secrets
import os
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass

from migrator import clock as domain_clock
from migrator import config
from migrator.aws import client
from migrator.workstation.local.approval_server import ApprovalServer
from migrator.workstation.local.approvals import ApprovalBot
from migrator.workstation.local.clock import SimClock
from migrator.workstation.local.fidelity import Fidelity
from migrator.workstation.local.fleet import FAKE_CA, Fleet, build_fleet, publish_imds_v1_calls
from migrator.workstation.local.hosts import SimulatedHost
from migrator.workstation.local.karpenter import install_karpenter
from migrator.workstation.local.kubernetes import KubernetesApi, SimCluster
from migrator.workstation.local.scenario import DEFAULT_SEED, Scenario
from migrator.workflows import WORKFLOWS, Workflow, render_definition

ACCOUNT = "123456789012"
AUDIT_TABLE = "al2023-migration-audit"
IDEMPOTENCY_TABLE = "al2023-migration-idempotency"
TOPIC = "al2023-migration-notifications"
TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}
REMINDER_SWEEP_SECONDS = 900  # how often the deployed reminder rule runs
PRE_EXISTING_AGE = 86_400  # the scenario's fleet was created this long before the run


APPROVAL_SECRET = "al2023-migration-approvals"
_APPROVAL_KEY = secrets.token_hex(32)  # one per process: Powertools caches the secret across runtimes
_approval_server = None


def approval_server(clock_source) -> "ApprovalServer":
    """One approval API per process, shared by every runtime of it (the backends are global)."""
    global _approval_server
    if _approval_server is None:
        _approval_server = ApprovalServer(clock_source)
        _approval_server.start()
    _approval_server.clock = clock_source
    return _approval_server


def _handler_env(region: str, approvals_url: str) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        "MOTO_ACCOUNT_ID": ACCOUNT,
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": os.environ.get("AL2023_LOCAL_LOG_LEVEL", "CRITICAL"),
        config.ENV_AUDIT_TABLE: AUDIT_TABLE,
        config.ENV_IDEMPOTENCY_TABLE: IDEMPOTENCY_TABLE,
        config.ENV_NOTIFICATION_TOPIC: f"arn:aws:sns:{region}:{ACCOUNT}:{TOPIC}",
        config.ENV_TAG_KEY: config.DEFAULT_MIGRATION_TAG["key"],
        config.ENV_TAG_VALUE: config.DEFAULT_MIGRATION_TAG["value"],
        config.ENV_APPROVAL_SECRET: APPROVAL_SECRET,
        config.ENV_APPROVAL_BASE_URL: approvals_url,
    }


def load_handlers() -> dict[str, Callable]:
    """Each task's handler by its local function name; lambdas/ modules are imported once per process."""
    return {task.local_function_name: task.load() for workflow in WORKFLOWS for task in workflow.tasks}


@dataclass
class Run:
    target: str
    workflow: Workflow
    execution_arn: str
    started_sim: float
    wave: int | None = None  # started by the fleet state machine in this wave


class LocalRuntime:
    def __init__(self, scenario: Scenario, seed: int = DEFAULT_SEED):
        self.scenario = scenario
        self.seed = seed
        self.region = scenario.region
        self.clock = SimClock()
        self.fidelity: Fidelity | None = None
        self.kubernetes: KubernetesApi | None = None
        self.fleet: Fleet | None = None
        self.bot: ApprovalBot | None = None
        self.state_machines: dict[str, str] = {}
        self.runs: list[Run] = []
        self._mock = None
        self._saved_env: dict[str, str | None] = {}
        self._mailbox_stopped: threading.Event | None = None
        self.wall_started = time.monotonic()

    # --- lifecycle ---------------------------------------------------------------

    def __enter__(self) -> LocalRuntime:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def client(self, service: str):
        return client(service, self.region)

    def start(self) -> None:
        from moto import mock_aws

        self.approval_api = approval_server(self.clock)
        for key, value in _handler_env(self.region, self.approval_api.base_url).items():
            self._saved_env[key] = os.environ.get(key)
            os.environ[key] = value
        # the interpreter logs every failed state at ERROR; the history has it all
        logging.getLogger("moto.stepfunctions").setLevel(logging.CRITICAL)
        self._mock = mock_aws(config={"stepfunctions": {"execute_state_machine": True}})
        self._mock.start()
        from moto.moto_api._internal import mock_random

        mock_random.seed(self.seed)
        domain_clock.use(self.clock.now)
        self.fidelity = Fidelity(self.clock, self.scenario.timings, load_handlers(), self.scenario.faults,
                                 seed=self.seed)
        self.fidelity.install()
        for service in ("autoscaling", "ec2", "ssm", "elbv2", "cloudwatch", "dynamodb", "sns", "route53", "eks", "sts",
                        "stepfunctions", "secretsmanager"):
            client(service)  # as a warm Lambda container has them: no model loading mid-run
        self._create_infrastructure()
        self.fidelity.account, self.fidelity.region = ACCOUNT, self.region
        if self.scenario.eks_clusters:
            self.kubernetes = KubernetesApi()
            self.kubernetes.start()
            self.fidelity.eks.updates.clusters = self.kubernetes.clusters  # EKS's own update drains through it
            self.fidelity.ssm.publish_eks_ami_parameters({c.version for c in self.scenario.eks_clusters})
        with self.fidelity.ec2.launching_at(self.clock.now() - PRE_EXISTING_AGE):  # long running, booted and healthy
            self.fleet = build_fleet(self.scenario, self.client, config.DEFAULT_MIGRATION_TAG, self._make_cluster)
        self._prepare_clusters()
        self._list_hosted_zones()
        for name, group in self.fleet.groups.items():
            self.fidelity.autoscaling.original_versions[name] = group.original_version
            self.fidelity.autoscaling.group_specs[group.spec.target] = group.spec
        self.fidelity.autoscaling.pending_events = list(self.scenario.events)
        self.bot.on_request = self.fidelity.autoscaling.events_at  # events at a gate come with its request
        self._describe_hosts()
        for built in self.fleet.instances.values():
            self.fidelity.ec2.standalone_targets[built.instance_id] = built.spec.target
            self.fidelity.ec2.original_volumes |= set(built.volume_ids.values())
            self.fidelity.observations.address_checks.append(lambda built=built: self.address_problem(built))
        for built in self.fleet.instances.values():
            root = self.fidelity.ec2._backend().get_instance_by_id(built.instance_id).root_device_name
            data = sorted(d for d in built.volume_ids if d != root)
            self.fidelity.writes.track(built.spec.target, built.spec.writes_per_second, data[0] if data else None)
        by_target = {built.spec.target: built for built in self.fleet.instances.values()}
        self.fidelity.ec2.address_holder = lambda target: getattr(
            self._address_instance(by_target[target])[0], "id", None) if target in by_target else None
        self.clock.before_jump(self.bot.poll)
        self._remind_every(REMINDER_SWEEP_SECONDS)
        self.clock.start_ticking()

    def _describe_hosts(self) -> None:
        """What the scenario says runs on each host, for the simulated SSM and CloudWatch."""
        for built in self.fleet.instances.values():
            if built.spec.host:
                self.fidelity.ssm.hosts[built.instance_id] = SimulatedHost(built.spec.host)
        autoscaling, cloudwatch = self.client("autoscaling"), self.client("cloudwatch")
        for name, group in self.fleet.groups.items():
            if group.spec.host:
                self.fidelity.ssm.group_hosts[name] = SimulatedHost(group.spec.host)
                described = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])
                for instance in described["AutoScalingGroups"][0]["Instances"]:
                    publish_imds_v1_calls(cloudwatch, instance["InstanceId"], group.spec.host.imds_v1_calls)

    def leave_gates_to_people(self, announce: Callable[[dict], None]) -> None:
        """`--approvals manual`: no gate is answered by the scenario. Each approval email
        goes to `announce` as it arrives (the mailbox is read every half second of real
        time), and the clock never jumps over a gate while a person reads it."""
        self.fidelity.people_answer = True
        self.bot.announce = announce
        stopped = self._mailbox_stopped = threading.Event()

        def read_mailbox():
            while not stopped.wait(0.5):
                self.bot.poll()

        threading.Thread(target=read_mailbox, name="mailbox", daemon=True).start()

    def _list_hosted_zones(self) -> None:
        """As a deployment's cdk.json dns_hosted_zone_ids lists the zones its DNS cutovers change: the zones of the
        scenario's fleet (migrator/preflight_checks.py refuses any other zone in pre-flight)."""
        from migrator.settings import settings

        zones = sorted({b.zone_id for b in self.fleet.instances.values() if b.zone_id})
        self._saved_env.setdefault(config.ENV_DNS_HOSTED_ZONES, os.environ.get(config.ENV_DNS_HOSTED_ZONES))
        os.environ[config.ENV_DNS_HOSTED_ZONES] = ",".join(zones)
        settings.cache_clear()

    def _remind_every(self, seconds: float) -> None:
        """The scheduled reminder Lambda's sweep, on the simulated clock."""
        from migrator.settings import settings
        from migrator.wiring import approvals

        def sweep():
            approvals().remind(settings().approval_reminder_seconds)  # as lambdas/approvals_reminder does
            self._remind_every(seconds)

        self.clock.call_later(seconds, sweep, soft=True)  # rides along: never what moves the clock

    def _make_cluster(self, spec) -> SimCluster:
        timings = self.scenario.timings
        sim = SimCluster(spec.name, spec.version, self.clock, timings.pod_termination,
                         nodegroups=lambda: self.fidelity.eks.nodegroup_nodes(spec.name), pod_start=timings.pod_start,
                         instance_nodes=lambda: self.fidelity.node_join.instance_nodes(spec.name))
        karpenter = install_karpenter(spec, sim, self.fidelity, self.clock.now() - PRE_EXISTING_AGE)
        sim.blocked_pdbs = lambda: (self.fidelity.eks.blocked_pdbs(sim) | self.fidelity.node_join.blocked_pdbs(sim)
                                    | (karpenter.blocked_pdbs() if karpenter else set()))
        self.kubernetes.clusters[spec.name] = sim
        return sim

    def _prepare_clusters(self) -> None:
        """The scenario's clusters as they are before the run: their endpoint is the
        simulated API server, their node groups long ACTIVE, their pods settled."""
        from moto.eks.models import eks_backends

        backend = eks_backends[ACCOUNT][self.region]
        for spec in self.scenario.eks_clusters:
            cluster = backend.clusters[spec.name]
            cluster.endpoint = self.kubernetes.endpoint(spec.name)
            cluster.certificate_authority = {"data": FAKE_CA}
            self.fidelity.eks.addons[spec.name] = dict(spec.addons)
            self.fidelity.eks.pod_identities[spec.name] = {
                (w.namespace, w.service_account) for w in spec.workloads if w.aws_identity == "pod_identity"}
            for group in spec.nodegroups:
                cluster.nodegroups[group.name].sim_created_at = self.clock.now() - PRE_EXISTING_AGE
                runtime = "docker://20.10.25" if group.container_runtime == "docker" else "containerd://1.7.22"
                self.fidelity.eks.nodegroup_runtime[(spec.name, group.name)] = runtime
            self.kubernetes.clusters[spec.name].settle()

    def stop(self) -> None:
        if self._mailbox_stopped:
            self._mailbox_stopped.set()
        self.clock.stop()
        if self.kubernetes:
            self.kubernetes.stop()
        if self.fidelity:
            self.fidelity.uninstall()
        domain_clock.use(None)
        if self._mock:
            self._mock.stop()
            self._mock = None
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    def _create_infrastructure(self) -> None:
        dynamodb = self.client("dynamodb")
        dynamodb.create_table(
            TableName=AUDIT_TABLE, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "S"}],
        )
        dynamodb.create_table(
            TableName=IDEMPOTENCY_TABLE, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        )
        self.client("secretsmanager").create_secret(Name=APPROVAL_SECRET, SecretString=_APPROVAL_KEY)
        sns, sqs = self.client("sns"), self.client("sqs")
        topic = sns.create_topic(Name=TOPIC)["TopicArn"]
        queue = sqs.create_queue(QueueName="al2023-migration-approvals")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
        self.bot = ApprovalBot(self.clock, self.scenario.approvals, sqs, self.client("stepfunctions"), queue)

        iam = self.client("iam")
        trust = json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"Service": ["lambda.amazonaws.com", "states.amazonaws.com"]},
             "Action": "sts:AssumeRole"}]})
        role = iam.create_role(RoleName="al2023-migration-local", AssumeRolePolicyDocument=trust)["Role"]["Arn"]
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as archive:
            archive.writestr("handler.py", "# runs in-process in the local runtime\n")
        awslambda, sfn = self.client("lambda"), self.client("stepfunctions")
        functions: dict[str, str] = {}
        for workflow in WORKFLOWS:
            values = {"NotificationTopicArn": topic}
            values |= {child.arn_substitution: self.state_machines[child.name] for child in workflow.children}
            for task in workflow.tasks:
                if task.local_function_name not in functions:  # a task shared by workflows: one function
                    functions[task.local_function_name] = awslambda.create_function(
                        FunctionName=task.local_function_name, Runtime="python3.12", Role=role,
                        Handler="handler.handler", Code={"ZipFile": code.getvalue()}, Description=task.description,
                    )["FunctionArn"]
                values[task.substitution] = functions[task.local_function_name]
            self.state_machines[workflow.name] = sfn.create_state_machine(
                name=workflow.name, definition=render_definition(workflow, values), roleArn=role,
            )["stateMachineArn"]

    # --- running -----------------------------------------------------------------

    def start_execution(self, workflow: Workflow, target: str, payload: dict) -> Run:
        attempt = sum(1 for r in self.runs if r.target == target) + 1
        name = f"{target.replace('/', '-')}-{attempt}"[:80]
        arn = self.client("stepfunctions").start_execution(
            stateMachineArn=self.state_machines[workflow.name], name=name, input=json.dumps(payload)
        )["executionArn"]
        run = Run(target, workflow, arn, self.clock.now())
        self.runs.append(run)
        return run

    def status(self, run: Run) -> dict:
        return self.client("stepfunctions").describe_execution(executionArn=run.execution_arn)

    def execution_arn(self, workflow: Workflow, name: str) -> str:
        return self.state_machines[workflow.name].replace(":stateMachine:", ":execution:") + f":{name}"

    def wait(self, runs: list[Run], on_change: Callable[[Run, str], None] | None = None,
             timeout: float = 1800) -> dict[str, dict]:
        """Block (real time) until every run has ended; `on_change` sees each status change."""
        seen: dict[str, str] = {}
        results: dict[str, dict] = {}
        deadline = time.monotonic() + timeout
        while len(results) < len(runs):
            for run in runs:
                if run.execution_arn in results:
                    continue
                described = self.status(run)
                status = described["status"]
                if on_change and seen.get(run.execution_arn) != status:
                    on_change(run, status)
                seen[run.execution_arn] = status
                if status in TERMINAL:
                    results[run.execution_arn] = described
            if time.monotonic() > deadline:
                raise TimeoutError(f"executions still running after {timeout}s real time")
            time.sleep(0.02)
        self.bot.poll()  # collect the last notifications
        return results

    def _address_instance(self, built):
        """The instance the target's Elastic IP or DNS record points at, read straight from the
        backends (this runs inside moto calls), and how to name that address."""
        from moto.ec2.models import ec2_backends
        from moto.route53.models import route53_backends

        ec2 = ec2_backends[ACCOUNT][self.region]
        if built.allocation_id:
            address = ec2.address_by_allocation([built.allocation_id])[0]
            return address.instance, f"Elastic IP {built.public_ip} of {built.spec.target}"
        if built.zone_id:
            zone = route53_backends[ACCOUNT]["global"].get_hosted_zone(built.zone_id)
            values = [r for rs in zone.get_record_sets("A", built.record_name) if rs.name.rstrip(".") == built.record_name
                      for r in rs.records]
            value = values[0] if values else None
            value = value.get("Value") if isinstance(value, dict) else value
            instance = next((i for i in ec2.all_instances() if value in (i.private_ip, i.public_ip)), None)
            return instance, f"record {built.record_name} of {built.spec.target}"
        return None, None

    def address_problem(self, built, at_the_end: bool = False) -> str | None:
        """Whether the target's Elastic IP or DNS record points at a running instance. During a
        write freeze (the final sync, a carry-back) it names a stopped one by design, not at the end."""
        instance, where = self._address_instance(built)
        if where is None:
            return None
        if built.spec.target in self.fidelity.ec2.frozen:
            return f"{built.spec.target}: writes still frozen" if at_the_end else None
        if instance is None or instance.state != "running":
            state = instance.state if instance else "nothing"
            return f"{where} points at {instance.id if instance else 'no instance'} ({state})"
        return None

    def history(self, run: Run) -> list[dict]:
        pages = self.client("stepfunctions").get_paginator("get_execution_history").paginate(
            executionArn=run.execution_arn, PaginationConfig={"PageSize": 1000})
        return [event for page in pages for event in page["events"]]
