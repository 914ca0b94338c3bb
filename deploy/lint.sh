#!/usr/bin/env bash
# Static checks CI runs: clang-format on every C++ file, clang-tidy (.clang-tidy) on the changed
# ones. Exits non-zero on any formatting difference or clang-tidy finding.
#
# Usage: deploy/lint.sh [--all] [--base REV] [--format-only | --tidy-only] [BUILD_DIR]
#   BUILD_DIR      a configured build tree with compile_commands.json (default: build-test)
#   --all          clang-tidy on every .cpp in the build tree, not only the changed ones
#   --base REV     "changed" means changed since REV (default: git merge-base HEAD origin/main,
#                  or HEAD~1 without an origin/main), committed or not, plus new untracked files
#   LINT_JOBS=N    clang-tidy processes in parallel (default 1)
#
# The build precompiles common headers with GCC (target_precompile_headers); clang cannot read
# GCC's .gch files, so clang-tidy gets a copy of the compile database that includes the same
# headers as plain text and drops GCC-only warning flags.
set -euo pipefail
cd "$(dirname "$0")/.."

readonly kClangFormat=clang-format-14
readonly kClangTidy=clang-tidy-14

usage() {
  sed -n '4,10p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

all=0
base=""
do_format=1
do_tidy=1
build_dir=build-test
while [[ $# -gt 0 ]]; do
  case "$1" in
    --all) all=1 ;;
    --base)
      [[ $# -ge 2 ]] || usage
      base="$2"
      shift
      ;;
    --format-only) do_tidy=0 ;;
    --tidy-only) do_format=0 ;;
    -h | --help) usage ;;
    -*)
      echo "lint: unknown option: $1" >&2
      usage
      ;;
    *) build_dir="$1" ;;
  esac
  shift
done

need_tool() {
  command -v "$1" >/dev/null && return
  echo "lint: $1 is missing; installing $2" >&2
  local sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  "${sudo[@]}" apt-get install -y --no-install-recommends "$2" >&2
}

status=0

# Tracked files and new ones not yet added (ignored ones excluded), as they are on disk.
cxx_files() {
  git ls-files -z --cached --others --exclude-standard -- '*.cpp' '*.hpp' |
    while IFS= read -r -d '' f; do [[ -f "$f" ]] && printf '%s\0' "$f"; done
}

if [[ $do_format -eq 1 ]]; then
  need_tool "$kClangFormat" clang-format-14
  echo "lint: clang-format" >&2
  if ! cxx_files | xargs -0 -r "$kClangFormat" --dry-run --Werror; then
    echo "lint: formatting differs (fix with: $kClangFormat -i FILE...)" >&2
    status=1
  fi
fi

if [[ $do_tidy -eq 1 ]]; then
  need_tool "$kClangTidy" clang-tidy-14
  if [[ ! -f "$build_dir/compile_commands.json" ]]; then
    echo "lint: $build_dir/compile_commands.json not found; configure a build tree first" \
      "(cmake -S . -B $build_dir -G Ninja)" >&2
    exit 2
  fi
  db_dir=$(mktemp -d)
  trap 'rm -rf "$db_dir"' EXIT
  # Writes the filtered database and prints the absolute paths of the sources it holds.
  python3 - "$build_dir/compile_commands.json" "$db_dir" >"$db_dir/sources" <<'PY'
import json, os, shlex, shutil, sys

src, out = sys.argv[1], sys.argv[2]
gcc_only = ("-Wno-restrict", "-Wno-stringop-overflow", "-Wno-stringop-overread",
            "-Winvalid-pch", "-Werror")
pch_copies = {}

def plain_pch(path):
    # The same header at a path with no .gch beside it, so clang reads it as text.
    if path not in pch_copies:
        copy = os.path.join(out, "pch%d" % len(pch_copies), os.path.basename(path))
        os.makedirs(os.path.dirname(copy))
        shutil.copy(path, copy)
        pch_copies[path] = copy
    return pch_copies[path]

entries = []
for e in json.load(open(src)):
    args = e["arguments"] if "arguments" in e else shlex.split(e["command"])
    kept = []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "-include" and i + 1 < len(args) and "cmake_pch" in args[i + 1]:
            kept += ["-include", plain_pch(args[i + 1])]
            i += 2
            continue
        if a not in gcc_only:
            kept.append(a)
        i += 1
    entries.append({"directory": e["directory"], "file": e["file"], "arguments": kept})
    print(os.path.realpath(os.path.join(e["directory"], e["file"])))
json.dump(entries, open(os.path.join(out, "compile_commands.json"), "w"))
PY

  root=$(pwd -P)
  if [[ $all -eq 1 ]]; then
    mapfile -t files < <(grep "^$root/" "$db_dir/sources" | sort -u)
  else
    if [[ -z "$base" ]]; then
      if git rev-parse -q --verify origin/main >/dev/null; then
        base=$(git merge-base HEAD origin/main)
      else
        base=HEAD~1
      fi
    fi
    # A changed header brings in the .cpp of the same name beside it.
    mapfile -t changed < <({
      git diff --name-only --diff-filter=d "$base" -- '*.cpp' '*.hpp'
      git ls-files --others --exclude-standard -- '*.cpp' '*.hpp'
    } | sed 's/\.hpp$/.cpp/' | sort -u)
    files=()
    for f in "${changed[@]}"; do
      [[ -f "$f" ]] || continue
      if grep -qxF "$root/$f" "$db_dir/sources"; then
        files+=("$root/$f")
      elif [[ "$f" != *.cpp || "$f" == *_fuzz.cpp ]]; then
        : # a header without a .cpp of its name, or a fuzz target (not in the normal build)
      else
        echo "lint: $f is not in $build_dir/compile_commands.json; not checked" >&2
      fi
    done
    echo "lint: clang-tidy on ${#files[@]} file(s) changed since $(git rev-parse --short "$base")" >&2
  fi

  if [[ ${#files[@]} -gt 0 ]]; then
    log="$db_dir/tidy.log"
    printf '%s\0' "${files[@]}" |
      xargs -0 -r -n 1 -P "${LINT_JOBS:-1}" "$kClangTidy" -p "$db_dir" --quiet >"$log" 2>&1 || true
    # Any finding fails, not only WarningsAsErrors (clang-tidy exits 0 on plain warnings).
    if grep -qE '^[^ ]+:[0-9]+:[0-9]+: (warning|error): ' "$log"; then
      grep -vE '^[0-9]+ warnings? (and [0-9]+ errors? )?generated\.$|^Suppressed [0-9]+ warnings|^Use -header-filter|^Error while processing' "$log" >&2
      echo "lint: clang-tidy found $(grep -cE '^[^ ]+:[0-9]+:[0-9]+: (warning|error): ' "$log") problem(s)" >&2
      status=1
    elif grep -qE 'error:|Error while processing' "$log"; then
      cat "$log" >&2
      status=1
    fi
  fi
fi

exit $status
