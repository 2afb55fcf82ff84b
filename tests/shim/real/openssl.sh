#!/usr/bin/env bash
# openssl.sh: TLS through the shim. A certificate is made at test time;
# `openssl s_server -WWW` serves a file and `openssl s_client` fetches it over
# TLS 1.2 and 1.3: client under the shim against a plain server, then a plain
# client against a server under the shim. The client's output (HTTP status
# line, headers, body) must be identical to the all-plain run.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need openssl /usr/bin/python3

openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem -days 2 \
  -subj /CN=localhost >req.log 2>&1 || { cat req.log; fail "openssl req"; finish; }
seq 1 20000 >page.txt

# s_server -WWW: "GET /page.txt HTTP/1.0" serves ./page.txt. -naccept bounds
# its life; -quiet keeps s_client's own chatter off stdout; s_client exits when
# the server closes the connection after the response.
server() {  # PORT NACCEPT [shim WORKERS]
  local args=(openssl s_server -quiet -WWW -accept "$1" -naccept "$2" -cert cert.pem -key key.pem)
  if [[ ${3:-} == shim ]]; then start_bg_shim "$4" "${args[@]}"; else start_bg "${args[@]}"; fi
}
client() {  # PORT TLSFLAG
  printf 'GET /page.txt HTTP/1.0\r\n\r\n' |
    openssl s_client -quiet -connect "127.0.0.1:$1" -servername localhost -CAfile cert.pem -verify_return_error "$2"
}
client_shim() {  # WORKERS PORT TLSFLAG
  printf 'GET /page.txt HTTP/1.0\r\n\r\n' |
    shim_run "$1" openssl s_client -quiet -connect "127.0.0.1:$2" -servername localhost -CAfile cert.pem \
      -verify_return_error "$3"
}

for tls in -tls1_2 -tls1_3; do
  port=$(free_port)
  server "$port" 3 >"server$tls.log" 2>&1
  wait_port "$port" || finish
  # 3 accepts: wait_port's probe connection, then the two clients.
  client "$port" "$tls" >"plain$tls.out" 2>"plain$tls.err"; rc_plain=$?
  client_shim 2 "$port" "$tls" >"shim$tls.out" 2>"shim$tls.err"; rc_shim=$?
  same_rc "s_client $tls under the shim" $rc_plain $rc_shim
  same "s_client $tls under the shim vs plain" "plain$tls.out" "shim$tls.out"
  grep -q '^20000$' "plain$tls.out" || fail "plain s_client $tls did not get the whole page"

  port=$(free_port)
  server "$port" 2 shim 2 >"shimserver$tls.log" 2>&1
  wait_port "$port" || finish
  client "$port" "$tls" >"rev$tls.out" 2>"rev$tls.err"; rc_rev=$?
  same_rc "s_client $tls against a shimmed s_server" $rc_plain $rc_rev
  same "s_client $tls against a shimmed s_server vs plain" "plain$tls.out" "rev$tls.out"
done
show_logs ./*.err ./server*.log ./shimserver*.log
finish
