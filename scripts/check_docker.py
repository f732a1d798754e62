#!/usr/bin/env python3
"""Checks that the Dockerfile and docker-compose.yml name things that exist.

Without a Docker engine nothing here builds or runs a container, so this reads the two
files and compares what they name with the repository:

- every path the Dockerfile COPYs from the build context exists, is tracked by git and
  is not excluded by .dockerignore;
- the builder's Rust version is the workspace's `rust-version`, and builder and
  runtime are the same Debian release;
- the `cargo build` in the builder names binaries and packages of the workspace, and
  the binaries copied out of it are ones it builds, at the path it builds them;
- the runtime image runs as a non-root user and its CMD is one of those binaries;
- EXPOSE, the compose `ports` and the `BIND` variables agree;
- every compose service built from the Dockerfile runs one of those binaries, sets only
  environment variables its program reads, and binds 0.0.0.0;
- healthchecks call a route the program serves, on the port it binds, with a tool the
  image has;
- URLs in the environment point at a service (on the port it listens on, at a route it
  serves) or at a port published on localhost, and a service depends on the services
  its URLs name; `service_healthy` is only used on services that have a healthcheck;
- WEBHOOK_SECRET is one whsec_<base64> value shared by every service.

Prints one `ok: ...` line per check, or `error: ...` lines; exits 1 on any error.

    python3 scripts/check_docker.py                      # reads docker-compose.yml (PyYAML)
    python3 scripts/check_docker.py --compose-json F     # reads `docker compose config --format json`

scripts/check-docker runs it after validating the compose file with Docker Compose.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import fnmatch
import json
import os
import posixpath
import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

# Environment variables read by libraries rather than by the project's own code.
LIBRARY_ENV = {"RUST_LOG", "RUST_BACKTRACE", "RUST_LIB_BACKTRACE", "NO_COLOR"}
# Ports of images the compose file runs but this repository does not build.
IMAGE_PORTS = {"redis": 6379}
# Default ports of URL schemes.
SCHEME_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443, "redis": 6379, "rediss": 6379}
# Programs any Debian or Alpine base image has, usable in a healthcheck without installing.
BASE_TOOLS = {"sh", "bash", "true", "false", "test", "cat", "grep", "head"}
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
ANY_HOSTS = {"0.0.0.0", "::", "[::]"}


class Report:
    """Collects the result of each check: one `ok:` line, or its `error:` lines."""

    def __init__(self) -> None:
        self.failed = 0

    def check(self, title: str, problems: list[str]) -> None:
        if problems:
            self.failed += 1
            for problem in problems:
                print(f"error: {title}: {problem}", flush=True)
        else:
            print(f"ok: {title}", flush=True)


# ---- the workspace ------------------------------------------------------------------


@dataclass
class Package:
    name: str
    dir: Path
    bins: list[str]
    path_deps: list[str]
    rust_version: str | None


@dataclass
class Workspace:
    root: Path
    packages: dict[str, Package]

    @property
    def bins(self) -> dict[str, Package]:
        return {b: p for p in self.packages.values() for b in p.bins}

    def sources(self, package: Package, seen: set[str] | None = None) -> str:
        """All Rust source of a package and of the workspace packages it depends on."""
        seen = seen if seen is not None else set()
        if package.name in seen:
            return ""
        seen.add(package.name)
        text = []
        for path in sorted((package.dir / "src").rglob("*.rs")):
            text.append(path.read_text(encoding="utf-8", errors="replace"))
        for dep in package.path_deps:
            if dep in self.packages:
                text.append(self.sources(self.packages[dep], seen))
        return "\n".join(text)


def load_workspace(root: Path) -> Workspace:
    try:
        out = subprocess.run(
            ["cargo", "metadata", "--no-deps", "--format-version", "1", "--offline"],
            cwd=root, check=True, capture_output=True, text=True,
        ).stdout
    except FileNotFoundError:
        sys.exit("error: cargo is not on PATH; scripts/check_docker.py reads the workspace with `cargo metadata`")
    except subprocess.CalledProcessError as err:
        sys.exit(f"error: `cargo metadata` failed:\n{err.stderr}")
    meta = json.loads(out)
    packages = {}
    for p in meta["packages"]:
        packages[p["name"]] = Package(
            name=p["name"],
            dir=Path(p["manifest_path"]).parent,
            bins=[t["name"] for t in p["targets"] if "bin" in t["kind"]],
            path_deps=[d["name"] for d in p["dependencies"] if d.get("path") and d.get("kind") is None],
            rust_version=p.get("rust_version"),
        )
    return Workspace(root=root, packages=packages)


def compiled_in_folders(ws: Workspace) -> list[str]:
    """Folders read at compile time: askama.toml `dirs` and rust-embed `#[folder = ...]`.

    Only folders holding files git tracks count: the others are not in a fresh clone."""
    folders = []
    for package in ws.packages.values():
        candidates = []
        askama = package.dir / "askama.toml"
        if askama.exists():
            candidates += tomllib.loads(askama.read_text(encoding="utf-8")).get("general", {}).get("dirs", [])
        for path in (package.dir / "src").rglob("*.rs"):
            candidates += re.findall(r'#\[folder\s*=\s*"([^"]+)"\]', path.read_text(encoding="utf-8", errors="replace"))
        for candidate in candidates:
            folder = (package.dir / candidate).resolve()
            try:
                rel = folder.relative_to(ws.root).as_posix()
            except ValueError:
                continue  # outside the repository
            if git_tracked(ws.root, rel) is not False and folder.exists():
                folders.append(rel)
    return folders


def quoted(text: str, literal: str) -> bool:
    """Whether `literal` appears in Rust source as a whole string literal."""
    return f'"{literal}"' in text


# ---- the Dockerfile -----------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    args: str
    line: int


@dataclass
class Stage:
    index: int
    image: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def parse_dockerfile(path: Path) -> list[Stage]:
    lines = path.read_text(encoding="utf-8").splitlines()
    escape = "\\"
    for line in lines:  # parser directives come first, as `# name=value` comments
        m = re.match(r"#\s*(\w+)\s*=\s*(\S+)\s*$", line)
        if not m:
            break
        if m.group(1).lower() == "escape":
            escape = m.group(2)
    instructions: list[Instruction] = []
    buf, start = "", 0
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if stripped.startswith("#") or (not buf and not stripped):
            continue  # comments are dropped even inside a continued instruction
        if not buf:
            start = number
        if stripped.endswith(escape):
            buf += stripped[: -len(escape)] + " "
            continue
        buf += stripped
        keyword, _, args = buf.partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip(), start))
        buf = ""
    stages: list[Stage] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            words = [w for w in ins.args.split() if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].lower() == "as" else None
            stages.append(Stage(len(stages), words[0], name))
        elif stages:
            stages[-1].instructions.append(ins)
    return stages


def split_args(args: str) -> tuple[dict[str, str], list[str]]:
    """Flags (`--from=x`) and the remaining words of a COPY/ADD/EXPOSE/... instruction."""
    flags: dict[str, str] = {}
    words = json.loads(args) if args.startswith("[") else shlex.split(args)
    while words and words[0].startswith("--"):
        key, _, value = words.pop(0)[2:].partition("=")
        flags[key] = value
    return flags, words


def exec_form(args: str) -> list[str]:
    return json.loads(args) if args.startswith("[") else ["/bin/sh", "-c", args]


def stage_env(stage: Stage) -> dict[str, str]:
    env = {}
    for ins in stage.all("ENV"):
        for word in shlex.split(ins.args):
            if "=" in word:
                key, _, value = word.partition("=")
                env[key] = value
    return env


def stage_workdir(stage: Stage, upto: int | None = None) -> str:
    workdir = "/"
    for ins in stage.instructions:
        if upto is not None and ins.line >= upto:
            break
        if ins.keyword == "WORKDIR":
            workdir = posixpath.normpath(posixpath.join(workdir, ins.args.strip()))
    return workdir


def debian_release(image: str) -> str | None:
    m = re.search(r"(bookworm|trixie|bullseye|buster|forky)", image)
    return m.group(1) if m else None


# ---- .dockerignore and git ----------------------------------------------------------


def dockerignore_patterns(root: Path) -> list[tuple[bool, str]]:
    path = root / ".dockerignore"
    if not path.exists():
        return []
    patterns = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = posixpath.normpath(line.lstrip("!").strip().lstrip("/")).rstrip("/")
        patterns.append((negated, pattern))
    return patterns


def pattern_matches(pattern: str, path: str) -> bool:
    """Docker's matching: a pattern matches a path or any of its parent directories."""
    regex = "^"
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            regex += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            regex += ".*"
            i += 2
        elif pattern[i] == "*":
            regex += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            regex += "[^/]"
            i += 1
        else:
            regex += re.escape(pattern[i])
            i += 1
    regex += "(?:/.*)?$"
    return re.match(regex, path) is not None


def ignored(patterns: list[tuple[bool, str]], path: str) -> bool:
    result = False
    for negated, pattern in patterns:
        if pattern_matches(pattern, path):
            result = not negated
    return result


def git_tracked(root: Path, path: str) -> bool | None:
    try:
        out = subprocess.run(
            ["git", "ls-files", "--", path], cwd=root, capture_output=True, text=True, check=True
        ).stdout
    except (FileNotFoundError, subprocess.CalledProcessError):
        return None  # not a git checkout: nothing to say
    return bool(out.strip())


# ---- docker-compose.yml -------------------------------------------------------------


@dataclass
class Service:
    name: str
    built_here: bool
    image: str | None
    command: list[str] | None
    environment: dict[str, str]
    ports: list[tuple[int | None, int]]  # (published on the host, target in the container)
    healthcheck: list[str] | None
    depends_on: dict[str, str]


INTERPOLATION = re.compile(r"\$(?:\$|\{(\w+)(?:(:?[-?])([^}]*))?\}|(\w+))")


def interpolate(value: str) -> str:
    """Compose's `${VAR}`, `${VAR:-default}`, `${VAR-default}` and `$$`, from os.environ."""

    def replace(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1) or m.group(4)
        op, default = m.group(2), m.group(3) or ""
        current = os.environ.get(name)
        if op == ":-" and not current:
            return default
        if op == "-" and current is None:
            return default
        return current or ""

    return INTERPOLATION.sub(replace, value)


def load_compose_yaml(path: Path) -> dict:
    try:
        import yaml  # PyYAML: Debian's python3-yaml, or pip install pyyaml
    except ImportError:
        sys.exit(
            "error: PyYAML is missing: install Debian's python3-yaml (apt-get install python3-yaml) "
            "or `pip install pyyaml`, or pass --compose-json with the output of "
            "`docker compose config --format json`"
        )
    data = yaml.safe_load(path.read_text(encoding="utf-8"))

    def walk(node):
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        if isinstance(node, str):
            return interpolate(node)
        return node

    return walk(data)


def parse_port(entry) -> tuple[int | None, int]:
    if isinstance(entry, dict):
        published = entry.get("published")
        return (int(published) if published not in (None, "") else None, int(entry["target"]))
    text = str(entry).split("/")[0]
    parts = text.rsplit(":", 2)
    if len(parts) == 1:
        return (None, int(parts[0]))
    return (int(parts[-2]) if parts[-2] else None, int(parts[-1]))


def normalise_services(data: dict, compose_dir: Path, root: Path) -> dict[str, Service]:
    services = {}
    for name, svc in (data.get("services") or {}).items():
        build = svc.get("build")
        if isinstance(build, str):
            build = {"context": build}
        built_here = False
        if build is not None:
            context = (compose_dir / build.get("context", ".")).resolve()
            dockerfile = build.get("dockerfile", "Dockerfile")
            built_here = context == root.resolve() and Path(dockerfile).name == "Dockerfile"
        command = svc.get("command")
        if isinstance(command, str):
            command = shlex.split(command)
        env = svc.get("environment") or {}
        if isinstance(env, list):
            env = dict(e.split("=", 1) if "=" in e else (e, os.environ.get(e, "")) for e in env)
        env = {k: "" if v is None else str(v) for k, v in env.items()}
        test = (svc.get("healthcheck") or {}).get("test")
        if isinstance(test, str):
            test = ["CMD-SHELL", test]
        depends = svc.get("depends_on") or {}
        if isinstance(depends, list):
            depends = {d: {"condition": "service_started"} for d in depends}
        services[name] = Service(
            name=name,
            built_here=built_here,
            image=svc.get("image"),
            command=command,
            environment=env,
            ports=[parse_port(p) for p in svc.get("ports") or []],
            healthcheck=test,
            depends_on={k: (v or {}).get("condition", "service_started") for k, v in depends.items()},
        )
    return services


# ---- the checks ---------------------------------------------------------------------


def bind_port(service: Service) -> tuple[str | None, int | None]:
    bind = service.environment.get("BIND")
    if not bind:
        return None, None
    host, _, port = bind.rpartition(":")
    try:
        return host, int(port)
    except ValueError:
        return host, None


def listen_port(service: Service) -> int | None:
    """The port a service listens on inside its container."""
    if service.built_here:
        return bind_port(service)[1]
    image = (service.image or "").split("/")[-1].split(":")[0].split("@")[0]
    if image in IMAGE_PORTS:
        return IMAGE_PORTS[image]
    targets = {t for _, t in service.ports}
    return targets.pop() if len(targets) == 1 else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--compose-file", type=Path, default=None)
    parser.add_argument("--dockerfile", type=Path, default=None)
    parser.add_argument(
        "--compose-json", type=Path, default=None,
        help="the output of `docker compose config --format json` (interpolated and normalised by Compose)",
    )
    args = parser.parse_args()
    root = args.root.resolve()
    compose_file = (args.compose_file or root / "docker-compose.yml").resolve()
    dockerfile = (args.dockerfile or root / "Dockerfile").resolve()
    report = Report()

    ws = load_workspace(root)
    ws_bins = ws.bins
    stages = parse_dockerfile(dockerfile)
    names = {s.name: s for s in stages if s.name}
    runtime = stages[-1]

    # -- the builder's base image ------------------------------------------------------
    problems = []
    rust_stages = [s for s in stages if re.match(r"(docker\.io/)?(library/)?rust:", s.image)]
    versions = {p.rust_version for p in ws.packages.values() if p.rust_version}
    if not rust_stages:
        problems.append("no stage is FROM an official rust:<version> image")
    for stage in rust_stages:
        tag = stage.image.split(":", 1)[1]
        m = re.match(r"(\d+\.\d+)(?:\.\d+)?-", tag)
        if not m:
            problems.append(f"line of FROM {stage.image}: the tag names no Rust version (e.g. rust:1.95-slim-bookworm)")
        elif versions and m.group(1) not in versions:
            problems.append(
                f"FROM {stage.image} builds with Rust {m.group(1)} but the workspace's rust-version is "
                f"{', '.join(sorted(versions))}"
            )
        a, b = debian_release(stage.image), debian_release(runtime.image)
        if a != b:
            problems.append(
                f"builder {stage.image} is Debian {a} but the runtime {runtime.image} is Debian {b}: "
                "the binaries need the glibc they were linked against"
            )
    report.check(
        f"builder image {', '.join(s.image for s in rust_stages)} matches rust-version "
        f"{', '.join(sorted(versions))} and the runtime's Debian release",
        problems,
    )

    # -- COPY from the build context ---------------------------------------------------
    problems, copied = [], []
    patterns = dockerignore_patterns(root)
    for stage in stages:
        for ins in stage.all("COPY") + stage.all("ADD"):
            flags, words = split_args(ins.args)
            if "from" in flags:
                continue
            for source in words[:-1]:
                rel = posixpath.normpath(source.lstrip("/"))
                copied.append(rel)
                matches = sorted(root.glob(rel)) if any(c in rel for c in "*?[") else [root / rel]
                if not any(m.exists() for m in matches):
                    problems.append(f"Dockerfile:{ins.line} {ins.keyword} {source}: no such path in the repository")
                    continue
                if ignored(patterns, rel):
                    problems.append(f"Dockerfile:{ins.line} {ins.keyword} {source}: excluded by .dockerignore")
                tracked = git_tracked(root, rel)
                if tracked is False:
                    problems.append(
                        f"Dockerfile:{ins.line} {ins.keyword} {source}: exists here but git tracks no file in it, "
                        "so a fresh clone (and CI) has nothing to copy"
                    )
    report.check(f"COPY sources exist, are tracked and not in .dockerignore: {' '.join(copied)}", problems)

    # -- the builder gets the whole workspace --------------------------------------------
    problems, needed = [], ["Cargo.toml", "Cargo.lock"]
    needed += [p.dir.relative_to(root).as_posix() for p in ws.packages.values() if p.dir != root]
    needed += compiled_in_folders(ws)
    for path in dict.fromkeys(needed):
        if not any(c in (".", path) or path.startswith(c.rstrip("/") + "/") for c in copied):
            problems.append(f"the Dockerfile copies no {path}, which the build needs")
    report.check(f"the builder gets every workspace member and compiled-in folder ({', '.join(dict.fromkeys(needed))})", problems)

    # -- the cargo build ---------------------------------------------------------------
    problems = []
    built: dict[str, str] = {}  # binary name -> path inside the builder stage
    builder = None
    for stage in stages:
        for ins in stage.all("RUN"):
            for m in re.finditer(r"cargo\s+build((?:\s+(?!&&|\|\||;)\S+)*)", ins.args):
                builder = stage
                words = shlex.split(m.group(1))
                release = "--release" in words
                profile = "release" if release else "debug"
                if "--profile" in words:
                    profile = words[words.index("--profile") + 1]
                packages = [words[i + 1] for i, w in enumerate(words) if w in ("-p", "--package")]
                explicit = [words[i + 1] for i, w in enumerate(words) if w == "--bin"]
                for p in packages:
                    if p not in ws.packages:
                        problems.append(f"Dockerfile:{ins.line} cargo build -p {p}: no such workspace package")
                for b in explicit:
                    if b not in ws_bins:
                        problems.append(
                            f"Dockerfile:{ins.line} cargo build --bin {b}: the workspace's binaries are "
                            f"{', '.join(sorted(ws_bins))}"
                        )
                names_built = set(explicit)
                if "--bins" in words or not explicit:
                    scope = [ws.packages[p] for p in packages if p in ws.packages] or ws.packages.values()
                    names_built |= {b for p in scope for b in p.bins}
                target_dir = stage_env(stage).get("CARGO_TARGET_DIR")
                if "--target-dir" in words:
                    target_dir = words[words.index("--target-dir") + 1]
                workdir = stage_workdir(stage, upto=ins.line)
                target_dir = posixpath.normpath(posixpath.join(workdir, target_dir or "target"))
                triple = words[words.index("--target") + 1] if "--target" in words else None
                out = posixpath.join(target_dir, triple, profile) if triple else posixpath.join(target_dir, profile)
                for b in names_built:
                    built[b] = posixpath.join(out, b)
                if "--locked" not in words and "--frozen" not in words:
                    problems.append(f"Dockerfile:{ins.line} cargo build without --locked: Cargo.lock may be ignored")
    if builder is None:
        problems.append("no RUN cargo build in any stage")
    report.check(
        f"cargo build in stage '{builder.name if builder else '?'}' builds workspace binaries "
        f"{', '.join(sorted(built)) or '(none)'}",
        problems,
    )

    # -- binaries copied into the runtime ----------------------------------------------
    problems, image_bins = [], {}
    for ins in runtime.all("COPY"):
        flags, words = split_args(ins.args)
        source_stage = flags.get("from")
        if source_stage is None:
            continue
        stage = names.get(source_stage) or (stages[int(source_stage)] if source_stage.isdigit() else None)
        if stage is None:
            problems.append(f"Dockerfile:{ins.line} COPY --from={source_stage}: no such stage")
            continue
        dest = words[-1]
        for source in words[:-1]:
            name = posixpath.basename(source)
            if stage is not builder:
                problems.append(f"Dockerfile:{ins.line} COPY --from={source_stage} {source}: that stage builds nothing")
            elif name not in built:
                problems.append(
                    f"Dockerfile:{ins.line} COPY {source}: {name} is not a binary the builder builds "
                    f"({', '.join(sorted(built))})"
                )
            elif posixpath.normpath(source) != built[name]:
                problems.append(
                    f"Dockerfile:{ins.line} COPY {source}: cargo build puts {name} at {built[name]}"
                )
            target = posixpath.join(dest, name) if dest.endswith("/") or len(words) > 2 else dest
            image_bins[posixpath.basename(target)] = target
            if posixpath.dirname(target) not in ("/usr/local/bin", "/usr/bin", "/bin"):
                problems.append(f"Dockerfile:{ins.line} COPY to {target}: not on the image's PATH")
    missing = sorted(set(ws_bins) - set(image_bins))
    if missing:
        problems.append(f"the runtime image lacks the workspace binaries {', '.join(missing)}")
    report.check(f"runtime image has {', '.join(f'{n} ({p})' for n, p in sorted(image_bins.items()))}", problems)

    # -- user and default command ------------------------------------------------------
    problems = []
    users = runtime.all("USER")
    if not users:
        problems.append("the runtime stage has no USER, so it runs as root")
    else:
        user = users[-1].args.split(":")[0].strip()
        if user in ("root", "0"):
            problems.append(f"Dockerfile:{users[-1].line} USER {users[-1].args}: root")
    for keyword in ("ENTRYPOINT", "CMD"):
        for ins in runtime.all(keyword):
            program = exec_form(ins.args)[0]
            if program not in image_bins and program not in BASE_TOOLS:
                problems.append(f"Dockerfile:{ins.line} {keyword} runs {program}, which the image does not have")
    report.check(
        f"runtime runs as USER {users[-1].args if users else '?'} with "
        f"CMD {' '.join(exec_form(runtime.all('CMD')[-1].args)) if runtime.all('CMD') else '(none)'}",
        problems,
    )

    # -- docker-compose.yml -------------------------------------------------------------
    if args.compose_json:
        data = json.loads(args.compose_json.read_text(encoding="utf-8"))
        source = f"{compose_file.name} (as resolved by `docker compose config`)"
    else:
        data = load_compose_yaml(compose_file)
        source = compose_file.name
    services = normalise_services(data, compose_file.parent, root)
    built_services = [s for s in services.values() if s.built_here]

    def run_command(svc: Service) -> list[str]:
        """What a built service runs: its command, else the image's CMD."""
        if svc.command:
            return svc.command
        cmds = runtime.all("CMD")
        return exec_form(cmds[-1].args) if cmds else ["?"]
    installed = " ".join(i.args for i in runtime.all("RUN"))

    exposed: set[int] = set()
    for ins in runtime.all("EXPOSE"):
        for word in ins.args.split():
            exposed.add(int(word.split("/")[0]))

    # -- programs and environment of each built service ---------------------------------
    problems = []
    if not built_services:
        problems.append(f"no service in {source} is built from this Dockerfile (build: .)")
    for svc in built_services:
        command = run_command(svc)
        program = command[0]
        if program not in image_bins:
            problems.append(
                f"service {svc.name}: command {command} runs {program}, but the image's binaries are "
                f"{', '.join(sorted(image_bins))}"
            )
            continue
        text = ws.sources(ws_bins[program])
        for key in sorted(svc.environment):
            if key not in LIBRARY_ENV and not quoted(text, key):
                problems.append(
                    f"service {svc.name}: {program} reads no environment variable {key} "
                    f"(not found as \"{key}\" in {ws_bins[program].dir.name}/src or its workspace dependencies)"
                )
    report.check(
        f"services {', '.join(s.name for s in built_services)} run workspace binaries and set only "
        "variables those read",
        problems,
    )

    # -- ports: EXPOSE, BIND, ports: ----------------------------------------------------
    problems, binds = [], set()
    for svc in built_services:
        host, port = bind_port(svc)
        if port is None:
            problems.append(
                f"service {svc.name}: no BIND=0.0.0.0:<port>; the programs listen on 127.0.0.1 by default, "
                "which is unreachable from outside the container"
            )
            continue
        binds.add(port)
        if host not in ANY_HOSTS:
            problems.append(f"service {svc.name}: BIND={svc.environment['BIND']} must listen on 0.0.0.0 in a container")
        if port not in exposed:
            problems.append(f"service {svc.name}: BIND port {port} is not EXPOSEd by the Dockerfile ({sorted(exposed)})")
        for published, target in svc.ports:
            if target != port:
                problems.append(
                    f"service {svc.name}: ports maps {published}:{target} but the program listens on {port} (BIND)"
                )
        if not svc.ports:
            problems.append(f"service {svc.name}: publishes no port")
    if exposed != binds and not problems:
        problems.append(f"the Dockerfile EXPOSEs {sorted(exposed)} but the services BIND {sorted(binds)}")
    published_ports: dict[int, str] = {}
    for svc in services.values():
        for published, _ in svc.ports:
            if published is None:
                continue
            if published in published_ports:
                problems.append(f"host port {published} is published by both {published_ports[published]} and {svc.name}")
            published_ports[published] = svc.name
    report.check(
        f"EXPOSE {' '.join(map(str, sorted(exposed)))} = BIND ports {' '.join(map(str, sorted(binds)))} = "
        f"container ports; host ports {', '.join(f'{p}->{n}' for p, n in sorted(published_ports.items()))}",
        problems,
    )

    # -- healthchecks ------------------------------------------------------------------
    problems, described = [], []
    for svc in services.values():
        test = svc.healthcheck
        if not test or test[0] == "NONE":
            continue
        words = test[1:] if test[0] == "CMD" else shlex.split(" ".join(test[1:]))
        program = words[0] if words else "?"
        described.append(f"{svc.name}: {program}")
        if not svc.built_here:
            continue
        if program not in image_bins and program not in BASE_TOOLS and not re.search(
            rf"(apt-get|apk)\s+(install|add)\b[^;&|]*\s{re.escape(program)}(\s|$)", installed
        ):
            problems.append(
                f"service {svc.name}: the healthcheck runs {program}, which the runtime image does not install"
            )
        urls = [w for w in words if re.match(r"https?://", w)]
        if not urls:
            problems.append(f"service {svc.name}: the healthcheck calls no http:// URL")
        program_bin = run_command(svc)[0]
        for url in urls:
            u = urlsplit(url)
            port = u.port or SCHEME_PORTS[u.scheme]
            if u.hostname not in LOCAL_HOSTS:
                problems.append(f"service {svc.name}: healthcheck URL {url} is not on the container's own loopback")
            if port != bind_port(svc)[1]:
                problems.append(f"service {svc.name}: healthcheck URL {url} uses port {port}, but BIND is {svc.environment.get('BIND')}")
            if program_bin in ws_bins and not quoted(ws.sources(ws_bins[program_bin]), u.path):
                problems.append(
                    f"service {svc.name}: healthcheck URL {url}: {program_bin} has no route {u.path} "
                    f"(not found as \"{u.path}\" in its source)"
                )
    for svc in built_services:
        if not svc.healthcheck:
            problems.append(f"service {svc.name}: no healthcheck")
    report.check(f"healthchecks call served routes on bound ports with installed tools ({'; '.join(described)})", problems)

    # -- URLs between services, and start order ----------------------------------------
    problems, links = [], []
    for svc in services.values():
        for key, value in sorted(svc.environment.items()):
            if not re.match(r"[a-z][a-z0-9+.-]*://", value):
                continue
            u = urlsplit(value)
            port = u.port or SCHEME_PORTS.get(u.scheme)
            host = u.hostname or ""
            if host in services:
                target = services[host]
                links.append(f"{svc.name}.{key} -> {host}")
                listening = listen_port(target)
                if listening is None:
                    problems.append(f"service {svc.name}: {key}={value}: cannot tell which port {host} listens on")
                elif port != listening:
                    problems.append(f"service {svc.name}: {key}={value}: {host} listens on {listening}, not {port}")
                if host not in svc.depends_on:
                    problems.append(f"service {svc.name}: {key} points at {host}, but {svc.name} does not depend_on it")
            elif host in LOCAL_HOSTS:
                target = services.get(published_ports.get(port, ""))
                links.append(f"{svc.name}.{key} -> localhost:{port}")
                if target is None:
                    problems.append(
                        f"service {svc.name}: {key}={value}: no service publishes host port {port} "
                        "(the link is opened by a browser on the host)"
                    )
            else:
                problems.append(f"service {svc.name}: {key}={value}: {host} is neither a service nor localhost")
                continue
            if target is not None and target.built_here and u.path not in ("", "/"):
                target_bin = run_command(target)[0]
                if target_bin in ws_bins and not quoted(ws.sources(ws_bins[target_bin]), u.path):
                    problems.append(f"service {svc.name}: {key}={value}: {target_bin} has no route {u.path}")
        for dep, condition in svc.depends_on.items():
            if dep not in services:
                problems.append(f"service {svc.name}: depends_on unknown service {dep}")
            elif condition == "service_healthy" and not services[dep].healthcheck:
                problems.append(f"service {svc.name}: waits for {dep} to be healthy, but {dep} has no healthcheck")
    report.check(f"{len(links)} URLs in environments name listening services, served routes, published ports", problems)

    # -- the shared secret -------------------------------------------------------------
    problems = []
    secrets = {s.name: s.environment["WEBHOOK_SECRET"] for s in services.values() if "WEBHOOK_SECRET" in s.environment}
    for name in (s.name for s in built_services):
        if name not in secrets:
            problems.append(f"service {name}: no WEBHOOK_SECRET")
    if len(set(secrets.values())) > 1:
        problems.append(f"services disagree on WEBHOOK_SECRET: {', '.join(sorted(secrets))} must share one value")
    for name, secret in secrets.items():
        encoded = secret.removeprefix("whsec_")
        try:
            key = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            key = b""
        if not secret.startswith("whsec_") or len(key) < 24:
            problems.append(f"service {name}: WEBHOOK_SECRET is not whsec_ followed by the base64 of 24 or more bytes")
            break
    report.check(f"WEBHOOK_SECRET is one whsec_ value shared by {', '.join(sorted(secrets))}", problems)

    if report.failed:
        print(f"{report.failed} check(s) failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
