#!/usr/bin/env bash
# kiln's benchmarks. Prints the numbers that go into BENCHMARKS.md.
#   benches/run.sh            all benchmarks
#   benches/run.sh env        only the environment (solve + install) benchmark
#   benches/run.sh variants   only the variant matrix benchmark
#   benches/run.sh staging    only the 1 GB staging benchmark
#   benches/run.sh trivial    only the fixed cost of a trivial staging recipe
#   benches/run.sh recipes    only the many-recipes benchmark (20 recipes in a dependency chain)
#   benches/run.sh sources    only the 100 MB url source benchmark
#   benches/run.sh tests      only the package test benchmark
#   benches/run.sh relink     only the post-processing benchmark (1,000 ELF files)
#   benches/run.sh python     only the pure-Python package benchmark (next to pip wheel)
# Needs hyperfine (installed from Debian if missing), zstd and bzip2.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
command -v hyperfine >/dev/null || { apt-get install -y -qq hyperfine >/dev/null; }

cargo build --release --locked -q
KILN="$REPO/target/release/kiln"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
export SOURCE_DATE_EPOCH=1700000000

echo "## machine"
echo "$(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB RAM, $(uname -sr), $(date -u +%Y-%m-%d)"
lscpu | sed -n 's/^Model name:\s*//p'

env_bench() {
  echo
  echo "## environments: solve + install a 30-package host environment from a local channel"
  local chan="$WORK/env30-channel" out="$WORK/env30-out" cache="$WORK/env30-cache"
  KILN_CACHE_DIR="$cache" "$KILN" build --recipe benches/recipes/env-30/channel --output-dir "$chan" 2>/dev/null
  echo "channel: $(ls "$chan"/linux-64/*.conda | wc -l) packages, $(du -sh "$chan" | cut -f1)"
  local build="$KILN build --recipe benches/recipes/env-30/consumer --output-dir $out -c $chan"
  echo "solve only (--render-only --with-solve, repodata read from the local channel):"
  KILN_CACHE_DIR="$cache" hyperfine --warmup 1 --runs 10 --style basic "$build --render-only --with-solve"
  echo "full build, cold package cache (30 packages extracted + installed):"
  KILN_CACHE_DIR="$cache" hyperfine --runs 5 --style basic --prepare "rm -rf $out $cache" "$build"
  echo "full build, warm package cache (30 packages linked from the cache):"
  KILN_CACHE_DIR="$cache" hyperfine --warmup 1 --runs 10 --style basic --prepare "rm -rf $out" "$build"
  echo "kiln's own timings (warm):"
  rm -rf "$out"
  KILN_CACHE_DIR="$cache" $build 2>&1 | grep -E "solved in|installed .* in" | sed 's/^ *INFO //'
}
variants_bench() {
  echo
  echo "## variants: a 20-combination matrix over 4 outputs (29 distinct packages, 43 unused keys)"
  local m="$KILN build --recipe benches/recipes/matrix --output-dir $WORK/matrix"
  echo "render only (expansion + rendering + planning):"
  hyperfine --warmup 2 --runs 20 --style basic "$m --render-only"
  echo "full build of the 29 packages:"
  hyperfine --warmup 1 --runs 5 --style basic --prepare "rm -rf $WORK/matrix" "$m"

  echo
  echo "## variants and staging: libfoo x 2 staging builds, python x 3 on top (6 packages + 1)"
  local chan="$WORK/fixture-channel" cache="$WORK/variants-cache" out="$WORK/split" stage="$WORK/split-staging"
  for r in tests/fixtures/channel/*/; do
    KILN_CACHE_DIR="$cache" "$KILN" build --recipe "$r" --output-dir "$chan" 2>/dev/null
  done
  local split="$KILN build --experimental --recipe tests/recipes/variants/split --output-dir $out -c $chan --staging-cache-dir $stage"
  echo "cold (2 staging builds, 7 packages, 8 environments solved and installed):"
  KILN_CACHE_DIR="$cache" hyperfine --warmup 1 --runs 5 --style basic --prepare "rm -rf $out $stage" "$split"
  echo "warm staging cache (2 hits, 7 packages):"
  KILN_CACHE_DIR="$cache" hyperfine --warmup 1 --runs 5 --style basic --prepare "rm -rf $out" "$split"
}
staging_bench() {
echo
echo "## staging: 20,000 files (~1 GB) split into three packages"
OUT="$WORK/staging"
rm -rf "$OUT"
local b="$KILN build --experimental --recipe benches/recipes/staging-1gb --output-dir $OUT"
/usr/bin/time -f "cold build (staging script + cache + 3 packages): %e s, peak RSS %M KB" \
  $b 2> "$WORK/cold.log" || { cat "$WORK/cold.log"; exit 1; }
tail -1 "$WORK/cold.log"
grep -E "build script finished|synced to disk|placed .* paths|restored staging|packaged in" "$WORK/cold.log" | sed 's/^ *INFO //'
for run in 1 2 3; do
  /usr/bin/time -f "warm build $run (cache hit, selected files linked, 3 packages): %e s, peak RSS %M KB" \
    $b 2> "$WORK/warm.log" || { cat "$WORK/warm.log"; exit 1; }
  tail -1 "$WORK/warm.log"
done
grep -E "placed .* paths|restored staging|packaged in" "$WORK/warm.log" | sed 's/^ *INFO //'
/usr/bin/time -f "first --skip-unchanged run (no records yet: rebuilds, records): %e s, peak RSS %M KB" \
  $b --skip-unchanged 2> "$WORK/unchanged.log" || { cat "$WORK/unchanged.log"; exit 1; }
tail -1 "$WORK/unchanged.log"
for run in 1 2 3; do
  /usr/bin/time -f "unchanged rebuild $run (--skip-unchanged, 3 packages kept): %e s, peak RSS %M KB" \
    $b --skip-unchanged 2> "$WORK/unchanged.log" || { cat "$WORK/unchanged.log"; exit 1; }
  tail -1 "$WORK/unchanged.log"
done
/usr/bin/time -f "tar.bz2 warm build (cache hit, 3 packages, bzip2 -9): %e s, peak RSS %M KB" \
  $b --package-format tar.bz2 2> "$WORK/bz2.log" || { cat "$WORK/bz2.log"; exit 1; }
tail -1 "$WORK/bz2.log"
ENTRY=$(ls -d "$OUT"/build_cache/staging_*)
du -sh "$ENTRY"
echo "limit: tar | zstd -15 -T0 of the three packages' bytes (one stream per package)"
hyperfine --runs 3 --style basic \
  "for d in lib include share; do tar -C $ENTRY/prefix -cf - \$d | zstd -15 -T0 -q > $WORK/\$d.tar.zst; done"
echo "limit: tar | bzip2 -9 of the three packages' bytes"
hyperfine --runs 1 --style basic \
  "for d in lib include share; do tar -C $ENTRY/prefix -cf - \$d | bzip2 -9 > $WORK/\$d.tar.bz2; done"
echo "limit: cp -a of the cached prefix + work dir"
hyperfine --runs 3 --style basic --prepare "rm -rf $WORK/cp-target" "cp -a $ENTRY $WORK/cp-target"
rm -rf "$WORK/cp-target"
}

sources_bench() {
  echo
  echo "## url source: a 100 MB .tar.gz served from 127.0.0.1, downloaded and extracted"
  local www="$WORK/www" cache="$WORK/src-cache" out="$WORK/src-out"
  mkdir -p "$www/src/pkg-1.0"
  python3 - "$www/src/pkg-1.0" <<'PY'
import os, random, sys
root = sys.argv[1]
rng = random.Random(7)
words = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))) for _ in range(5000)]
for i in range(500):
    d = os.path.join(root, f"dir{i % 20}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"blob{i}.bin"), "wb") as f:
        f.write(os.urandom(150_000))
    with open(os.path.join(d, f"text{i}.c"), "wb") as f:
        f.write(b" ".join(rng.choice(words) for _ in range(33_000)))
PY
  tar -C "$www/src" -czf "$www/pkg-1.0.tar.gz" pkg-1.0
  rm -rf "$www/src"
  echo "tarball: $(du -m "$www/pkg-1.0.tar.gz" | cut -f1) MB, unpacked $(tar -tvzf "$www/pkg-1.0.tar.gz" | awk '{s+=$3} END {printf "%d", s/1e6}') MB in $(tar -tzf "$www/pkg-1.0.tar.gz" | wc -l) entries"
  local sha port
  sha=$(sha256sum "$www/pkg-1.0.tar.gz" | cut -d' ' -f1)
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  (cd "$www" && exec python3 -m http.server -b 127.0.0.1 "$port" >/dev/null 2>&1) &
  local server=$!
  sleep 1
  mkdir -p "$WORK/url-recipe"
  printf "package: {name: urlbench, version: '1.0'}\nsource:\n  url: http://127.0.0.1:%s/pkg-1.0.tar.gz\n  sha256: %s\nbuild:\n  script: [mkdir -p \$PREFIX/share, touch \$PREFIX/share/done]\n" "$port" "$sha" > "$WORK/url-recipe/recipe.yaml"
  local build="$KILN build --recipe $WORK/url-recipe --output-dir $out --allow-insecure-host 127.0.0.1"
  echo "kiln, cold source cache (download + verify + extract + a trivial build):"
  KILN_CACHE_DIR="$cache" hyperfine --runs 5 --style basic --prepare "rm -rf $out $cache" "$build"
  echo "kiln, warm source cache (verify + extract + a trivial build):"
  KILN_CACHE_DIR="$cache" hyperfine --warmup 1 --runs 5 --style basic --prepare "rm -rf $out" "$build"
  echo "baseline: curl | tar -xz on the same file"
  hyperfine --runs 5 --style basic --prepare "rm -rf $WORK/x && mkdir $WORK/x" \
    "curl -s http://127.0.0.1:$port/pkg-1.0.tar.gz | tar -xz -C $WORK/x"
  echo "baseline: tar -xzf of the local file"
  hyperfine --runs 5 --style basic --prepare "rm -rf $WORK/x && mkdir $WORK/x" "tar -xzf $www/pkg-1.0.tar.gz -C $WORK/x"
  kill "$server"
}

tests_bench() {
  echo
  echo "## package tests: a package with one trivial script test (warm package cache)"
  local out="$WORK/tested" cache="$WORK/tests-cache"
  mkdir -p "$WORK/tested-recipe"
  printf "package: {name: tested, version: '1.0'}\nbuild:\n  script: [mkdir -p \$PREFIX/share, echo hi > \$PREFIX/share/hi.txt]\ntests:\n  - script: [cat \$PREFIX/share/hi.txt]\n" > "$WORK/tested-recipe/recipe.yaml"
  local b="$KILN build --recipe $WORK/tested-recipe --output-dir $out"
  KILN_CACHE_DIR="$cache" $b >/dev/null 2>&1
  local pkg
  pkg=$(ls "$out"/linux-64/tested-*.conda)
  echo "kiln test --package-file (extract, index a scratch channel, solve, install, run):"
  KILN_CACHE_DIR="$cache" hyperfine --warmup 2 --runs 20 --style basic "$KILN test --package-file $pkg -c file://$out"
  echo "kiln build, with and without the test:"
  KILN_CACHE_DIR="$cache" hyperfine --warmup 2 --runs 20 --style basic --prepare "rm -rf $out" "$b --no-test" "$b"
  echo "kiln's own line:"
  rm -rf "$out"; KILN_CACHE_DIR="$cache" $b 2>&1 | grep "test passed"
}

relink_bench() {
  echo
  echo "## post-processing: 1,000 ELF shared libraries with a RUNPATH inside the prefix"
  command -v patchelf >/dev/null || { apt-get install -y -qq patchelf >/dev/null; }
  local out="$WORK/elf-1000"
  local build="$KILN build --recipe benches/recipes/elf-1000 --output-dir $out"
  echo "kiln's own step timings (3 builds):"
  for _ in 1 2 3; do
    rm -rf "$out"
    $build 2>&1 | grep -E "rewrote the run paths|linking checks done|packaged in" | sed 's/^ *INFO //'
  done
  echo "whole kiln build (script, relocation, linking checks, packaging):"
  hyperfine --warmup 1 --runs 5 --style basic --prepare "rm -rf $out" "$build"
  # The same 1,000 files, relocated by patchelf.
  local files="$WORK/elf-files" prefix="$WORK/elf-prefix-$(printf 'p%.0s' $(seq 1 60))"
  mkdir -p "$prefix/lib" "$files"
  printf 'int answer(void) { return 42; }\n' > "$WORK/a.c"
  gcc -shared -fPIC -o "$files/base.so" "$WORK/a.c" -Wl,-rpath,"$prefix/lib"
  local prep="rm -rf $prefix/lib && mkdir -p $prefix/lib && for i in \$(seq 1 1000); do cp $files/base.so $prefix/lib/libelf\$i.so; done"
  echo "baseline: one patchelf --set-rpath over the 1,000 files:"
  hyperfine --runs 5 --style basic --prepare "$prep" "patchelf --set-rpath '\$ORIGIN' $prefix/lib/*.so"
  echo "baseline: patchelf once per file (as conda-build runs it):"
  hyperfine --runs 3 --style basic --prepare "$prep" "for f in $prefix/lib/*.so; do patchelf --set-rpath '\$ORIGIN' \$f; done"
  echo "baseline: copying the 1,000 files (cp -a):"
  hyperfine --runs 5 --style basic --prepare "rm -rf $WORK/elf-copy" "cp -a $prefix/lib $WORK/elf-copy"
}

python_bench() {
  echo
  echo "## python: a pure-Python project (tests/fixtures/hello-py) built noarch with pip, warm caches"
  local pychan="$WORK/pychan" out="$WORK/hello-out" cache="$WORK/py-cache"
  local exe
  exe=$(python3 -c 'import os, sys; print(os.path.realpath(sys.executable))')
  KILN_CACHE_DIR="$cache" KILN_FIXTURE_PYTHON="$exe" KILN_FIXTURE_PYTHON_VERSION="$(python3 -c 'import platform; print(platform.python_version())')" \
    "$KILN" build --no-test --recipe tests/fixtures/python-real --output-dir "$pychan" >/dev/null 2>&1
  mkdir -p "$WORK/hello-recipe"
  printf 'package: {name: hello-py, version: "1.0"}\nsource: {path: %s}\nbuild:\n  noarch: python\n  script: ${{ PYTHON }} -m pip install . --no-deps --no-build-isolation\n  python: {entry_points: ["hello-py = hello.cli:main"]}\nrequirements:\n  host: [python, pip]\n  run: [python]\n' \
    "$REPO/tests/fixtures/hello-py" > "$WORK/hello-recipe/recipe.yaml"
  local b="$KILN build --no-test --recipe $WORK/hello-recipe --output-dir $out -c file://$pychan"
  KILN_CACHE_DIR="$cache" $b >/dev/null 2>&1
  echo "kiln build (solve, install python + pip, pip install ., noarch layout, package, index):"
  KILN_CACHE_DIR="$cache" hyperfine --warmup 1 --runs 10 --style basic --prepare "rm -rf $out" "$b"
  echo "kiln's own lines:"
  rm -rf "$out"; KILN_CACHE_DIR="$cache" $b 2>&1 | grep -E "installed .* in|script finished|packaged in" | sed 's/^ *INFO //'
  echo "baseline: pip wheel of the same project (machine python):"
  hyperfine --warmup 1 --runs 10 --style basic --prepare "rm -rf $WORK/wheel" \
    "python3 -m pip wheel --no-deps --no-build-isolation -q -w $WORK/wheel $REPO/tests/fixtures/hello-py"
  echo "baseline: pip install of the same project into a directory:"
  hyperfine --warmup 1 --runs 10 --style basic --prepare "rm -rf $WORK/target" \
    "python3 -m pip install --no-deps --no-build-isolation -q --target $WORK/target $REPO/tests/fixtures/hello-py"
}

trivial_bench() {
  echo
  echo "## fixed cost: a staging output writing three small files, three packages (warm staging cache)"
  local out="$WORK/trivial" b
  b="$KILN build --experimental --recipe benches/recipes/trivial-staging --output-dir $out"
  $b > /dev/null 2>&1
  echo "warm build (staging cache hit, 3 packages written and indexed):"
  hyperfine --warmup 3 --runs 30 --style basic "$b"
  echo "unchanged (--skip-unchanged, 3 packages kept):"
  hyperfine --warmup 3 --runs 30 --style basic "$b --skip-unchanged"
  /usr/bin/time -f "peak RSS, warm build: %M KB" $b 2>&1 >/dev/null | tail -1
  echo "baseline: a process that does nothing (/bin/true)"
  hyperfine --warmup 3 --runs 30 --style basic -N /bin/true
}

recipes_bench() {
  echo
  echo "## many recipes: 20 one-file recipes, each needing the previous one in its host environment"
  local dir="$WORK/chain" out="$WORK/chain-out" cache="$WORK/chain-cache" i prev
  mkdir -p "$dir/empty/noarch"
  echo '{"packages":{},"packages.conda":{}}' > "$dir/empty/noarch/repodata.json"
  for i in $(seq -w 1 20); do
    mkdir -p "$dir/recipes/r$i"
    {
      echo "package: {name: r$i, version: '1.0'}"
      if [ "$i" != 01 ]; then
        prev=$(printf %02d $((10#$i - 1)))
        echo "requirements: {host: [r$prev]}"
      fi
      echo "build:"
      echo "  script: [mkdir -p \$PREFIX/share, echo $i > \$PREFIX/share/r$i]"
    } > "$dir/recipes/r$i/recipe.yaml"
  done
  local one="$KILN build --recipe-dir $dir/recipes --output-dir $out -c file://$dir/empty"
  echo "one run with --recipe-dir (all planned first, ordered by kiln):"
  KILN_CACHE_DIR="$cache" hyperfine --warmup 1 --runs 5 --style basic --prepare "rm -rf $out" "$one"
  echo "one kiln build per recipe, in order:"
  KILN_CACHE_DIR="$cache" hyperfine --warmup 1 --runs 5 --style basic --prepare "rm -rf $out" \
    "for r in $dir/recipes/r*; do $KILN build --recipe \$r --output-dir $out -c file://$dir/empty > /dev/null 2>&1 || exit 1; done"
  echo "again, everything in the channel (--skip-existing):"
  $one > /dev/null 2>&1
  KILN_CACHE_DIR="$cache" hyperfine --warmup 1 --runs 10 --style basic "$one --skip-existing"
  echo "baseline: the 20 scripts alone"
  hyperfine --warmup 1 --runs 10 --style basic \
    "for i in \$(seq 20); do mkdir -p $WORK/b/share && echo \$i > $WORK/b/share/r\$i; done"
}

case "${1:-all}" in
  recipes) recipes_bench; exit 0 ;;
  trivial) trivial_bench; exit 0 ;;
  env) env_bench; exit 0 ;;
  variants) variants_bench; exit 0 ;;
  staging) staging_bench; exit 0 ;;
  sources) sources_bench; exit 0 ;;
  tests) tests_bench; exit 0 ;;
  relink) relink_bench; exit 0 ;;
  python) python_bench; exit 0 ;;
esac

echo
echo "## full build of examples/hello (2 outputs)"
hyperfine --warmup 1 --runs 10 --style basic \
  "$KILN build --recipe examples/hello --output-dir $WORK/hello"

# Packaging time as kiln reports it (file selection, hashing, prefix detection,
# info/, archive, rename), median of 3 builds; then the same bytes through tar | compressor.
packaging() {
  local recipe="$1" fmt="$2" out="$WORK/$(basename "$1")-$2"
  local times=()
  for _ in 1 2 3; do
    rm -rf "$out"
    local t
    t=$("$KILN" build --recipe "$recipe" --output-dir "$out" --package-format "$fmt" --keep-build 2>&1 \
        | sed -n 's/.*packaged in \([0-9.]*\) s.*/\1/p')
    times+=("$t")
  done
  printf '%s\n' "${times[@]}" | sort -n | sed -n 2p | xargs printf "kiln packaging (%s, median of 3): %s s\n" "$fmt"
  PREFIX_DIR=$(ls -d "$out"/bld/kiln_*/host_env*)
  du -sb "$PREFIX_DIR" | awk '{printf "prefix bytes: %d\n", $1}'
  ls -l "$out"/linux-64/*."${fmt#.}" 2>/dev/null | awk '{printf "package bytes: %d\n", $5}' || true
  if [ "$fmt" = conda ]; then
    hyperfine --warmup 1 --runs 3 --style basic "tar -C $PREFIX_DIR -cf - . | zstd -15 -T0 -q -c > /dev/null"
  else
    hyperfine --warmup 1 --runs 3 --style basic "tar -C $PREFIX_DIR -cf - . | bzip2 -9 -c > /dev/null"
  fi
}

echo
echo "## 10,000 small files"
packaging benches/recipes/many-files conda
packaging benches/recipes/many-files tar.bz2
echo
echo "## one 500 MB file"
packaging benches/recipes/big-file conda


staging_bench
trivial_bench
recipes_bench
env_bench
variants_bench
sources_bench
tests_bench
relink_bench
python_bench
