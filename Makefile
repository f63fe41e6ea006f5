# Everything installs itself: a fresh machine needs only Python 3.11+, Node 20+ and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY_OK  := $(VENV)/.installed
NODE_OK := node_modules/.installed
LAYER_OK := build/layer/.built
CHROMIUM := /usr/bin/chromium
# The real AWS CLI, for tests that drive `local serve` as a user would; its own
# virtualenv, because awscli pins the exact botocore it ships with.
AWS_CLI := build/tools/awscli/bin/aws
# checkov in its own virtualenv: it pins many packages (boto3 among them) the project pins differently.
CHECKOV_VERSION := 3.3.30
CHECKOV_OK := build/tools/checkov/.installed-$(CHECKOV_VERSION)

.PHONY: demo test bench synth deploy layer checkov lint clean

demo: $(PY_OK)
	$(BIN)/al2023-migrate demo

test: $(PY_OK) $(NODE_OK) $(LAYER_OK) $(CHROMIUM) $(CHECKOV_OK) $(AWS_CLI)
	AWS_CLI="$(abspath $(AWS_CLI))" $(BIN)/pytest

bench: $(PY_OK)
	$(BIN)/python -m migrator.workstation.bench --all

# cdk.json runs `python3 app.py`: the virtualenv's bin first on PATH makes that the project's Python, so synth
# and deploy work from a fresh clone without activating anything.
CDK_PATH := PATH="$(abspath $(BIN)):$$PATH"

synth: $(PY_OK) $(NODE_OK) $(LAYER_OK)
	$(CDK_PATH) npx cdk synth --quiet

# make deploy CDK_ARGS='-c notification_emails=["platform@example.com"]'
deploy: $(PY_OK) $(NODE_OK) $(LAYER_OK)
	$(CDK_PATH) npx cdk deploy $(CDK_ARGS)

layer: $(LAYER_OK)

checkov: $(CHECKOV_OK)

$(CHECKOV_OK):
	$(PYTHON) -m venv build/tools/checkov
	build/tools/checkov/bin/pip install --quiet --upgrade pip
	build/tools/checkov/bin/pip install --quiet checkov==$(CHECKOV_VERSION)
	touch $@

$(PY_OK): pyproject.toml
	@echo "installing the Python dependencies into $(VENV) (first run only, 1-2 minutes)..."
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

$(NODE_OK): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(LAYER_OK): $(PY_OK) layers/requirements.txt layers/build.py $(shell find migrator -name '*.py' -not -path '*/workstation/*')
	$(BIN)/python layers/build.py build/layer
	touch $@

$(AWS_CLI):
	$(PYTHON) -m venv build/tools/awscli
	build/tools/awscli/bin/pip install --quiet 'awscli>=1.36,<2'

# The browser test drives Debian's Chromium (a test tool's own browser download cannot work here).
$(CHROMIUM):
	command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

clean:
	rm -rf $(VENV) node_modules build cdk.out
