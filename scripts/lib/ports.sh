# Loopback port helpers shared by scripts/pg and scripts/moto (sourced, not run).

# port_in_use PORT: true when something accepts connections on 127.0.0.1:PORT.
port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# free_port: prints a port nothing listens on, or fails.
#
# Ports come from below the kernel's ephemeral range (ip_local_port_range), so a
# test server that binds port 0 cannot take the port between this check and the
# service's own bind. Callers still retry with another port if that happens.
free_port() {
  local port eph_low low=20000 high=32767
  if [ -r /proc/sys/net/ipv4/ip_local_port_range ]; then
    read -r eph_low _ </proc/sys/net/ipv4/ip_local_port_range
    if [ "$eph_low" -gt $((low + 1000)) ]; then high=$((eph_low - 1)); fi
  fi
  for port in $(shuf -i "$low-$high" -n 64); do
    if ! port_in_use "$port"; then
      echo "$port"
      return 0
    fi
  done
  echo "no free port found on 127.0.0.1" >&2
  return 69
}
