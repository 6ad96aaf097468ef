#!/usr/bin/env python3
"""Checks Kiln's layering rules; exits 1 on a violation. Run by `.ci/run`.

1. No import circle between the modules of a crate, at two levels: the crate's top-level
   modules, and the sibling submodules inside each module directory. A circle is allowed
   only where `tools/layers.toml` lists exactly its modules with the reason, so a new
   circle (or a module joining an allowed one) fails.
2. Crate dependencies point down: `kiln-kernels` depends on no Kiln crate; the crates listed
   under [deps] in `tools/layers.toml` depend on no Kiln crate outside their list.
3. The kernel layer (`crates/kiln-kernels/src`) never names `Tensor` outside comments.

Imports are read from the source text (`use crate::…`, `crate::a::b` paths, `super::`),
which is what a reader sees; no build is needed.
"""

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CRATES = ROOT / "crates"


def strip_comments(text):
    """Source without `//` comments and string literals (which may mention paths)."""
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text)
    return "\n".join(line.split("//", 1)[0] for line in text.splitlines())


def module_path(src, file):
    """['cpu', 'copy'] for src/cpu/copy.rs, ['cpu'] for src/cpu/mod.rs, [] for lib.rs."""
    parts = list(file.relative_to(src).with_suffix("").parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return parts


def referenced_paths(text, here):
    """Absolute module paths (lists) that the code of module `here` refers to."""
    out = []
    # `super` is the parent of the module (a.rs, a/mod.rs or a/b.rs alike).
    base = here
    for m in re.finditer(r"(\$?crate|(?:super::)+)(::)?\{?([\w:, {}]*)", text):
        head, rest = m.group(1), m.group(3)
        if head.endswith("crate"):
            root = []
        else:
            ups = head.count("super")
            if ups > len(base):
                continue
            root = base[: len(base) - ups]
        if m.group(0).rstrip().endswith("{") or "{" in m.group(0):
            names = re.findall(r"(?:^|[{,]\s*)(\w+)", rest)
        else:
            names = re.findall(r"^(\w+)", rest)
        for first in names:
            # The deeper segments are kept; resolution picks the longest existing module.
            tail = re.match(rf"{first}((?:::\w+)*)", rest[rest.find(first):])
            segs = [first] + [s for s in (tail.group(1).split("::") if tail else []) if s]
            out.append(root + segs)
    return out


def crate_modules(src):
    mods = {}
    for file in sorted(src.rglob("*.rs")):
        mods[tuple(module_path(src, file))] = file
    return mods


def resolve(path, mods):
    """The longest prefix of `path` that is a module of the crate."""
    for n in range(len(path), 0, -1):
        if tuple(path[:n]) in mods:
            return tuple(path[:n])
    return None


def sccs(nodes, edges):
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def module_graphs(crate_dir):
    """{scope: (nodes, edges)}: scope '' is the crate's top level, 'cpu' the siblings in cpu/."""
    src = crate_dir / "src"
    mods = crate_modules(src)
    graphs = {}
    for here, file in mods.items():
        if "tests" in here:
            continue
        text = strip_comments(file.read_text())
        # Test modules may reach anywhere.
        text = text.split("#[cfg(test)]", 1)[0]
        for path in referenced_paths(text, list(here)):
            target = resolve(path, mods)
            if target is None:
                continue
            # The level where the two modules part: their common prefix.
            k = 0
            while k < min(len(here), len(target)) and here[k] == target[k]:
                k += 1
            if k >= len(here) or k >= len(target):
                continue  # parent and child: a module may use its own submodules and parent
            scope = "::".join(here[:k])
            a, b = here[k], target[k]
            nodes, edges = graphs.setdefault(scope, (set(), {}))
            nodes.update([a, b])
            edges.setdefault(a, set()).add(b)
    return graphs


def main():
    rules = tomllib.loads((ROOT / "tools" / "layers.toml").read_text())
    allowed = {
        (c["crate"], c.get("scope", ""), tuple(sorted(c["modules"])))
        for c in rules.get("allowed_cycle", [])
    }
    failures = []
    seen_allowed = set()
    for crate_dir in sorted(CRATES.iterdir()):
        if not (crate_dir / "src").is_dir():
            continue
        for scope, (nodes, edges) in sorted(module_graphs(crate_dir).items()):
            for comp in sccs(nodes, edges):
                key = (crate_dir.name, scope, tuple(comp))
                if key in allowed:
                    seen_allowed.add(key)
                    continue
                where = f"{crate_dir.name}/src/{scope.replace('::', '/')}".rstrip("/")
                detail = "; ".join(
                    f"{a} -> {', '.join(sorted(edges[a] & set(comp)))}" for a in comp
                )
                failures.append(f"module circle in {where}: {comp} ({detail})")
    for key in sorted(allowed - seen_allowed):
        failures.append(f"tools/layers.toml allows a circle that no longer exists: {key}")

    # Crate dependencies.
    kiln = {d.name for d in CRATES.iterdir() if (d / "Cargo.toml").exists()}
    for crate, ok in rules.get("deps", {}).items():
        manifest = tomllib.loads((CRATES / crate / "Cargo.toml").read_text())
        deps = set(manifest.get("dependencies", {}))
        for name in sorted((deps & kiln) - set(ok)):
            failures.append(f"{crate} depends on {name}; its layer allows only {ok}")

    # The kernel layer never names the tensor.
    for file in sorted((CRATES / "kiln-kernels" / "src").rglob("*.rs")):
        for n, line in enumerate(strip_comments(file.read_text()).splitlines(), 1):
            if re.search(r"\bTensor\b", line):
                failures.append(f"{file.relative_to(ROOT)}:{n}: the kernel layer names Tensor")

    for f in failures:
        print(f"check_layers: {f}")
    if failures:
        return 1
    print("check_layers: ok (no new module circle; crate layers and the kernel layer hold)")
    return 0


def self_test():
    """The check finds a circle planted in a throwaway crate, and no false one."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        (src / "cpu").mkdir(parents=True)
        (src / "lib.rs").write_text("pub mod cpu;\npub mod tensor;\npub mod shape;\n")
        (src / "shape.rs").write_text("pub fn numel() {}\n")
        (src / "tensor.rs").write_text("use crate::cpu::copy;\nuse crate::shape::numel;\n")
        # The planted circle: cpu::copy names the tensor (cpu -> tensor -> cpu).
        (src / "cpu" / "mod.rs").write_text("pub mod copy;\npub mod add;\nuse self::copy::f;\n")
        (src / "cpu" / "copy.rs").write_text(
            "// crate::tensor in a comment is not an import\n"
            "use super::add::g;\nuse super::super::tensor::Tensor;\n"
        )
        (src / "cpu" / "add.rs").write_text("use crate::{shape::numel, cpu::copy};\n")
        graphs = module_graphs(Path(tmp))
        top = sccs(*graphs[""])
        inner = sccs(*graphs["cpu"])
        assert top == [["cpu", "tensor"]], top
        assert inner == [["add", "copy"]], inner
        assert graphs[""][1]["tensor"] == {"cpu", "shape"}, graphs[""][1]
    print("check_layers: self-test ok (planted circles found)")


if __name__ == "__main__":
    if "--self-test" in sys.argv:
        self_test()
        sys.exit(0)
    sys.exit(main())
