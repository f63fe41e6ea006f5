#!/usr/bin/env python3
"""CDK entry point (`npx cdk synth`); configuration lives in cdk.json's context."""

import sys

from aws_cdk import App

from stacks import SettingsError, build_stack


def main() -> None:
    app = App()
    try:
        build_stack(app)
    except SettingsError as error:
        sys.exit(str(error))  # one line, not a jsii stack trace
    app.synth()


if __name__ == "__main__":
    main()
