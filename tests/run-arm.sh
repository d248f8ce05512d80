#!/bin/sh
# Cross-compiles the tests for ARM64 and runs them under qemu-aarch64, so the
# NEON path is checked on an x86 machine. Usage (from anywhere):
#     sh tests/run-arm.sh                 every tests/test_*.c but test_cli
#     sh tests/run-arm.sh tests/test_x.c  only the ones named
# Binaries go to build/arm/; next to each a small wrapper, NAME.qemu, runs it
# under qemu and is what tests/run.sh is given, so the output and the closing
# "N passed, N failed" line are the ones `make test` prints. A test that fails
# to compile counts as one failure. Exits 1 on any failure.
#
# Environment: FER_ARM_CC (default aarch64-linux-gnu-gcc), FER_ARM_CFLAGS
# (default -O2), FER_ARM_QEMU (default qemu-aarch64, else qemu-aarch64-static),
# FER_ARM_TIMEOUT (seconds per test under qemu, default 1800; 0 = none).
# On an ARM64 host the binaries run natively and qemu is not needed.

cd "$(dirname "$0")/.." || exit 1          # tests open files relative to the repo root
B=build/arm
CC_ARM=${FER_ARM_CC:-aarch64-linux-gnu-gcc}
CFLAGS_ARM=${FER_ARM_CFLAGS:--O2}
TIMEOUT=${FER_ARM_TIMEOUT:-1800}

need() {
    echo "tests/run-arm.sh: $1 not found." >&2
    echo "  Install the Debian packages: apt-get install -y gcc-aarch64-linux-gnu qemu-user" >&2
    exit 1
}
command -v "$CC_ARM" >/dev/null 2>&1 || need "$CC_ARM (cross compiler, package gcc-aarch64-linux-gnu)"
case $(uname -m) in
aarch64|arm64) QEMU= ;;
*)  QEMU=${FER_ARM_QEMU:-}
    if [ -z "$QEMU" ]; then
        for q in qemu-aarch64 qemu-aarch64-static; do
            if command -v $q >/dev/null 2>&1; then QEMU=$q; break; fi
        done
    fi
    if [ -z "$QEMU" ] || ! command -v "$QEMU" >/dev/null 2>&1; then
        need "qemu-aarch64 (user-mode emulator, package qemu-user)"
    fi ;;
esac
QARGS=
[ -n "$QEMU" ] && [ -d /usr/aarch64-linux-gnu ] && QARGS="-L /usr/aarch64-linux-gnu"
[ "$TIMEOUT" != 0 ] && command -v timeout >/dev/null 2>&1 || TIMEOUT=

# test_cli is left out: it drives build/fer-train, a host binary, not ARM code.
if [ $# -eq 0 ]; then
    for src in tests/test_*.c; do [ "$src" = tests/test_cli.c ] || set -- "$@" "$src"; done
fi
mkdir -p $B || exit 1

# Compile in parallel, one job per core; each job leaves NAME.log and NAME.rc.
jobs=$(nproc 2>/dev/null || echo 2); running=0; names=
for src in "$@"; do
    case $src in *'*'*) continue ;; esac     # the glob matched nothing
    [ -f "$src" ] || { echo "tests/run-arm.sh: $src: no such file" >&2; exit 1; }
    name=$(basename "$src" .c); names="$names $name"
    rm -f "$B/$name" "$B/$name.rc"
    # shellcheck disable=SC2086  # FER_ARM_CFLAGS is a list of flags
    ( $CC_ARM $CFLAGS_ARM -std=c99 -Wall -Wextra -Wpedantic -Werror -static \
          -I. -I/usr/include/stb "$src" -o "$B/$name" -lm -lpthread >"$B/$name.log" 2>&1
      echo $? >"$B/$name.rc" ) &
    running=$((running + 1))
    if [ $running -ge "$jobs" ]; then wait; running=0; fi
done
wait

# One wrapper per test. It reports its own run time on fd 3 when that is open
# (run.sh keeps only the program's result lines), so slow tests are visible.
# A test that does not compile has its compiler output shown here, and its
# wrapper reports one failure.
wrappers=
for name in $names; do
    w=$B/$name.qemu
    if [ "$(cat "$B/$name.rc" 2>/dev/null)" = 0 ]; then
        killed=
        [ -n "$TIMEOUT" ] && killed="[ \$rc -ne 124 ] || echo \"not ok: $name: killed after $TIMEOUT s\""
        cat >"$w" <<EOF
#!/bin/sh
t0=\$(date +%s%N)
${TIMEOUT:+timeout $TIMEOUT }$QEMU $QARGS $B/$name "\$@"
rc=\$?
t1=\$(date +%s%N)
$killed
{ awk -v a="\$t0" -v b="\$t1" 'BEGIN { printf "  [%.1f s] $name\\n", (b - a) / 1e9 }' >&3; } 2>/dev/null
exit \$rc
EOF
    else
        echo "$name: cross-compile for aarch64 failed:"
        sed 's/^/  | /' "$B/$name.log"
        cat >"$w" <<EOF
#!/bin/sh
echo "not ok: $name: cross-compile for aarch64 failed (log: $B/$name.log)"
echo "$name: 0 passed, 1 failed"
exit 1
EOF
    fi
    chmod +x "$w"
    wrappers="$wrappers $w"
done

# shellcheck disable=SC2086  # the wrapper paths contain no spaces
sh tests/run.sh $wrappers 3>&1
