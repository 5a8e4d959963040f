"""The result tables of the README and docs/ are generated from the committed results, never typed."""

import pytest

from experiments import readme


def test_every_table_has_one_document_and_each_document_holds_its_tables():
    placed = [name for names in readme.DOCUMENTS.values() for name in names]
    assert sorted(placed) == sorted(readme.SECTIONS), "each generated table belongs to exactly one document"
    for document, names in readme.DOCUMENTS.items():
        text = readme.ROOT.joinpath(document).read_text()
        for name in names:
            assert f"<!-- generated: {name} -->" in text, (document, name)


@pytest.mark.parametrize("document", sorted(readme.DOCUMENTS))
def test_the_tables_are_what_the_committed_results_give(document):
    text = readme.ROOT.joinpath(document).read_text()
    assert readme.regenerate(text) == text, f"{document} is stale: run python -m experiments.readme"


def test_the_readme_table_is_the_papers_in_percent_with_the_papers_success_beside():
    table = readme.paper_table()
    header = table.splitlines()[0]
    assert header.startswith("| policy | user | success | inform F1 | match | turns | n | paper's success |")
    assert "| 90.4 |" in table  # VRB as Park et al. report it
    assert "| 75.0 |" in table  # the human corpus as the paper reports it
    words = " ".join(table.split())
    assert "Student-t" in words and "1000 test dialogues (seeds 0–999)" in words
    assert "experiments/results/paper_table/README.md" in words


def test_the_check_covers_every_document_by_default(capsys):
    assert readme.main(["--check"]) == 0
    out = capsys.readouterr().out
    for document in readme.DOCUMENTS:
        assert f"{document}: up to date" in out


def test_a_marker_for_an_unknown_table_is_refused(tmp_path):
    stale = tmp_path / "README.md"
    stale.write_text("<!-- generated: nosuch -->\nold\n<!-- end: nosuch -->\n")
    assert readme.main(["--readme", str(stale), "--check"]) == 2
    ok = tmp_path / "OK.md"
    ok.write_text("text\n<!-- generated: learning -->\nold\n<!-- end: learning -->\nmore\n")
    assert readme.main(["--readme", str(ok), "--check"]) == 1
    assert readme.main(["--readme", str(ok)]) == 0 and "± " in ok.read_text()
    assert ok.read_text().startswith("text\n") and ok.read_text().endswith("more\n")
    assert readme.main(["--readme", str(ok), "--check"]) == 0
