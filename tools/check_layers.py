#!/usr/bin/env python3
"""Checks Kiln's layering rules; exits 1 on a violation. Run by `.ci/run`.

1. No import circle between the modules of a crate, at two levels: the crate's top-level
   modules, and the sibling submodules inside each module directory. A circle is allowed
   only where `tools/layers.toml` lists exactly its modules with the reason, so a new
   circle (or a module joining an allowed one) fails.
2. Crate dependencies point down: `kiln-kernels` depends on no Kiln crate; the crates listed
   under [deps] in `tools/layers.toml` depend on no Kiln crate outside their list (normal and
   build dependencies; tests may use any crate).
3. The kernel layer and the graph runtime (`crates/kiln-kernels/src`,
   `crates/kiln-runtime/src`) never name `Tensor` outside comments.
4. No function in the op declarations (`ops/` of kiln-kernels and kiln-core, `backend.rs`)
   is longer than 200 lines.

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
    """Source with comments, string and char literals blanked (they may mention paths),
    newlines kept so line numbers still hold."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    out.append("\n" if text[i] == "\n" else "")
                    i += 1
        elif re.match(r'r#*"', text[i:i + 8]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            hashes = re.match(r"r(#*)\"", text[i:]).group(1)
            end = text.find('"' + hashes, i + 2 + len(hashes))
            end = n if end < 0 else end + 1 + len(hashes)
            out.append('""' + "\n" * text.count("\n", i, end))
            i = end
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j + 1
        elif c == "'":
            # A char literal ('x', '\n', '"') or a lifetime ('a).
            m = re.match(r"'(\\.[^']*|[^\\'])'", text[i:])
            if m:
                out.append("' '")
                i += m.end()
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def drop_test_items(text):
    """`text` without the items under `#[cfg(test)]` (test code may reach anywhere)."""
    while True:
        m = re.search(r"#\[cfg\(test\)\]", text)
        if not m:
            return text
        i = m.end()
        brace, semi = text.find("{", i), text.find(";", i)
        if semi >= 0 and (brace < 0 or semi < brace):
            end = semi + 1
        else:
            depth, j = 0, brace
            while j < len(text):
                if text[j] == "{":
                    depth += 1
                elif text[j] == "}":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            end = j + 1
        text = text[: m.start()] + "\n" * text.count("\n", m.start(), end) + text[end:]


def use_tree_paths(tree):
    """Paths named by a `use` tree: 'a::{b, c::{d, self}}' gives a::b, a::c::d, a::c."""
    tree = re.sub(r"\s+as\s+\w+", "", tree)
    tree = re.sub(r"\s+", "", tree)
    paths = []

    def parse(prefix, s):
        # Split s at top-level commas.
        depth, start, parts = 0, 0, []
        for k, ch in enumerate(s):
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            elif ch == "," and depth == 0:
                parts.append(s[start:k])
                start = k + 1
        parts.append(s[start:])
        for p in parts:
            if not p:
                continue
            if "{" in p:
                head, inner = p.split("{", 1)
                segs = [x for x in head.split("::") if x]
                parse(prefix + segs, inner[: inner.rfind("}")])
            else:
                segs = prefix + [x for x in p.split("::") if x and x != "*"]
                if len(segs) > 1 and segs[-1] == "self":
                    segs = segs[:-1]
                paths.append(segs)

    parse([], tree)
    return paths


def referenced_paths(text, here):
    """Absolute module paths (lists) that the code of module `here` refers to."""
    text = re.sub(r"pub\s*\(\s*(?:in\s+[^)]*|crate|super|self)\s*\)", "pub", text)
    raw = []
    for m in re.finditer(r"\buse\s+([^;]+);", text):
        raw.extend(use_tree_paths(m.group(1)))
    no_uses = re.sub(r"\buse\s+[^;]+;", "", text)
    for m in re.finditer(r"(?<![\w:])(\$crate|crate|self|super)((?:\s*::\s*\w+)+)", no_uses):
        raw.append([m.group(1)] + [x.strip() for x in m.group(2).split("::") if x.strip()])
    out = []
    for segs in raw:
        if not segs:
            continue
        if segs[0] in ("crate", "$crate"):
            out.append(segs[1:])
            continue
        base = list(here)
        k = 0
        while k < len(segs) and segs[k] in ("super", "self"):
            if segs[k] == "super":
                if not base:
                    break
                base = base[:-1]
            k += 1
        if k:
            out.append(base + segs[k:])
    return [p for p in out if p]


def module_path(src, file):
    """['cpu', 'copy'] for src/cpu/copy.rs, ['cpu'] for src/cpu/mod.rs, [] for lib.rs."""
    parts = list(file.relative_to(src).with_suffix("").parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return parts


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
        text = drop_test_items(strip_comments(file.read_text()))
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


#: The op declarations, where no function may pass `MAX_FN_LINES` (a family's shape rule or
#: VJPs that outgrow it belong in a family of their own).
OP_DECLARATIONS = ["kiln-kernels/src/ops", "kiln-core/src/ops", "kiln-kernels/src/backend.rs"]
MAX_FN_LINES = 200


def long_functions(text, limit):
    """(name, first line, length) of each function body in `text` longer than `limit` lines:
    from its `fn` line to the closing brace at the same indentation. Declarations without a
    body (trait methods) are skipped."""
    lines = text.split("\n")
    found = []
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*)(?:pub(?:\([a-z]+\))? )?(?:const )?(?:unsafe )?fn (\w+)", line)
        if not m:
            continue
        head = "\n".join(lines[i : i + 20])
        brace, semi = head.find("{"), head.find(";")
        if semi != -1 and (brace == -1 or semi < brace):
            continue
        for j in range(i + 1, len(lines)):
            if lines[j] == m.group(1) + "}":
                if j - i + 1 > limit:
                    found.append((m.group(2), i + 1, j - i + 1))
                break
    return found


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
        tables = [manifest] + list(manifest.get("target", {}).values())
        deps = set()
        for table in tables:
            # Dev-dependencies are free: tests may drive a layer with the ones above it (a
            # graph test traces a kiln-nn model); nothing shipped links them.
            for key in ("dependencies", "build-dependencies"):
                for name, spec in table.get(key, {}).items():
                    package = spec.get("package", name) if isinstance(spec, dict) else name
                    deps.add(package)
        for name in sorted((deps & kiln) - set(ok)):
            failures.append(f"{crate} depends on {name}; its layer allows only {ok}")

    # The kernel layer and the runtime never name the tensor.
    for layer in ("kiln-kernels", "kiln-runtime"):
        for file in sorted((CRATES / layer / "src").rglob("*.rs")):
            for n, line in enumerate(strip_comments(file.read_text()).splitlines(), 1):
                if re.search(r"\bTensor\b", line):
                    failures.append(f"{file.relative_to(ROOT)}:{n}: {layer} names Tensor")

    # Op declarations stay readable: no function over MAX_FN_LINES lines.
    for place in OP_DECLARATIONS:
        path = CRATES / place
        files = sorted(path.rglob("*.rs")) if path.is_dir() else [path]
        for file in files:
            for name, line, n in long_functions(file.read_text(), MAX_FN_LINES):
                failures.append(
                    f"{file.relative_to(ROOT)}:{line}: fn {name} is {n} lines "
                    f"(op declarations stay under {MAX_FN_LINES})"
                )

    for f in failures:
        print(f"check_layers: {f}")
    if failures:
        return 1
    print("check_layers: ok (no new module circle; crate layers hold; kernels and runtime name no Tensor; op declarations' functions under 200 lines)")
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
        (src / "cpu" / "add.rs").write_text(
            "#[cfg(test)]\nmod tests { use crate::tensor::T; }\n"
            "const Q: char = '\"'; /* crate::tensor */\n"
            "use crate::{\n    shape::numel,\n    cpu::{copy, self},\n};\n"
        )
        graphs = module_graphs(Path(tmp))
        top = sccs(*graphs[""])
        inner = sccs(*graphs["cpu"])
        assert top == [["cpu", "tensor"]], top
        assert inner == [["add", "copy"]], inner
        assert graphs[""][1]["tensor"] == {"cpu", "shape"}, graphs[""][1]
    long = "fn short() {\n}\n" + "pub(crate) fn long<T>(x: T) {\n" + "    x;\n" * 5 + "}\n"
    long += "    fn declared(&self) -> u8;\n"
    assert long_functions(long, 5) == [("long", 3, 7)], long_functions(long, 5)
    print("check_layers: self-test ok (planted circles and a long function found)")


if __name__ == "__main__":
    if "--self-test" in sys.argv:
        self_test()
        sys.exit(0)
    sys.exit(main())
