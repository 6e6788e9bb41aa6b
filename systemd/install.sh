#!/usr/bin/env bash
# Installs Vigil as a systemd service on Debian, Raspberry Pi OS or Ubuntu (Jetson included).
#
#   npm ci && npm run build && sudo systemd/install.sh            # from the repository root
#
# What it does (each step says so as it runs; running it again upgrades in place):
#   1. checks Node.js >= 20 and systemd, creates the system user `vigil` (in the `video` and
#      `render` groups when they exist, for GPU device nodes);
#   2. copies the built agent to /opt/vigil and installs its production dependencies there;
#   3. puts a first /etc/vigil/config.json in place (never overwrites one) and checks it;
#   4. installs /etc/systemd/system/vigil.service plus drop-ins for what this machine needs:
#      its accelerator device nodes (Jetson), and Type=simple without watchdog where systemd is
#      older than 246 (its systemd-notify cannot be relied on there);
#   5. verifies the unit (systemd-analyze verify), enables and (re)starts it.
# Options:
#   --no-start   install and enable, but do not (re)start now
#   --no-npm     do not run npm ci in /opt/vigil (dependencies already there, or offline)
#   --root DIR   install into DIR as if it were / (packaging, tests): no user, no systemctl
#   -h, --help   this text
set -euo pipefail

PREFIX=/opt/vigil
ROOT=""
START=1
NPM=1
while [ $# -gt 0 ]; do
  case "$1" in
    --no-start) START=0 ;;
    --no-npm) NPM=0 ;;
    --root)
      ROOT="${2:?--root needs a directory}"
      shift
      ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "install.sh: unknown option $1 (see --help)" >&2
      exit 2
      ;;
  esac
  shift
done

say() { printf '==> %s\n' "$*"; }
die() {
  printf 'install.sh: %s\n' "$*" >&2
  exit 1
}

SRC="$(cd "$(dirname "$0")/.." && pwd)"
[ -f "$SRC/dist/cli.js" ] || die "no build in $SRC/dist: run 'npm ci && npm run build' first"
[ -n "$ROOT" ] || [ "$(id -u)" -eq 0 ] || die "run as root (sudo $0)"

NODE="$(command -v node || true)"
[ -n "$NODE" ] || die "node not found: install Node.js 20 or newer (see systemd/README.md)"
NODE_MAJOR="$("$NODE" -p 'process.versions.node.split(".")[0]')"
[ "$NODE_MAJOR" -ge 20 ] || die "Node.js $("$NODE" --version) is too old: 20 or newer is needed"

SYSTEMD_VERSION="$(systemctl --version 2>/dev/null | awk 'NR==1 {print $2}' || true)"
SYSTEMD_VERSION="${SYSTEMD_VERSION%%.*}"
[ -n "$SYSTEMD_VERSION" ] || [ -n "$ROOT" ] || die "systemd not found"

# 1. the service user
if [ -z "$ROOT" ]; then
  if ! id vigil >/dev/null 2>&1; then
    say "creating system user vigil"
    useradd --system --home-dir /var/lib/vigil --no-create-home --shell /usr/sbin/nologin vigil
  fi
  for group in video render; do
    if getent group "$group" >/dev/null; then usermod -a -G "$group" vigil; fi
  done
fi

# 2. the agent
say "installing the agent in $ROOT$PREFIX"
mkdir -p "$ROOT$PREFIX"
rm -rf "$ROOT$PREFIX/dist"
cp -R "$SRC/dist" "$SRC/models" "$SRC/systemd" "$ROOT$PREFIX/"
cp "$SRC/package.json" "$SRC/package-lock.json" "$SRC/README.md" "$ROOT$PREFIX/"
if [ -f "$SRC/.npmrc" ]; then cp "$SRC/.npmrc" "$ROOT$PREFIX/"; fi
mkdir -p "$ROOT$PREFIX/config" && cp "$SRC/config/"*.json "$SRC/config/"*.yaml "$ROOT$PREFIX/config/" 2>/dev/null || true
if [ "$NPM" -eq 1 ]; then
  say "installing production dependencies (npm ci --omit=dev)"
  (cd "$ROOT$PREFIX" && npm ci --omit=dev --no-audit --no-fund --loglevel=error)
fi

# 3. the configuration
CONF_DIR="$ROOT/etc/vigil"
mkdir -p "$CONF_DIR"
if [ ! -f "$CONF_DIR/config.json" ]; then
  say "first configuration: $CONF_DIR/config.json (from config/default.json; edit it, then systemctl reload vigil or restart)"
  cp "$SRC/config/default.json" "$CONF_DIR/config.json"
else
  say "keeping the existing $CONF_DIR/config.json"
fi
if [ -z "$ROOT" ]; then
  chown -R root:vigil "$CONF_DIR"
  chmod 0750 "$CONF_DIR"
  chmod 0640 "$CONF_DIR/config.json"
  runuser -u vigil -- "$NODE" "$PREFIX/dist/cli.js" check-config --config "$CONF_DIR/config.json" ||
    die "fix $CONF_DIR/config.json (every problem is listed above), then run this again"
else
  "$NODE" "$SRC/dist/cli.js" check-config --config "$CONF_DIR/config.json"
fi

# 4. the unit and this machine's drop-ins
UNIT_DIR="$ROOT/etc/systemd/system"
DROPIN="$UNIT_DIR/vigil.service.d"
mkdir -p "$DROPIN"
install -m 0644 "$SRC/systemd/vigil.service" "$UNIT_DIR/vigil.service"

nodes=()
for pattern in /dev/nvhost-* /dev/nvmap /dev/nvgpu/*/* /dev/nvidia[0-9]* /dev/nvidiactl /dev/nvidia-uvm*; do
  for node in $pattern; do
    if [ -c "$node" ]; then nodes+=("$node"); fi
  done
done
if [ "${#nodes[@]}" -gt 0 ]; then
  say "accelerator device nodes allowed: ${nodes[*]}"
  {
    echo "# Written by systemd/install.sh: the accelerator device nodes found on this machine."
    echo "[Service]"
    for node in "${nodes[@]}"; do echo "DeviceAllow=$node rw"; done
  } >"$DROPIN/10-accelerators.conf"
else
  rm -f "$DROPIN/10-accelerators.conf"
fi

if [ -n "$SYSTEMD_VERSION" ] && [ "$SYSTEMD_VERSION" -lt 246 ]; then
  say "systemd $SYSTEMD_VERSION < 246: Type=simple without watchdog (systemd-notify cannot be relied on there)"
  cat >"$DROPIN/20-old-systemd.conf" <<'EOF'
# Written by systemd/install.sh: systemd before 246 may drop notifications from systemd-notify
# (it exits before PID 1 reads them), so do not wait for READY=1 nor expect WATCHDOG=1.
[Service]
Type=simple
NotifyAccess=none
WatchdogSec=0
EOF
else
  rm -f "$DROPIN/20-old-systemd.conf"
fi

# 5. verify, enable, start
if command -v systemd-analyze >/dev/null 2>&1 && [ -z "$ROOT" ]; then
  say "systemd-analyze verify vigil.service"
  systemd-analyze verify "$UNIT_DIR/vigil.service"
fi
if [ -z "$ROOT" ]; then
  systemctl daemon-reload
  systemctl enable vigil.service >/dev/null
  if [ "$START" -eq 1 ]; then
    say "starting vigil (waits for READY=1)"
    systemctl restart vigil.service
    systemctl --no-pager --lines=0 status vigil.service || true
  fi
  say "done. Logs: journalctl -u vigil -f · status: node $PREFIX/dist/cli.js status --config /etc/vigil/config.json"
else
  say "done (staged under $ROOT)"
fi
