#!/usr/bin/env bash
# timed.sh NAME COMMAND...: runs COMMAND and prints how long stage NAME took.
name=$1
shift
start=$(date +%s)
"$@"
status=$?
echo "== $name: $(( $(date +%s) - start )) s (exit $status)"
exit $status
