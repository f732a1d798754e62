#!/usr/bin/env python3
"""The two container-file rules nothing else checks.

Docker Compose validates docker-compose.yml (`docker compose config`), hadolint lints the
Dockerfile, and scripts/compose-test builds and runs both for real. What none of them can
see:

- the builder image's Rust version must be the workspace's `rust-version`
  (compose-test's stand-in builder carries this machine's toolchain, whatever its tag says);
- every environment variable a service of our image sets must be one its program reads
  (a misspelt optional setting is silently ignored by the program, so no run fails).

    python3 scripts/check_docker.py --compose-json F   # F: `docker compose config --format json`

Prints one `ok: ...` line per rule, or `error: ...` lines and exits 1.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Read by libraries (logging set-up, the Rust runtime) rather than named in our sources.
LIBRARY_ENV = {"RUST_LOG", "RUST_BACKTRACE", "RUST_LIB_BACKTRACE", "NO_COLOR", "SSL_CERT_FILE", "SSL_CERT_DIR"}
# The crate every program depends on; its sources count as the program's.
SHARED_CRATE = "shared"


def rust_version_problems() -> list[str]:
    """The Dockerfile's `FROM rust:<x.y>-…` must name the workspace's rust-version."""
    wanted = tomllib.loads((ROOT / "Cargo.toml").read_text())["workspace"]["package"]["rust-version"]
    tags = re.findall(r"^FROM\s+(?:docker\.io/)?(?:library/)?rust:(\S+)", (ROOT / "Dockerfile").read_text(), re.M)
    if not tags:
        return ["the Dockerfile has no stage FROM rust:<version>"]
    return [
        f"Dockerfile: FROM rust:{tag} does not build with the workspace's rust-version {wanted}"
        for tag in tags
        if not re.match(rf"{re.escape(wanted)}(\.\d+)?-", tag)
    ]


def program_sources(program: str) -> str:
    """All Rust source of a program's crate and of the shared crate."""
    files = [*(ROOT / program / "src").rglob("*.rs"), *(ROOT / SHARED_CRATE / "src").rglob("*.rs")]
    return "\n".join(path.read_text(encoding="utf-8") for path in sorted(files))


def environment_problems(compose: dict) -> list[str]:
    """Every variable set on a service that runs one of our programs is read by it."""
    problems, checked = [], 0
    programs = {path.parent.parent.name for path in ROOT.glob("*/src/main.rs")}
    for name, service in compose["services"].items():
        command = service.get("command") or []
        program = command[0] if command else None
        if program not in programs:
            continue
        checked += 1
        sources = program_sources(program)
        for key in sorted(service.get("environment") or {}):
            if key not in LIBRARY_ENV and f'"{key}"' not in sources:
                problems.append(f"service {name}: {program} reads no environment variable {key} (misspelt?)")
    if not checked:
        problems.append(f"no service runs one of {sorted(programs)} with `command:`; nothing was checked")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compose-json", required=True, type=Path)
    compose = json.loads(parser.parse_args().compose_json.read_text())
    failed = False
    for rule, problems in [
        ("the builder's Rust version is the workspace's rust-version", rust_version_problems()),
        ("every variable a service sets is one its program reads", environment_problems(compose)),
    ]:
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        failed |= bool(problems)
        if not problems:
            print(f"ok: {rule}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
