# Helpers shared by scripts/test and scripts/demo. Source it; do not run it.

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf '\033[31merror:\033[0m %s\n' "$*" >&2; exit 1; }

apt_updated=""
# ensure_package COMMAND PACKAGE: installs PACKAGE with apt-get when COMMAND is missing,
# or explains exactly what to do when that is not possible.
ensure_package() {
  local command=$1 package=$2
  command -v "$command" >/dev/null 2>&1 && return 0
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "$command not found: installing Debian package $package"
    if [ -z "$apt_updated" ]; then
      DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || die "apt-get update failed"
      apt_updated=yes
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package" >&2 \
      || die "apt-get install $package failed; install it by hand and run again"
    command -v "$command" >/dev/null 2>&1 || die "$package installed but $command is still not on PATH"
  else
    die "$command is missing. Install it first: 'sudo apt-get install $package' on Debian/Ubuntu \
(or your system's package for it, e.g. 'brew install ${package%-server}' on macOS), then run again."
  fi
}

ensure_rust() {
  command -v cargo >/dev/null 2>&1 \
    || die "cargo is missing. Install Rust from https://rustup.rs (curl ... | sh), open a new shell, then run again."
}
