#!/bin/bash
# make deps-reference: install the industrial reference servers (nginx-light, lighttpd, apache2)
# WITHOUT leaving web servers running on this machine. cmbench starts them itself, in the
# foreground from bench/reference/ configs on ports it picks, and stops them by PID; a system
# service on port 80 would only compete for the CPU being measured.
#
# Debian's postinst scripts start each service right after unpacking. So:
#   1. while apt-get runs, a policy-rc.d that answers 101 ("action forbidden") keeps
#      invoke-rc.d from starting them (unless the machine already has its own policy-rc.d);
#   2. whatever still runs is stopped by the PID file the service wrote (works with and without
#      systemd, service or update-rc.d, which a container may lack);
#   3. the services are disabled at boot with whichever tool this machine has.
set -u
PACKAGES=(nginx-light lighttpd apache2)
# service name -> PID file its Debian packaging writes
declare -A PIDFILES=([nginx]=/run/nginx.pid [lighttpd]=/run/lighttpd.pid
                     [apache2]=/run/apache2/apache2.pid [apache-htcacheclean]=/run/apache2/htcacheclean.pid)
# service name -> the command name its process runs as (a PID file may be stale: never signal a
# process that is not the service)
declare -A COMMS=([nginx]=nginx [lighttpd]=lighttpd [apache2]=apache2 [apache-htcacheclean]=htcacheclean)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "$(id -u)" != 0 ]; then
  if [ ${#missing[@]} -gt 0 ]; then
    echo "deps-reference: run as root (missing: ${missing[*]}): make deps-reference" >&2
    exit 1
  fi
  echo "deps-reference: all reference servers installed (not root: cannot check their services)"
  exit 0
fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "deps-reference: installing ${missing[*]}"
  policy=/usr/sbin/policy-rc.d
  own_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# cmbench make deps-reference: no service starts during this install\nexit 101\n' > "$policy"
    chmod 755 "$policy"
    own_policy=1
    trap 'rm -f "$policy"' EXIT
  fi
  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
  rc=$?
  if [ $own_policy = 1 ]; then rm -f "$policy"; trap - EXIT; fi
  [ $rc = 0 ] || { echo "deps-reference: apt-get failed ($rc)" >&2; exit $rc; }
else
  echo "deps-reference: nginx-light, lighttpd and apache2 already installed"
fi

systemd_running=0
[ -d /run/systemd/system ] && systemd_running=1

for svc in nginx lighttpd apache2 apache-htcacheclean; do
  [ -e "/etc/init.d/$svc" ] || [ -e "/lib/systemd/system/$svc.service" ] || continue
  # stop: systemd knows its units; otherwise the PID file, checked against the command name
  if [ $systemd_running = 1 ]; then
    systemctl stop "$svc" 2>/dev/null
  fi
  pidfile=${PIDFILES[$svc]}
  if [ -s "$pidfile" ]; then
    pid=$(head -n1 "$pidfile" | tr -dc 0-9)
    if [ -n "$pid" ] && [ "$(cat /proc/$pid/comm 2>/dev/null)" = "${COMMS[$svc]}" ]; then
      echo "deps-reference: stopping the $svc service (pid $pid from $pidfile)"
      kill -TERM "$pid"
      for _ in $(seq 50); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
      [ -d "/proc/$pid" ] && { echo "deps-reference: $svc (pid $pid) ignored SIGTERM; SIGKILL"; kill -KILL "$pid"; }
    fi
  fi
  # disable at boot
  if command -v systemctl >/dev/null 2>&1 && [ -e "/lib/systemd/system/$svc.service" ]; then
    systemctl disable "$svc" >/dev/null 2>&1 && echo "deps-reference: $svc disabled (systemctl)"
  fi
  if command -v update-rc.d >/dev/null 2>&1 && [ -e "/etc/init.d/$svc" ]; then
    update-rc.d "$svc" disable >/dev/null 2>&1 && echo "deps-reference: $svc disabled (update-rc.d)"
  fi
done

# What is left listening is worth a line: nothing of ours should be.
left=$(for c in nginx lighttpd apache2; do pgrep -x "$c"; done | tr '\n' ' ')
if [ -n "${left// }" ]; then
  echo "deps-reference: still running (not started by a service we know; left alone): pids $left" >&2
fi
exit 0
