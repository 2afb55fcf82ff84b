#!/usr/bin/env bash
# curl.sh: curl under the shim fetches from a plain python3 http.server, and a
# plain curl fetches from python3's http.server running under the shim (it is
# a ThreadingHTTPServer, so every request is a green thread there), including
# 8 concurrent fetches, a 404, and a 1.2 MB body; bodies and HTTP codes must
# match the plain runs byte for byte.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need curl /usr/bin/python3

mkdir www
seq 1 200000 >www/data.txt
printf 'small file\n' >www/small.txt

fetch() {  # curl args...: prints the HTTP code, body to the -o file given
  curl -sS --max-time 30 -w '%{http_code}\n' "$@"
}

# 1. plain server, curl plain and under the shim (not in the sanitizer build,
#    where curl cannot run with ASan preloaded: see san_control).
if san_control 7 curl -sS -o /dev/null "http://127.0.0.1:$(free_port)/"; then  # 7: connection refused
port=$(free_port)
start_bg /usr/bin/python3 -m http.server --bind 127.0.0.1 --directory www "$port" >server1.log 2>&1
wait_port "$port" || finish
url=http://127.0.0.1:$port
fetch -o plain.data "$url/data.txt" >plain.codes 2>plain.err; rc_plain=$?
fetch -o plain.small "$url/small.txt" >>plain.codes 2>>plain.err
fetch -o plain.404 "$url/missing" >>plain.codes 2>>plain.err
shim_run 2 curl -sS --max-time 30 -w '%{http_code}\n' -o shim.data "$url/data.txt" >shim.codes 2>shim.err; rc_shim=$?
shim_run 2 curl -sS --max-time 30 -w '%{http_code}\n' -o shim.small "$url/small.txt" >>shim.codes 2>>shim.err
shim_run 1 curl -sS --max-time 30 -w '%{http_code}\n' -o shim.404 "$url/missing" >>shim.codes 2>>shim.err
same_rc "curl data.txt" $rc_plain $rc_shim
same "curl under the shim: body" plain.data shim.data
same "curl under the shim: body == file" www/data.txt shim.data
same "curl under the shim: small body" plain.small shim.small
same "curl under the shim: HTTP codes (200 200 404)" plain.codes shim.codes
fi

# 2. server under the shim, curl plain.
port=$(free_port)
start_bg_shim 2 /usr/bin/python3 -m http.server --bind 127.0.0.1 --directory www "$port" >server2.log 2>&1
wait_port "$port" || { show_logs server2.log; finish; }
url=http://127.0.0.1:$port
fetch -o rev.data "$url/data.txt" >rev.codes 2>rev.err
fetch -o rev.404 "$url/missing" >>rev.codes 2>>rev.err
par=()
for i in 1 2 3 4 5 6 7 8; do
  fetch -o "par.$i" "$url/data.txt" >"par.$i.code" 2>>rev.err &
  par+=($!)
done
wait_par=0
for p in "${par[@]}"; do wait "$p" || wait_par=1; done
same "shimmed server: body == file" www/data.txt rev.data
[[ $(cat rev.codes) == $'200\n404' ]] && echo "ok: shimmed server: HTTP codes 200 404" || fail "shimmed server codes: $(tr '\n' ' ' <rev.codes)"
for i in 1 2 3 4 5 6 7 8; do
  cmp -s www/data.txt "par.$i" && [[ $(cat "par.$i.code") == 200 ]] || fail "concurrent fetch $i from the shimmed server"
done
((wait_par)) && fail "a concurrent curl exited non-zero"
echo "ok: 8 concurrent fetches from the shimmed server checked"
show_logs plain.err shim.err rev.err server1.log server2.log
finish
