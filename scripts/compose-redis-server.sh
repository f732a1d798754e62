#!/bin/sh
# /usr/local/bin/redis-server in scripts/compose-test's stand-in for the official redis
# image, which builds Redis with protected mode off by default (so that other containers
# may connect without a password); Debian's build has it on. Later arguments still win.
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
  config=$1
  shift
  exec /usr/bin/redis-server "$config" --protected-mode no "$@"
fi
exec /usr/bin/redis-server --protected-mode no "$@"
