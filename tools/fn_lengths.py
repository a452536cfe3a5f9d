#!/usr/bin/env python3
"""Lists Rust functions longer than a limit (default 60 lines), counting from the `fn` line
to its closing brace. Usage: tools/fn_lengths.py [--max N] [--allow NAME ...] PATH..."""
import argparse, pathlib, re, sys

FN = re.compile(r'^\s*(?:pub(?:\([^)]*\))?\s+)?(?:const\s+)?(?:async\s+)?fn\s+(\w+)')

def functions(path):
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        m = FN.match(lines[i])
        if not m:
            i += 1
            continue
        depth, start, seen = 0, i, False
        j = i
        while j < len(lines):
            code = re.sub(r'"(?:[^"\\]|\\.)*"', '""', lines[j].split('//')[0])
            depth += code.count('{') - code.count('}')
            seen = seen or '{' in code
            if seen and depth <= 0:
                break
            if not seen and code.rstrip().endswith(';'):
                break
            j += 1
        yield m.group(1), start + 1, j - start + 1
        i += 1

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--max', type=int, default=60)
    ap.add_argument('--allow', nargs='*', default=[])
    ap.add_argument('paths', nargs='+')
    a = ap.parse_args()
    bad = 0
    for root in a.paths:
        for p in sorted(pathlib.Path(root).rglob('*.rs')):
            for name, line, n in functions(p):
                if n > a.max and name not in a.allow:
                    print(f'{p}:{line}: fn {name} is {n} lines')
                    bad += 1
    sys.exit(1 if bad else 0)

main()
