# Shared by the profile scripts: wait until an echo-server's log says it is listening.
#   wait_listening LOG
wait_listening() {
    for _ in $(seq 100); do
        grep -q "listening on" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "the server did not start; its log: $1" >&2
    return 1
}
