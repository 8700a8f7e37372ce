#!/usr/bin/env bash
# The shared library's ABI is what the headers say it is: it exports exactly the
# functions declared SOCKIT_API (nothing internal leaks, nothing declared is
# missing), and its soname carries the version that promises compatibility
# (docs/compatibility.md): the major version, and before 1.0 the minor too.
set -uo pipefail

# shellcheck source=tests/e2e_common.bash
. "$(dirname "$0")/e2e_common.bash"
src_dir=${SOCKIT_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
lib=$(find "$build" -maxdepth 1 -name 'libsockit.so.*.*.*' | head -n 1)
if [ -z "$lib" ]; then
    fail shared_library_found "no libsockit.so.X.Y.Z in $build"
    exit 1
fi
pass shared_library_found

declared=$(cat "$src_dir"/include/sockit*.h | tr '\n' ' ' |
    grep -oE 'SOCKIT_API [^;(]*\bsockit_[a-z0-9_]+ *\(' |
    grep -oE 'sockit_[a-z0-9_]+ *\($' | tr -d '( ' | sort -u)
exported=$(nm -D --defined-only "$lib" | awk '$2 == "T" || $2 == "W" {print $3}' |
    grep -v '^_' | sort -u)
extra=$(comm -13 <(echo "$declared") <(echo "$exported") | tr '\n' ' ')
missing=$(comm -23 <(echo "$declared") <(echo "$exported") | tr '\n' ' ')
if [ -z "$extra" ]; then
    pass exports_only_declared_functions
else
    fail exports_only_declared_functions "exported but not in the headers: $extra"
fi
if [ -z "$missing" ]; then
    pass exports_every_declared_function
else
    fail exports_every_declared_function "declared but not exported: $missing"
fi

major=$(sed -n 's/^#define SOCKIT_VERSION_MAJOR *\([0-9]*\)$/\1/p' "$src_dir/include/sockit.h")
minor=$(sed -n 's/^#define SOCKIT_VERSION_MINOR *\([0-9]*\)$/\1/p' "$src_dir/include/sockit.h")
want="libsockit.so.$major"
[ "$major" = 0 ] && want="libsockit.so.0.$minor"
soname=$(objdump -p "$lib" | awk '$1 == "SONAME" {print $2}')
if [ "$soname" = "$want" ]; then
    pass soname_names_the_compatible_version
else
    fail soname_names_the_compatible_version "SONAME $soname, expected $want"
fi

# One version everywhere: the header's macros and the build's project version.
patch=$(sed -n 's/^#define SOCKIT_VERSION_PATCH *\([0-9]*\)$/\1/p' "$src_dir/include/sockit.h")
project=$(sed -n 's/^project(sockit VERSION \([0-9.]*\) .*/\1/p' "$src_dir/CMakeLists.txt")
if [ "$project" = "$major.$minor.$patch" ] &&
    grep -q "^#define SOCKIT_VERSION_STRING \"$project\"$" "$src_dir/include/sockit.h"; then
    pass header_and_build_agree_on_the_version
else
    fail header_and_build_agree_on_the_version "CMake $project, header $major.$minor.$patch"
fi

echo "e2e_abi: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
