#!/bin/sh
# Runs each test program, sums their "N passed, N failed" lines, and prints one
# closing line. Exits 1 if any program fails or crashes.
passed=0; failed=0; status=0
for t in "$@"; do
    out=$("$t" 2>&1); rc=$?
    printf '%s\n' "$out" | grep -E '^not ok|passed, [0-9]+ failed' | sed 's/^/  /'
    line=$(printf '%s\n' "$out" | grep -E '[0-9]+ passed, [0-9]+ failed' | tail -n 1)
    p=$(printf '%s' "$line" | sed -E 's/.* ([0-9]+) passed.*/\1/'); [ -n "$line" ] || p=0
    f=$(printf '%s' "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/'); [ -n "$line" ] || f=0
    if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then
        printf '%s\n' "$out" | tail -n 20 | sed 's/^/  | /'
        echo "  $t exited with status $rc"; f=1
    fi
    passed=$((passed + p)); failed=$((failed + f))
    [ $rc -eq 0 ] || status=1
done
echo "$passed passed, $failed failed"
exit $status
