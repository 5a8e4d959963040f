"""The README's result tables are generated from the committed results, never typed."""

from experiments import readme


def test_the_readme_tables_are_what_the_committed_results_give(tmp_path):
    text = readme.ROOT.joinpath("README.md").read_text()
    for name in readme.SECTIONS:
        if name != "benchmarks":
            assert f"<!-- generated: {name} -->" in text, name
    assert readme.regenerate(text) == text, "README is stale: run python -m experiments.readme"


def test_a_marker_for_an_unknown_table_is_refused(tmp_path):
    stale = tmp_path / "README.md"
    stale.write_text("<!-- generated: nosuch -->\nold\n<!-- end: nosuch -->\n")
    assert readme.main(["--readme", str(stale), "--check"]) == 2
    ok = tmp_path / "OK.md"
    ok.write_text("<!-- generated: cross -->\nold\n<!-- end: cross -->\n")
    assert readme.main(["--readme", str(ok), "--check"]) == 1
    assert readme.main(["--readme", str(ok)]) == 0 and "± " in ok.read_text()
    assert readme.main(["--readme", str(ok), "--check"]) == 0
