#!/bin/sh
# Lay out vcstream as a system service: the user, /etc/vcstream/vcstream.toml, the state
# directory, and the unit (systemd/vcstream.service with its /opt/vcstream replaced by PREFIX).
# Run by `make install-service` (as root). It never enables or starts the service.
#
#   PREFIX   the checkout holding .venv/bin/vcstream (default: this checkout)
#   DESTDIR  stage everything under this folder instead of / (packaging, tests): the user is
#            then written to DESTDIR's own /etc/passwd by systemd-sysusers --root, and nothing
#            is chowned or reloaded on the running system
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
PREFIX=${PREFIX:-$here}
DESTDIR=${DESTDIR:-}
UNIT_DIR=${UNIT_DIR:-/etc/systemd/system}
CONFIG_DIR=/etc/vcstream
STATE_DIR=/var/lib/vcstream
SERVICE_USER=vcstream

die() { echo "install-service: $*" >&2; exit 1; }

case "$PREFIX" in
  /*) ;;
  *) die "PREFIX must be an absolute path, not '$PREFIX'" ;;
esac
case "$PREFIX" in
  *[[:space:]\|]*) die "PREFIX must not contain spaces or '|': '$PREFIX'" ;;
esac
case "$PREFIX/" in
  /home/*|/root/*|/run/user/*)
    die "$PREFIX is hidden from the service (ProtectHome=yes): copy the checkout to /opt/vcstream, run 'make install' there, and run this from there" ;;
esac
[ -x "$PREFIX/.venv/bin/vcstream" ] ||
  die "$PREFIX/.venv/bin/vcstream not found: run 'make install' in $PREFIX first"
if [ -z "$DESTDIR" ] && [ "$(id -u)" != 0 ]; then
  die "must run as root (or give DESTDIR= to stage the files elsewhere)"
fi

# The user and its group; membership of audio for running vcstream by hand as that user
# (the unit itself adds the group with SupplementaryGroups=audio).
sysusers_conf="$DESTDIR/etc/sysusers.d/vcstream.conf"
install -d -m 0755 "$(dirname "$sysusers_conf")"
cat >"$sysusers_conf" <<EOF
u $SERVICE_USER - "vcstream voice-cloning daemon" $STATE_DIR /usr/sbin/nologin
m $SERVICE_USER audio
EOF
if command -v systemd-sysusers >/dev/null; then
  if [ -n "$DESTDIR" ]; then
    systemd-sysusers --root="$DESTDIR" "$sysusers_conf"
  else
    systemd-sysusers "$sysusers_conf"
  fi
elif [ -z "$DESTDIR" ]; then
  getent passwd "$SERVICE_USER" >/dev/null ||
    useradd --system --user-group --groups audio --home-dir "$STATE_DIR" --no-create-home \
      --shell /usr/sbin/nologin "$SERVICE_USER"
else
  echo "install-service: systemd-sysusers not found: the user is created at package install" >&2
fi

# The config: the documented defaults, never overwriting one an operator has edited. Readable
# by the service's group only (it may hold the WebSocket token).
install -d -m 0755 "$DESTDIR$CONFIG_DIR"
config="$DESTDIR$CONFIG_DIR/vcstream.toml"
if [ -e "$config" ]; then
  echo "install-service: kept the existing $CONFIG_DIR/vcstream.toml"
else
  install -m 0640 "$here/configs/default.toml" "$config"
  [ -n "$DESTDIR" ] || chgrp "$SERVICE_USER" "$config"
  echo "install-service: wrote $CONFIG_DIR/vcstream.toml (from configs/default.toml)"
fi

# The state directory (StateDirectory= would also create it at the first start).
install -d -m 0750 "$DESTDIR$STATE_DIR"
[ -n "$DESTDIR" ] || chown "$SERVICE_USER:$SERVICE_USER" "$STATE_DIR"

# The unit, pointing at this checkout.
install -d -m 0755 "$DESTDIR$UNIT_DIR"
sed "s|/opt/vcstream|$PREFIX|g" "$here/systemd/vcstream.service" >"$DESTDIR$UNIT_DIR/vcstream.service"
chmod 0644 "$DESTDIR$UNIT_DIR/vcstream.service"
echo "install-service: installed $UNIT_DIR/vcstream.service (ExecStart=$PREFIX/.venv/bin/vcstream)"

if [ -z "$DESTDIR" ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  echo "install-service: enable and start it with: systemctl enable --now vcstream"
elif [ -z "$DESTDIR" ]; then
  echo "install-service: systemd is not running here; the unit takes effect at its next start"
fi
