#!/usr/bin/env bash
# The config errors a user sees when a config names MyNet wrongly: a typo'd key of MyNet
# (custom_model_typo.json) and a typo'd type, each with the registry's "did you mean".
#   check_config_errors.sh CUSTOM_MODEL_EXE EXAMPLES_DIR
set -uo pipefail
exe=$1 dir=$2
fails=0
expect() {   # expect TEXT ARGS...: exit status 2 and TEXT in the error output
    local text=$1
    shift
    local err rc
    err=$("$exe" "$@" 2>&1 >/dev/null)
    rc=$?
    echo "$err"
    if [ "$rc" -ne 2 ] || [[ "$err" != *"$text"* ]]; then
        echo "FAIL: custom_model $* exited $rc; expected 2 and: $text"
        fails=$((fails + 1))
    fi
}
expect "model.widht: unknown key; did you mean 'width'?" "$dir/custom_model_typo.json"
expect "unknown model type 'MyNte'; did you mean 'MyNet'?" "$dir/custom_model.json" \
    --set model.type=MyNte
[ "$fails" -eq 0 ] && echo "2 passed, 0 failed"
exit "$fails"
