"""The README's input tables are generated from the input models' fields (migrator/workstation/docs.py)."""

from migrator.workstation import docs


def test_readme_input_tables_are_current():
    current = docs.README.read_text()
    assert docs.render(current) == current, docs.STALE


def test_every_input_model_has_its_table_in_the_readme():
    assert {match.group(2) for match in docs.TABLE.finditer(docs.README.read_text())} == set(docs.MODELS)


def test_a_hand_edited_table_is_regenerated_and_check_passes_when_current():
    current = docs.README.read_text()
    assert docs.render(current.replace("| 86400 (1 day) |", "| 3600 (1 h) |")) == current
    assert docs.main(["--check"]) == 0
