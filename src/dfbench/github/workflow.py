"""The workflow ``dfbench github init`` writes into a datafusion-distributed checkout:
``.github/workflows/dfbench.yml``.

Three jobs, so that the pull request's code never meets the AWS credentials:

- ``request`` (issues and pull requests write, contents read; no id-token): ``dfbench github run``
  reads the event file, checks the commenter's write access, replies to a refusal, reacts to a
  valid request and hands the two commits to build on as step outputs (40-hex shas only).
- ``build`` (contents read only; no id-token, no secret): checks out base and head and builds
  each worker with cargo zigbuild, handing it on as an artifact with its sha256. A pull
  request's build scripts and macros run here, where there is nothing to steal. No cache: a cache
  written by a pull request's build would be read by later runs (cache poisoning).
- ``bench`` (id-token write): never checks out or runs the pull request's code on the runner; it
  downloads the two workers, checks their sha256, assumes the repository's role through GitHub's
  OIDC token and runs ``dfbench github run`` with them, then tears the cluster down whatever
  happened (``if: always()``; the instances' 2-hour time-to-live is the backstop).
- ``report`` comments when the build failed.

No ``${{ github.event.* }}`` is expanded in a ``run:`` script: the comment, branch names and
titles reach dfbench through the event file or environment variables. Actions are pinned by
commit (the tag in a comment beside each). The issue_comment trigger runs the default branch's
copy of this file, so a pull request cannot change the workflow it is benchmarked by, nor its
limits.
"""

from __future__ import annotations

from pathlib import Path

from dfbench import __version__
from dfbench.errors import ConfigError
from dfbench.github.command import Limits
from dfbench.github.pipeline import cluster_name

WORKFLOW_PATH = Path(".github/workflows/dfbench.yml")

# Third-party actions, pinned by the commit their tag named when this was written.
ACTIONS = {
    "checkout": ("actions/checkout", "3d3c42e5aac5ba805825da76410c181273ba90b1", "v7.0.1"),
    "setup-python": ("actions/setup-python", "5fda3b95a4ea91299a34e894583c3862153e4b97", "v7.0.0"),
    "upload-artifact": ("actions/upload-artifact", "bbbca2ddaa5d8feaa63e36b76fdaad77386f024f", "v7.0.0"),
    "download-artifact": ("actions/download-artifact", "3e5f45b2cfb9172054b4087a40e8e0b5a5461e7c", "v8.0.1"),
    "configure-aws-credentials": ("aws-actions/configure-aws-credentials",
                                  "e6de054238d6b7531b4efff3b6587d9aade6a06c", "v6.2.3"),
}
# The worker's build (ARCHITECTURE §5), and the zig toolchain cargo zigbuild drives, from PyPI.
BUILD_COMMAND = ("cargo zigbuild -p datafusion-distributed-benchmarks --release --bin worker "
                 "--target x86_64-unknown-linux-gnu")
BUILD_TOOLS = "ziglang cargo-zigbuild"
# The benchmark job's credentials must outlive a run: the role allows 4-hour sessions.
SESSION_SECONDS = 14400


def _uses(name: str) -> str:
    repository, sha, tag = ACTIONS[name]
    return f"{repository}@{sha} # {tag}"


def _limit_flags(limits: Limits) -> str:
    return (f"--max-nodes {limits.max_nodes} --max-scale-factor {limits.max_scale_factor} "
            f"--max-rounds {limits.max_rounds} --nodes {limits.nodes} "
            f"--instance-types {','.join(limits.instance_types)}")


def render_workflow(requirement: str | None = None, limits: Limits | None = None) -> str:
    """The workflow's text. ``requirement``: what the jobs pip-install (default: this version of
    dfbench with its plot extra)."""
    requirement = f"dfbench[plot]=={__version__}" if requirement is None else requirement
    if any(c in requirement for c in "\"'\n$`\\") or not requirement.strip():
        raise ConfigError(f"--dfbench {requirement!r}: give a pip requirement such as dfbench==1.2 or a URL, "
                          "without quotes")
    limits = limits or Limits()
    flags = _limit_flags(limits)
    cluster = cluster_name(0).removesuffix("0")
    # The first steps of every job that runs dfbench.
    install_dfbench = (f'      - uses: {_uses("setup-python")}\n'
                       '        with:\n'
                       '          python-version: "3.12"\n'
                       '      - name: Install dfbench\n'
                       '        run: python -m pip install "$DFBENCH_REQUIREMENT"')
    return f"""\
# Written by `dfbench github init` (dfbench {__version__}); see dfbench's docs/github.md.
# A comment `/dfbench run DATASET [--nodes N] ...` on a pull request, by someone with write
# access, benchmarks the pull request against its base on a fresh cluster and answers with the
# comparison. Set the repository variable DFBENCH_ROLE_ARN (`dfbench github role --repo ...`).
name: dfbench

on:
  issue_comment:
    types: [created]
  workflow_dispatch:
    inputs:
      pr:
        description: "Pull request number"
        required: true
        type: string
      command:
        description: "The command, e.g. /dfbench run tpch/sf10 --nodes 4"
        required: true
        type: string

# Nothing unless a job asks for it.
permissions: {{}}

env:
  DFBENCH_REQUIREMENT: "{requirement}"
  AWS_REGION: us-east-1
  # The repository's own bucket (created once by its owners); empty: dfbench's default bucket.
  BENCHMARK_BUCKET: ${{{{ vars.DFBENCH_BUCKET }}}}

jobs:
  request:
    # Only comments on pull requests that mention the command start a runner; dfbench decides.
    if: >-
      github.event_name == 'workflow_dispatch' ||
      (github.event.issue.pull_request && contains(github.event.comment.body, '/dfbench'))
    runs-on: ubuntu-latest
    timeout-minutes: 10
    permissions:
      contents: read        # the base ref's commit
      issues: write         # the reply and the reaction
      pull-requests: write  # the same, on a pull request's conversation
    outputs:
      proceed: ${{{{ steps.check.outputs.proceed }}}}
      base_sha: ${{{{ steps.check.outputs.base_sha }}}}
      head_sha: ${{{{ steps.check.outputs.head_sha }}}}
      pr: ${{{{ steps.check.outputs.pr }}}}
    steps:
{install_dfbench}
      - name: Check the request
        id: check
        env:
          GITHUB_TOKEN: ${{{{ github.token }}}}
        run: dfbench github run --event "$GITHUB_EVENT_PATH" {flags}

  build:
    # The pull request's code runs here, with a read-only token, no id-token and no secret.
    needs: request
    if: needs.request.outputs.proceed == 'true'
    runs-on: ubuntu-latest
    timeout-minutes: 90
    permissions:
      contents: read
    strategy:
      matrix:
        side: [base, head]
    steps:
      - uses: {_uses("checkout")}
        with:
          ref: ${{{{ matrix.side == 'base' && needs.request.outputs.base_sha || needs.request.outputs.head_sha }}}}
          persist-credentials: false
      - uses: {_uses("setup-python")}
        with:
          python-version: "3.12"
      - name: Install the zig toolchain
        run: python -m pip install {BUILD_TOOLS}
      - name: Build the worker
        run: |
          rustup target add x86_64-unknown-linux-gnu
          {BUILD_COMMAND}
          mkdir -p out
          cp target/x86_64-unknown-linux-gnu/release/worker out/worker
          cd out && sha256sum worker > worker.sha256
      - uses: {_uses("upload-artifact")}
        with:
          name: worker-${{{{ matrix.side }}}}
          path: out/
          retention-days: 3
          if-no-files-found: error

  bench:
    # Holds the AWS role; never checks out nor runs the pull request's code on the runner.
    needs: [request, build]
    if: needs.request.outputs.proceed == 'true'
    runs-on: ubuntu-latest
    timeout-minutes: 180
    # One benchmark per pull request (its cluster) at a time; a request waits for the running one.
    # On the job, not the workflow: GitHub keeps one pending run per group and cancels the older,
    # so at the workflow's level any comment would push a waiting request out.
    concurrency:
      group: {cluster}${{{{ needs.request.outputs.pr }}}}
      cancel-in-progress: false
    permissions:
      id-token: write       # GitHub's OIDC token, which the role trusts
      contents: read
      issues: write         # the comparison comment
      pull-requests: write
    steps:
      - uses: {_uses("download-artifact")}
        with:
          pattern: worker-*
          path: workers
      - name: Check the workers' sha256
        run: |
          for side in base head; do
            (cd "workers/worker-$side" && sha256sum --check worker.sha256)
          done
{install_dfbench}
      - uses: {_uses("configure-aws-credentials")}
        with:
          role-to-assume: ${{{{ vars.DFBENCH_ROLE_ARN }}}}
          aws-region: ${{{{ env.AWS_REGION }}}}
          role-duration-seconds: {SESSION_SECONDS}
      - name: Benchmark
        env:
          GITHUB_TOKEN: ${{{{ github.token }}}}
          BASE_SHA: ${{{{ needs.request.outputs.base_sha }}}}
          HEAD_SHA: ${{{{ needs.request.outputs.head_sha }}}}
        run: >-
          dfbench github run --event "$GITHUB_EVENT_PATH"
          --base-binary workers/worker-base/worker --head-binary workers/worker-head/worker
          --base-sha "$BASE_SHA" --head-sha "$HEAD_SHA" --via relay --plot --results dfbench-results
          {flags}
      - name: Teardown
        if: always()
        env:
          PR: ${{{{ needs.request.outputs.pr }}}}
        run: dfbench teardown --cluster "{cluster}$PR"
      - uses: {_uses("upload-artifact")}
        if: always()
        with:
          name: dfbench-results
          path: dfbench-results/
          if-no-files-found: ignore

  report:
    # The build failed: say so on the pull request (the benchmark job comments its own failures).
    needs: [request, build]
    if: failure() && needs.request.outputs.proceed == 'true' && needs.build.result == 'failure'
    runs-on: ubuntu-latest
    timeout-minutes: 10
    permissions:
      contents: read
      issues: write
      pull-requests: write
    steps:
{install_dfbench}
      - name: Report the failed build
        env:
          GITHUB_TOKEN: ${{{{ github.token }}}}
        run: dfbench github run --event "$GITHUB_EVENT_PATH" --failed-step build {flags}
"""


def write_workflow(checkout: Path, *, requirement: str | None = None, force: bool = False,
                   limits: Limits | None = None) -> tuple[Path, bool]:
    """Write the workflow into ``checkout``; returns its path and whether the file changed. A file
    that differs is replaced only with ``force``."""
    if not checkout.is_dir():
        raise ConfigError(f"{checkout} is no folder: give --path a datafusion-distributed checkout.")
    if not (checkout / ".git").exists():
        raise ConfigError(f"{checkout} is not a git checkout (no .git): give --path the checkout's top folder.")
    text = render_workflow(requirement, limits)
    path = checkout / WORKFLOW_PATH
    if path.exists():
        if path.read_text(encoding="utf-8") == text:
            return path, False
        if not force:
            raise ConfigError(f"{path} exists and differs from what dfbench writes: compare them, then run again "
                              "with --force to replace it.")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)
    return path, True
