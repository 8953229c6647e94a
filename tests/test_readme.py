"""The README's set-up commands are the ones CI runs, and the README names what really exists."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bash_blocks(text):
    blocks, inside, cur = [], False, []
    for line in text.splitlines():
        if line.strip().startswith("```bash"):
            inside, cur = True, []
        elif line.strip() == "```" and inside:
            inside = False
            blocks.append("\n".join(cur).strip())
        elif inside:
            cur.append(line)
    return blocks


def test_ci_runs_the_readme_test_command_verbatim():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    test_cmds = [b for b in _bash_blocks(readme) if "pytest" in b]
    assert len(test_cmds) == 1, test_cmds
    assert test_cmds[0] in ci.splitlines()


def test_readme_main_command_installs_the_cpu_torch_and_runs_verify():
    readme = (ROOT / "README.md").read_text()
    main = [b for b in _bash_blocks(readme) if "scorebench verify" in b and "pip install" in b]
    assert len(main) == 1
    assert '"torch==2.13.0"' in main[0]
