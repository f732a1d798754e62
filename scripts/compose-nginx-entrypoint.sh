#!/bin/sh
# The entrypoint of scripts/compose-test's stand-in for the official nginx image: what the
# official /docker-entrypoint.sh does that docker-compose.yml relies on, in its order.
#   /docker-entrypoint.d/*.envsh (executable) are sourced, *.sh (executable) are run;
#   /etc/nginx/templates/X.template -> /etc/nginx/conf.d/X, with only the variables that
#     are set in the environment replaced (nginx's own $variables stay).
set -eu
for script in $(find /docker-entrypoint.d/ -follow -type f 2>/dev/null | sort -V); do
  [ -x "$script" ] || continue
  case "$script" in
    *.envsh) . "$script" ;;
    *.sh) "$script" ;;
  esac
done
defined=$(env | cut -d= -f1 | sed 's/^/${/; s/$/}/' | tr '\n' ' ')
for template in /etc/nginx/templates/*.template; do
  [ -e "$template" ] || continue
  envsubst "$defined" <"$template" >"/etc/nginx/conf.d/$(basename "$template" .template)"
done
exec "$@"
