"""`pgmcp check-sql`, through the command line's `main` in-process, and run as users run it (the
installed console script and `python -m pgmcp`, in a subprocess) where a real process is the point.

Files, directories and stdin; the baseline, `--policy policies/shop-analyst.yaml` and
`--config` with a live database (and an unreachable one); every output format parsed and
checked against its shape; exit codes 0/1/2; no traceback, ever.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from pgmcp.cli.main import main
from tests.conftest import TestDatabase

REPO = Path(__file__).resolve().parent.parent
PGMCP = Path(sys.executable).with_name("pgmcp")
SHOP = str(REPO / "policies" / "shop-analyst.yaml")

REPORT = """\
-- monthly report
SELECT id, total FROM orders;

SELECT name,
       password_hash FROM public.users;   SELECT count(*) FROM secrets;
SELECT 1 +;
SELECT $$a;b$$ AS text
"""

VIOLATION_SCHEMA = {
    "type": "object",
    "required": ["rule", "name", "message", "line", "column"],
    "properties": {
        "rule": {"type": "string", "pattern": "^PGM[0-9]{3}$"},
        "name": {"type": "string", "pattern": "^[a-z]+(-[a-z]+)*$"},
        "message": {"type": "string", "minLength": 1},
        "line": {"type": "integer", "minimum": 1},
        "column": {"type": "integer", "minimum": 1},
    },
}
JSON_SCHEMA = {
    "type": "object",
    "required": ["results", "summary"],
    "additionalProperties": False,
    "properties": {
        "results": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["path", "statement", "line", "allowed", "violations"],
                "properties": {
                    "path": {"type": "string"},
                    "statement": {"type": "integer", "minimum": 1},
                    "line": {"type": "integer", "minimum": 1},
                    "allowed": {"type": "boolean"},
                    "violations": {"type": "array", "items": VIOLATION_SCHEMA},
                    "rewritten_sql": {"type": "string"},
                },
            },
        },
        "summary": {
            "type": "object",
            "required": ["statements", "allowed", "denied"],
            "properties": {k: {"type": "integer", "minimum": 0} for k in ("statements", "allowed", "denied")},
        },
    },
}
# The parts of SARIF 2.1.0 that code-scanning tools read.
SARIF_SCHEMA = {
    "type": "object",
    "required": ["version", "runs"],
    "properties": {
        "version": {"const": "2.1.0"},
        "runs": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["tool", "results"],
                "properties": {
                    "tool": {
                        "type": "object",
                        "required": ["driver"],
                        "properties": {
                            "driver": {
                                "type": "object",
                                "required": ["name", "rules"],
                                "properties": {
                                    "rules": {
                                        "type": "array",
                                        "items": {"type": "object", "required": ["id", "shortDescription"]},
                                    }
                                },
                            }
                        },
                    },
                    "results": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["ruleId", "level", "message", "locations"],
                            "properties": {
                                "level": {"enum": ["none", "note", "warning", "error"]},
                                "message": {"type": "object", "required": ["text"]},
                                "locations": {
                                    "type": "array",
                                    "minItems": 1,
                                    "items": {
                                        "type": "object",
                                        "required": ["physicalLocation"],
                                        "properties": {
                                            "physicalLocation": {
                                                "type": "object",
                                                "required": ["artifactLocation", "region"],
                                                "properties": {
                                                    "region": {
                                                        "type": "object",
                                                        "required": ["startLine", "startColumn"],
                                                    }
                                                },
                                            }
                                        },
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}


def check_sql(*args: str, cwd: Path = REPO, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """`pgmcp check-sql ARGS` in-process, through the command line's `main` (exit code, stdout
    and stderr as a process would give them); the tests below that need a real process (the
    console script, `python -m pgmcp`, a closed pipe) start one."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.chdir(cwd), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
            pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys, "stdin", io.StringIO(stdin or ""))
        code = main(["check-sql", *args])
    result = subprocess.CompletedProcess(["pgmcp", "check-sql", *args], code, out.getvalue(), err.getvalue())
    assert "Traceback" not in result.stderr + result.stdout
    return result


@pytest.fixture()
def sql_tree(tmp_path: Path) -> Path:
    """reports/report.sql (mixed), reports/ok/b.sql and reports/ok/a.sql (allowed), notes.txt."""
    root = tmp_path / "reports"
    (root / "ok").mkdir(parents=True)
    (root / "report.sql").write_text(REPORT)
    (root / "ok" / "b.sql").write_text("SELECT id FROM public.users;\nSELECT now()")
    (root / "ok" / "a.sql").write_text("/* one */ SELECT 1")
    (root / "notes.txt").write_text("DROP TABLE users;")
    return root


def test_baseline_allows_plain_selects(sql_tree: Path) -> None:
    result = check_sql(str(sql_tree / "ok"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "3 statements in 2 files: 3 allowed, 0 denied (policy baseline)\n"


def test_text_output_reads_like_a_compiler(sql_tree: Path) -> None:
    result = check_sql("--policy", SHOP, "reports", cwd=sql_tree.parent)
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("reports/report.sql:5:8: PGM301 column-denied: column public.users.password_hash")
    assert lines[1].startswith("reports/report.sql:5:64: PGM201 table-denied: ")
    # where PostgreSQL points: after the `+`, as its "syntax error at end of input" does
    assert lines[2] == "reports/report.sql:6:11: PGM001 parse-error: syntax error at end of input"
    assert lines[-1] == "8 statements in 3 files: 5 allowed, 3 denied (policy shop-analyst)"


def test_json_output(sql_tree: Path) -> None:
    result = check_sql("--policy", SHOP, "--format", "json", "reports", cwd=sql_tree.parent)
    assert result.returncode == 1
    doc = json.loads(result.stdout)
    jsonschema.validate(doc, JSON_SCHEMA)
    by_where = {(r["path"], r["statement"]): r for r in doc["results"]}
    # directories: every *.sql below, sorted
    assert list(dict.fromkeys(r["path"] for r in doc["results"])) == [
        "reports/ok/a.sql", "reports/ok/b.sql", "reports/report.sql"
    ]
    first = by_where["reports/report.sql", 1]
    assert (first["line"], first["allowed"], first["violations"]) == (1, True, [])
    assert "_pgmcp_rf.tenant_id = 1" in first["rewritten_sql"] and "LIMIT 100" in first["rewritten_sql"]
    denied = by_where["reports/report.sql", 2]
    assert (denied["line"], denied["allowed"]) == (4, False)
    assert [(v["rule"], v["name"], v["line"], v["column"]) for v in denied["violations"]] == [
        ("PGM301", "column-denied", 5, 8)
    ]
    assert denied["violations"][0]["source"]["key"] == "columns.deny[0]"
    unparseable = by_where["reports/report.sql", 4]
    assert unparseable["allowed"] is False and unparseable["violations"][0]["rule"] == "PGM001"
    assert by_where["reports/report.sql", 5]["allowed"] is True  # the $$a;b$$ stayed whole
    assert doc["summary"] == {
        "files": 3, "statements": 8, "allowed": 5, "denied": 3, "policy": "shop-analyst", "live_schema": False
    }


def test_github_annotations(sql_tree: Path) -> None:
    result = check_sql("--policy", SHOP, "--format", "github", "reports/report.sql", cwd=sql_tree.parent)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    pattern = re.compile(r"^::error file=([^,]+),line=(\d+),col=(\d+),title=(PGM\d{3}) ([a-z-]+)::(.+)$")
    parsed = [pattern.match(line) for line in lines]
    assert all(parsed), lines
    assert [m.group(1, 2, 3, 4, 5) for m in parsed if m] == [
        ("reports/report.sql", "5", "8", "PGM301", "column-denied"),
        ("reports/report.sql", "5", "64", "PGM201", "table-denied"),
        ("reports/report.sql", "6", "11", "PGM001", "parse-error"),
    ]
    assert "\n" not in "".join(m.group(6) for m in parsed if m)


def test_sarif_output(sql_tree: Path) -> None:
    result = check_sql("--policy", SHOP, "--format", "sarif", "reports", cwd=sql_tree.parent)
    assert result.returncode == 1
    doc = json.loads(result.stdout)
    jsonschema.validate(doc, SARIF_SCHEMA)
    run = doc["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert {"PGM001", "PGM201", "PGM301", "PGM501"} <= {r["id"] for r in rules}
    found = []
    for res in run["results"]:
        assert rules[res["ruleIndex"]]["id"] == res["ruleId"]
        loc = res["locations"][0]["physicalLocation"]
        found.append((loc["artifactLocation"]["uri"], loc["region"]["startLine"], res["ruleId"]))
    assert found == [
        ("reports/report.sql", 5, "PGM301"), ("reports/report.sql", 5, "PGM201"), ("reports/report.sql", 6, "PGM001")
    ]


def test_stdin(tmp_path: Path) -> None:
    ok = check_sql("-", "--format", "json", cwd=tmp_path, stdin="SELECT 1;\nSELECT 2;\n")
    assert ok.returncode == 0
    doc = json.loads(ok.stdout)
    assert [(r["path"], r["statement"], r["line"]) for r in doc["results"]] == [("<stdin>", 1, 1), ("<stdin>", 2, 2)]
    refused = check_sql("-", cwd=tmp_path, stdin="SELECT 1; DELETE FROM t")
    assert refused.returncode == 1
    assert refused.stdout.startswith("<stdin>:1:11: PGM101 statement-not-allowed: ")


def test_unterminated_and_unparseable_statements_are_refused_results(tmp_path: Path) -> None:
    text = "SELECT FROM WHERE;\nSELECT 1; SELECT 'never closed; SELECT 2"
    result = check_sql("-", "--format", "json", cwd=tmp_path, stdin=text)
    assert result.returncode == 1
    doc = json.loads(result.stdout)
    assert [(r["statement"], r["allowed"]) for r in doc["results"]] == [(1, False), (2, True), (3, False)]
    assert doc["results"][2]["violations"][0]["rule"] == "PGM001"


def test_empty_input_is_allowed(tmp_path: Path) -> None:
    result = check_sql("-", cwd=tmp_path, stdin="-- nothing here\n;\n")
    assert (result.returncode, result.stdout) == (0, "0 statements in 1 file: 0 allowed, 0 denied (policy baseline)\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.sql"], "missing.sql: no such file or directory"),
        (["--policy", "shop-analyst", "--config", "pgmcp.yaml", "-"], "either --policy or --config"),
        (["--database", "shop", "-"], "--database needs --config"),
        (["--format", "xml", "-"], "invalid choice: 'xml'"),
        ([], "the following arguments are required: PATH"),
        (["--policy", "no-such-policy", "-"], "no-such-policy"),
    ],
)
def test_usage_errors_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    result = check_sql(*args, cwd=tmp_path, stdin="SELECT 1")
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_broken_policy_file_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text("name: broken\nextends: [baseline]\ntables:\n  \"public.*\": maybe\n")
    result = check_sql("--policy", "broken.yaml", "-", cwd=tmp_path, stdin="SELECT 1")
    assert result.returncode == 2
    assert re.search(r"broken\.yaml:4", result.stderr), result.stderr


def test_non_utf8_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "latin1.sql").write_bytes("SELECT 'café'".encode("latin-1"))
    result = check_sql("latin1.sql", cwd=tmp_path)
    assert result.returncode == 2
    assert "latin1.sql: not UTF-8" in result.stderr


def _config(tmp_path: Path, dsn: str) -> Path:
    path = tmp_path / "pgmcp.yaml"
    path.write_text(f"databases:\n  shop:\n    dsn: {dsn}\n    policies: [shop-analyst]\n")
    return path


@pytest.fixture(scope="module")
def shop_db(pg_database: TestDatabase) -> TestDatabase:
    pg_database.run_sql(
        "CREATE TABLE users (id int, name text, password_hash text);"
        "CREATE TABLE orders (id int, tenant_id int, total numeric);"
    )
    return pg_database


def test_config_with_live_schema_expands_stars(tmp_path: Path, shop_db: TestDatabase) -> None:
    (tmp_path / "q.sql").write_text("SELECT * FROM orders;\nSELECT * FROM users;\n")
    _config(tmp_path, shop_db.dsn)
    live = check_sql("--config", "pgmcp.yaml", "--database", "shop", "--format", "json", "q.sql", cwd=tmp_path)
    assert live.returncode == 1, live.stderr
    doc = json.loads(live.stdout)
    assert doc["summary"]["live_schema"] is True
    assert [(r["allowed"], [v["rule"] for v in r["violations"]]) for r in doc["results"]] == [
        (True, []), (False, ["PGM301"])  # orders has no denied column; users.password_hash is read by *
    ]
    offline = check_sql("--config", "pgmcp.yaml", "--offline", "--format", "json", "q.sql", cwd=tmp_path)
    doc = json.loads(offline.stdout)
    assert doc["summary"]["live_schema"] is False
    assert [r["violations"][0]["rule"] for r in doc["results"]] == ["PGM302", "PGM302"]


def test_config_with_unreachable_database_judges_without_schema(tmp_path: Path) -> None:
    (tmp_path / "q.sql").write_text("SELECT id FROM orders")
    _config(tmp_path, "postgresql://nobody@127.0.0.1:1/shop")
    result = check_sql("--config", "pgmcp.yaml", "q.sql", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "note: judging without the live schema" in result.stderr
    assert result.stdout.endswith("1 allowed, 0 denied (policy shop-analyst)\n")


def test_offline_needs_no_secrets(tmp_path: Path) -> None:
    (tmp_path / "q.sql").write_text("SELECT id FROM orders")
    path = _config(tmp_path, "postgresql://nobody@127.0.0.1:1/shop")
    path.write_text(path.read_text() + "    password: ${PGMCP_TEST_UNSET_PW}\n")
    offline = check_sql("--config", "pgmcp.yaml", "--offline", "q.sql", cwd=tmp_path)
    assert offline.returncode == 0, offline.stderr
    assert offline.stderr == ""
    live = check_sql("--config", "pgmcp.yaml", "q.sql", cwd=tmp_path)  # it would connect: needs it
    assert live.returncode == 2 and "PGMCP_TEST_UNSET_PW is not set" in live.stderr


def test_unknown_database_in_config(tmp_path: Path) -> None:
    _config(tmp_path, "postgresql://nobody@127.0.0.1:1/shop")
    result = check_sql("--config", "pgmcp.yaml", "--database", "nope", "-", cwd=tmp_path, stdin="SELECT 1")
    assert result.returncode == 2
    assert "no database 'nope'" in result.stderr


@pytest.mark.parametrize("argv", [["--debug", "check-sql", "-"], ["check-sql", "--debug", "-"]])
def test_debug_is_accepted_before_or_after_the_command(tmp_path: Path, argv: list[str]) -> None:
    out, err = io.StringIO(), io.StringIO()  # in-process: the parsing of argv is the point
    with contextlib.chdir(tmp_path), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
            pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys, "stdin", io.StringIO("SELECT 1"))
        code = main(argv)
    assert (code, err.getvalue()) == (0, "") and "1 allowed" in out.getvalue()


def test_a_reader_that_goes_away_is_not_an_internal_error(tmp_path: Path) -> None:
    # `pgmcp check-sql ... | head`: the output pipe has no reader when pgmcp writes.
    proc = subprocess.Popen(
        [str(PGMCP), "check-sql", "-"], cwd=tmp_path, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    proc.stdout.close()
    _, err = proc.communicate("SELECT 1", timeout=120)
    assert (proc.returncode, err) == (141, "")


def test_python_dash_m_pgmcp_is_the_same_command(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pgmcp", "check-sql", "-"], cwd=tmp_path, input="SELECT 1",
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0
    assert "1 allowed" in result.stdout
