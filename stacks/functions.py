"""The Lambda layer and one function per LambdaTask, each with its own least-privilege role."""

from __future__ import annotations

from aws_cdk import Duration, aws_iam as iam, aws_lambda as lambda_, aws_logs as logs
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from migrator import config, observability
from migrator.workflows import Access, LambdaTask, Workflow
from stacks import checkov
from stacks.encryption import EncryptionKey
from stacks.names import pascal_case
from stacks.permissions import ANY, NO_RESOURCE_LEVEL, TaskPermissions
from stacks.settings import FunctionVpc, Settings

RUNTIME = lambda_.Runtime.PYTHON_3_12  # layers/build.py builds wheels for this version
ARCHITECTURE = lambda_.Architecture.X86_64  # ... and this platform (manylinux2014_x86_64)
POWERTOOLS_ENV = {"POWERTOOLS_SERVICE_NAME": observability.SERVICE, "POWERTOOLS_METRICS_NAMESPACE": observability.NAMESPACE}


class TaskFunctions(Construct):
    """`functions[task.name]` is the function of that task."""

    def __init__(self, scope: Construct, construct_id: str, *, workflows: tuple[Workflow, ...],
                 settings: Settings, key: EncryptionKey, permissions: TaskPermissions,
                 environment: dict[str, str], access_environment: dict[Access, dict[str, str]] | None = None) -> None:
        super().__init__(scope, construct_id)
        self._key, self._permissions = key, permissions
        self._vpc: FunctionVpc | None = settings.vpc
        # Variables only the functions with that bundle get (the approval secret's ARN for APPROVALS).
        self._access_environment = access_environment or {}
        self._environment = {
            **environment,
            config.ENV_TAG_KEY: settings.tag_key,
            config.ENV_TAG_VALUE: settings.tag_value,
            **POWERTOOLS_ENV,
        }
        self.layer = lambda_.LayerVersion(
            self, "Layer", code=lambda_.Code.from_asset(str(settings.layer_dir)),
            compatible_runtimes=[RUNTIME], compatible_architectures=[ARCHITECTURE],
            description="migrator package, Powertools, Pydantic",
        )
        # One asset for every function: the lambdas/ folder, each function selected by its handler string.
        self._code = lambda_.Code.from_asset(str(config.LAMBDAS_DIR), exclude=["__pycache__", "*.pyc"])
        self.functions: dict[str, lambda_.Function] = {}
        for workflow in workflows:
            for task in workflow.tasks:
                if task.name not in self.functions:  # a task may serve several workflows (approvals.request)
                    self.functions[task.name] = self.create(self, task)

    def tasks_with(self, access: Access, workflows: tuple[Workflow, ...]) -> dict[str, lambda_.Function]:
        """The task functions whose bundles include `access`, by task name."""
        return {t.name: self.functions[t.name] for w in workflows for t in w.tasks if access in t.access}

    def create(self, parent: Construct, task: LambdaTask, environment: dict[str, str] | None = None, *,
               reserved_concurrency: int | None = None, asynchronous: str = "") -> lambda_.Function:
        """The function of `task` under `parent` (its handler string selects the task's function in the lambdas/
        asset), with the layer, runtime, tracing, log settings and environment every task function has, and its
        own role with exactly the task's access (also for the functions no workflow invokes: the approval API
        and the reminder). `asynchronous`: why an asynchronously invoked function needs no dead-letter queue."""
        scope = Construct(parent, pascal_case(task.name))
        log_group = logs.LogGroup(
            scope, "Logs", retention=logs.RetentionDays.ONE_MONTH, encryption_key=self._key.key,
        )
        role = iam.Role(scope, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                        description=f"{task.name}: {', '.join(sorted(a.value for a in task.access)) or 'no AWS access'}")
        log_group.grant_write(role)  # instead of the AWSLambdaBasicExecutionRole managed policy
        function = lambda_.Function(
            scope, "Function",
            description=task.description,
            code=self._code,
            handler=task.handler,
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            layers=[self.layer],
            role=role,
            log_group=log_group,
            tracing=lambda_.Tracing.ACTIVE,
            memory_size=256,
            timeout=Duration.seconds(60),  # tasks poll through the ASL, they never wait inside
            # The stack's key, not Lambda's AWS-managed one; Lambda decrypts through the grant it makes on the key
            # when the function is created, so the role needs no kms:Decrypt for it.
            environment_encryption=self._key.key,
            reserved_concurrent_executions=reserved_concurrency,
            environment={
                **self._environment,
                **{k: v for a in sorted(task.access, key=lambda a: a.value) for k, v in self._access_environment.get(a, {}).items()},
                **(environment or {}),
            },
        )
        NagSuppressions.add_resource_suppressions(function, [NagPackSuppression(
            id="AwsSolutions-L1",
            reason="Python 3.12 on purpose: layers/build.py builds the layer's binary wheels (pydantic-core) "
                   "for CPython 3.12; the runtime and the layer move to a newer Python together",
        )])
        wildcards = {
            ANY.nag_finding: "xray:PutTraceSegments, xray:PutTelemetryRecords (active tracing): " + NO_RESOURCE_LEVEL,
        }
        if Access.KUBERNETES in task.access and self._vpc:
            for finding, why in self._permissions.attach_to_vpc(function, role, self._vpc).items():
                wildcards[finding] = "; ".join(filter(None, [wildcards.get(finding), why]))
        else:
            checkov.skip(function, "CKV_AWS_117",
                         checkov.NO_VPC_CONFIGURED if Access.KUBERNETES in task.access else checkov.NO_VPC_RESOURCES)
        checkov.skip(function, "CKV_AWS_116", asynchronous or checkov.SYNC_INVOKE_NO_DLQ)
        if reserved_concurrency is None:
            checkov.skip(function, "CKV_AWS_115", checkov.UNRESERVED_CONCURRENCY)
        self._permissions.apply(role, task.access, wildcards=wildcards)
        return function

