"""README.md and docs/*.md stay true to the code they describe.

- Every `dfbench ...` command, in a shell code block or in inline code, parses with the command
  line's own parser (``dfbench.cli.parser.build_parser``), without running; `dfbench worker`'s
  options are the local worker's own, read from its ``--help``.
- Every `make ...` line names targets the Makefile has, and what make would run for it
  (``make -n``, which runs nothing) is a dfbench command that parses.
- Every Python block compiles, and each ``dfbench.X(...)`` call it makes names a public function
  or record and fits its signature.
- Every relative link reaches a file, and its ``#anchor`` a heading of that file.
- README.md stays a quickstart (at most 200 lines) that links every page of docs/.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import io
import os
import re
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import dfbench
from dfbench.cli.parser import build_parser
from dfbench.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 200

_FENCE = re.compile(r"^\s*```(\w*)\s*$")
_SHELL_LANGUAGES = {"", "shell", "sh", "bash", "console"}
_INLINE = re.compile(r"`([^`]+)`")
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


@dataclass(frozen=True)
class Snippet:
    """A command or block found in a page, with where it is (for the failure message)."""

    page: Path
    line: int
    text: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


@dataclass(frozen=True)
class Page:
    path: Path
    blocks: list[tuple[str, Snippet]]  # (language, the block's text)
    prose: list[tuple[int, str]]  # lines outside code blocks, numbered from 1


def read_page(path: Path, text: str | None = None) -> Page:
    text = path.read_text() if text is None else text
    blocks: list[tuple[str, Snippet]] = []
    prose: list[tuple[int, str]] = []
    language: str | None = None
    body: list[str] = []
    start = 0
    for number, line in enumerate(text.splitlines(), 1):
        fence = _FENCE.match(line)
        if language is None and fence:
            language, body, start = fence.group(1).lower(), [], number + 1
        elif language is not None and line.strip() == "```":
            blocks.append((language, Snippet(path, start, "\n".join(body))))
            language = None
        elif language is not None:
            body.append(line)
        else:
            prose.append((number, line))
    assert language is None, f"{path.relative_to(ROOT)}: a code block opened at line {start - 1} is never closed"
    return Page(path, blocks, prose)


def shell_commands(page: Page) -> list[Snippet]:
    """Each command of the page's shell blocks (continuation lines joined) and each inline code
    span, in the page's order."""
    return sorted(_shell_commands(page), key=lambda snippet: snippet.line)


def _shell_commands(page: Page) -> Iterator[Snippet]:
    for language, block in page.blocks:
        if language not in _SHELL_LANGUAGES:
            continue
        lines = block.text.split("\n")
        index = 0
        while index < len(lines):
            first, command = index, lines[index]
            while command.endswith("\\") and index + 1 < len(lines):
                index += 1
                command = command[:-1] + " " + lines[index]
            index += 1
            if command.strip():
                yield Snippet(page.path, block.line + first, command.strip())
    # Inline code may wrap across lines of prose: spans are read from the prose joined.
    numbers = [number for number, _ in page.prose]
    joined = "\n".join(line for _, line in page.prose)
    for span in _INLINE.finditer(joined):
        line = numbers[joined.count("\n", 0, span.start())]
        yield Snippet(page.path, line, " ".join(span.group(1).split()))


def words_of(command: str) -> list[str]:
    return shlex.split(command, comments=True)


def local_worker_options() -> set[str]:
    """The options `dfbench worker` accepts: everything after `worker` goes to the local worker's
    parser (dfbench.worker.local), whose --help lists them."""
    from dfbench.worker import local

    shown = io.StringIO()
    with contextlib.redirect_stdout(shown), pytest.raises(SystemExit) as exit:
        local.main(["--help"], prog="dfbench worker")
    assert exit.value.code == 0
    return set(re.findall(r"--[a-z][a-z0-9-]*", shown.getvalue()))


def parse_problem(arguments: list[str], worker_options: set[str]) -> str | None:
    """Why the dfbench command line refuses ``arguments`` (None when it parses); nothing runs."""
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            parsed = build_parser().parse_args(arguments)
    except ConfigError as error:
        return str(error)
    except SystemExit as exit:  # --help and --version print and exit 0
        return None if exit.code in (0, None) else f"exit {exit.code}"
    if parsed.command == "worker":
        unknown = [word.split("=")[0] for word in parsed.arguments
                   if word.startswith("--") and word.split("=")[0] not in worker_options]
        if unknown:
            return f"dfbench worker: unknown option(s) {unknown} (it takes {sorted(worker_options)})"
    return None


def dfbench_arguments(words: list[str]) -> list[str] | None:
    """The arguments of a dfbench command line (`dfbench` or `.venv/bin/dfbench`), else None."""
    # `/dfbench run ...` is a pull request comment's syntax (docs/github.md), not a program's path.
    if words and (words[0] == "dfbench" or (words[0].endswith("/dfbench") and words[0] != "/dfbench")):
        return words[1:]
    return None


def make_expansion(arguments: list[str]) -> tuple[str | None, list[list[str]]]:
    """What `make ARGUMENTS` would run, without running it (make -n): an error, or the argument
    lists of the dfbench commands among its lines."""
    environment = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    shown = subprocess.run(["make", "-n", "-s", "-C", str(ROOT), *arguments], capture_output=True, text=True,
                           env=environment, check=False)
    if shown.returncode != 0:
        return (shown.stderr.strip().splitlines() or [f"make exited {shown.returncode}"])[-1], []
    commands = []
    for line in shown.stdout.replace("\\\n", " ").splitlines():
        if "dfbench " not in line:  # other recipes' shell (quotes, $$) is not ours to read
            continue
        words = shlex.split(line)
        found = dfbench_arguments(words)
        if found is not None:
            commands.append(found)
    return None, commands


def command_problems(pages: list[Page]) -> tuple[list[str], int]:
    """Every documented dfbench and make command that would not be accepted, as ``file:line:
    command: why``; and how many commands were checked."""
    worker_options = local_worker_options()
    problems, checked = [], 0
    for page in pages:
        for snippet in shell_commands(page):
            try:
                words = words_of(snippet.text)
            except ValueError as error:  # an unbalanced quote
                if snippet.text.startswith(("dfbench ", "make ")):
                    problems.append(f"{snippet.where}: {snippet.text}: {error}")
                continue
            arguments = dfbench_arguments(words)
            if arguments:
                checked += 1
                problem = parse_problem(arguments, worker_options)
                if problem:
                    problems.append(f"{snippet.where}: {snippet.text}: {problem}")
            elif words[:1] == ["make"]:
                checked += 1
                error, expanded = make_expansion(words[1:])
                if error:
                    problems.append(f"{snippet.where}: {snippet.text}: {error}")
                for arguments in expanded:
                    problem = parse_problem(arguments, worker_options)
                    if problem:
                        problems.append(f"{snippet.where}: {snippet.text} runs dfbench {shlex.join(arguments)}: "
                                        f"{problem}")
    return problems, checked


def test_every_documented_command_parses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Data folders are checked as the parser reads them (relative to here): an empty folder that
    # this user can write, wherever the clone is.
    monkeypatch.chdir(tmp_path)
    problems, checked = command_problems([read_page(page) for page in PAGES])
    assert problems == [], "documented commands the code refuses:\n" + "\n".join(problems)
    assert checked >= 60, f"only {checked} commands found in README.md and docs/: is the extraction broken?"


def test_a_broken_command_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check above can fail: a page with an unknown option, a missing required value, a make
    target that does not exist, and a make line whose dfbench command misses an argument."""
    monkeypatch.chdir(tmp_path)
    page = ROOT / "docs" / "example.md"
    text = "\n".join([
        "Run `dfbench status --cluster mine` or `dfbench provision --no-such-flag`.",
        "```shell",
        "dfbench bench --cluster mine --dataset tpch_sf1   # fine",
        "dfbench data generate --partitions 4              # --sf is required",
        "dfbench worker --port 9000 --no-such-worker-flag",
        "make no-such-target",
        "make deploy                                       # BINARY= or REPO= is required",
        "```",
    ])
    problems, checked = command_problems([read_page(page, text)])
    assert checked == 7
    reported = [problem.split(": ", 1)[0] for problem in problems]
    assert reported == ["docs/example.md:1", "docs/example.md:4", "docs/example.md:5", "docs/example.md:6",
                        "docs/example.md:7"], problems
    assert "--no-such-flag" in problems[0] and "--sf" in problems[1] and "--no-such-worker-flag" in problems[2]
    assert "no-such-target" in problems[3] and "dfbench deploy" in problems[4]


def python_problems(block: Snippet) -> list[str]:
    """Why a Python block would not run as written: a syntax error, or a ``dfbench.X(...)`` call
    naming nothing public or not fitting its signature."""
    try:
        tree = ast.parse(block.text)
    except SyntaxError as error:
        return [f"{block.where}: {error}"]
    problems = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "dfbench"):
            continue
        name = node.func.attr
        if name not in dfbench.__all__:
            problems.append(f"{block.where}: dfbench.{name} is not public (dfbench.__all__)")
            continue
        try:
            inspect.signature(getattr(dfbench, name)).bind(*[None] * len(node.args),
                                                           **{k.arg: None for k in node.keywords if k.arg})
        except TypeError as error:
            problems.append(f"{block.where}: dfbench.{name}(...): {error}")
    return problems


def test_every_python_block_calls_the_public_api_as_it_is() -> None:
    blocks = [block for page in PAGES for language, block in read_page(page).blocks if language == "python"]
    assert blocks, "no Python block found"
    problems = [problem for block in blocks for problem in python_problems(block)]
    assert problems == [], "\n".join(problems)
    broken = Snippet(README, 1, "import dfbench\ndfbench.provision(spec, instances=3)\ndfbench.launch()\n")
    assert len(python_problems(broken)) == 2


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text without markup, lower case, punctuation dropped,
    spaces as hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(page: Page) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for _, line in page.prose:
        heading = _HEADING.match(line)
        if heading:
            base = slug(heading.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def link_problems(page: Page) -> list[str]:
    problems = []
    numbers = [number for number, _ in page.prose]
    # Links are read from the prose without its inline code, joined, as a link's text may wrap.
    joined = _INLINE.sub(lambda span: " " * len(span.group(0)), "\n".join(line for _, line in page.prose))
    for link in _LINK.finditer(joined):
        target = link.group(1)
        where = f"{page.path.relative_to(ROOT)}:{numbers[joined.count(chr(10), 0, link.start())]}"
        if re.match(r"^[a-z]+:", target):  # https:, mailto: ...
            continue
        path_part, _, anchor = target.partition("#")
        file = (page.path.parent / path_part).resolve() if path_part else page.path
        if not file.exists():
            problems.append(f"{where}: {target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in anchors(read_page(file) if path_part else page):
            problems.append(f"{where}: {target}: no heading with the anchor #{anchor} in {file.name}")
    return problems


def test_every_relative_link_resolves() -> None:
    problems = [problem for page in PAGES for problem in link_problems(read_page(page))]
    assert problems == [], "\n".join(problems)
    broken = read_page(README, "# Top\n\n[a](docs/nowhere.md) [b](#top) [c](#bottom) [d](docs/cluster.md#costs)\n")
    assert [p.split(": ", 2)[1] for p in link_problems(broken)] == ["docs/nowhere.md", "#bottom"]


def test_the_readme_is_a_quickstart_that_links_every_page() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines: move reference to docs/"
    linked = {(ROOT / target.partition("#")[0]).resolve()
              for target in _LINK.findall(README.read_text()) if not re.match(r"^[a-z]+:", target)}
    unlinked = [page.name for page in PAGES[1:] if page.resolve() not in linked]
    assert unlinked == [], f"README.md's 'Where to go next' does not link {unlinked}"
    # The two commands on a fresh machine, as .ci/run and the issue name them.
    setup = next(block.text for language, block in read_page(README).blocks if language in _SHELL_LANGUAGES)
    assert [words_of(line) for line in setup.splitlines()] == [["make", "bench"], ["make", "test"]]
