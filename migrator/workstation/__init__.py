"""What runs on a workstation and never in Lambda: the `al2023-migrate` CLI, the local
runtime that rehearses on moto (`local/`), `make bench` and the README generator.
Everything else in `migrator/` ships in the Lambda layer (layers/build.py leaves this
package out)."""
