#!/usr/bin/env bash
# The library and the command build without OpenSSL (-DSOCKIT_TLS=OFF, as where
# libssl-dev is missing) and say so at run time: sockit_has_tls() is false, every
# TLS call fails with SOCKIT_ENOTLS, and `sockit tls-cert` and `--tls` explain it.
# Plain builds only: a sanitized build would compile the library a second time
# with the sanitizers for nothing they could find here.
# shellcheck source=tests/e2e_cli_common.bash
source "$(dirname "$0")/e2e_cli_common.bash"

if [ "${SOCKIT_SANITIZED:-0}" = 1 ]; then
    echo "$suite: skipped under the sanitizers (the plain build runs it)"
    exit 0
fi
out=$work/build
name=configure_and_build_without_openssl
if ! timeout 300 cmake -S "$source_dir" -B "$out" -DSOCKIT_TLS=OFF -DSOCKIT_TESTS=OFF \
    -DCMAKE_BUILD_TYPE=Release >"$work/$name.log" 2>&1; then
    fail $name "cmake configure failed"
elif ! grep -q 'TLS calls fail with SOCKIT_ENOTLS' "$work/$name.log"; then
    fail $name "configure did not say TLS is off"
elif ! timeout 600 cmake --build "$out" -j "$(nproc)" --target sockit_static sockit \
    >>"$work/$name.log" 2>&1; then
    fail $name "the build failed"
else
    pass $name
fi

name=tls_calls_fail_with_enotls
cat >"$work/probe.c" <<'C'
#include <sockit_tls.h>
#include <stdio.h>
#include <string.h>
int main(void)
{
    if (sockit_has_tls())
        return 10;
    if (sockit_tls_ctx_new(SOCKIT_TLS_CLIENT) != NULL || sockit_errcode() != SOCKIT_ENOTLS)
        return 11;
    if (strstr(sockit_errmsg(), "without OpenSSL") == NULL)
        return 12;
    sockit *s = sockit_socket(AF_INET, SOCK_STREAM);
    if (s == NULL || sockit_tls_wrap(s, NULL, "x") != SOCKIT_ENOTLS || sockit_is_tls(s))
        return 13;
    sockit_close(s);
    if (sockit_tls_create_connection("localhost", 1, 1, NULL, NULL) != NULL)
        return 14;
    printf("%s\n", sockit_strerror(SOCKIT_ENOTLS));
    return 0;
}
C
if [ -f "$out/libsockit.a" ] &&
    cc -I"$source_dir/include" "$work/probe.c" "$out/libsockit.a" -lpthread \
        $(pkg-config --libs liburing 2>/dev/null) -o "$work/probe" 2>"$work/$name.cc"; then
    "$work/probe" >"$work/$name.out" 2>&1
    rc=$?
    if [ $rc -eq 0 ] && grep -q 'not compiled' "$work/$name.out"; then
        pass $name
    else
        fail $name "probe exit code $rc"
    fi
else
    fail $name "the probe did not link against the library without OpenSSL"
fi

if [ -x "$out/sockit" ]; then
    expect_error tls_cert_says_built_without_openssl 1 'without OpenSSL' \
        "$out/sockit" tls-cert --out "$work/certs"
    expect_error connect_tls_says_built_without_openssl 1 'without (TLS|OpenSSL)' \
        "$out/sockit" connect --tls 127.0.0.1 9
    name=version_says_tls_is_not_built
    if "$out/sockit" --version >"$work/$name.out" 2>&1 &&
        grep -q '^tls: not built (built without OpenSSL' "$work/$name.out"; then
        pass $name
    else
        fail $name "want 'tls: not built (built without OpenSSL ...)' in --version"
    fi
fi
finish
