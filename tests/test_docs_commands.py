"""The commands of the README and the docs run as written from the project folder.

Every shell command in a code block of README.md, docs/*.md, zoo/README.md, configs/README.md
and bench/README.md (and every inline `python train.py ...`-style span in their prose) that
calls ``train.py``, ``test.py`` or ``python -m visionfw COMMAND`` is checked without running
it: its options exist for that command (a recipe's or method's parameters given as options
included), it parses (required options given, values of the right kind), and the files and
folders it reads exist -- in the repository, under ``../shared`` when that folder is here, or
made by an earlier command of the same page. Paths under ``runs/`` (what ``make demo`` and the
training commands write) and placeholders in capitals (``RUN/``, ``FILE``) are left alone.
A few cheap commands (listings, layer tables, ``compare`` of committed reports, bicubic on
Set5, a conversion) are run for real. The README's Python snippets are run in a temporary
folder.
"""
import glob
import os
import re
import shlex
from dataclasses import dataclass, field

import click
import pytest
from click.testing import CliRunner

import visionfw
from tests.conftest import ROOT, SHARED

DOCS = ["README.md", *sorted(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")),
        "zoo/README.md", "configs/README.md", "bench/README.md"]
SHELL_LANGS = {"bash", "sh", "shell", "console", "zsh", ""}
PYTHONS = {".venv/bin/python", "python", "python3"}
REPO_PREFIXES = ("zoo/", "configs/", "model_defs/", "docs/", "bench/", "tests/", "visionfw/")
SHELL_BREAKS = {"|", "||", "&&", ";", "&", ">", ">>", "2>", "2>&1", "<"}
# A file named my*, such as model-dictionary.md's my_blocks.py and my.json, is the reader's own:
# the page shows what to put in it.
# Outputs, by (command, parameter): tracked so a later command of the page may read them.
OUTPUTS = {"convert": ("out",), "train": ("out", "save_dict"), "test": ("json_path", "save_dir"),
           "sr": ("out", "save_steps"), "export": ("out",), "summary": ("dump_json",),
           "rank-datasets": ("out", "json_path"), "redeg transfer": ("out",),
           "redeg evaluate": ("json_path",)}


@dataclass
class Command:
    doc: str
    line: int
    text: str           # the command as the page writes it (continuations joined)
    argv: list          # after the python executable, variables expanded
    fenced: bool        # from a code block (strict: parses as given) or an inline span
    produced: set = field(default_factory=set)   # paths written by earlier commands of the page

    def where(self):
        return f"{self.doc}:{self.line}: {self.text}"


# ---------------------------------------------------------------- extraction

def code_blocks(lines):
    """``(first line number, language, [lines])`` of fenced blocks (also indented ones, as in
    list items) and of 4-space indented blocks after a blank line; the rest of the page with
    those lines blanked, for the inline spans."""
    blocks, prose, i = [], list(lines), 0
    while i < len(lines):
        m = re.match(r"^(\s*)(```+|~~~+)\s*([\w+-]*)", lines[i])
        if m:
            indent, fence, lang = len(m.group(1)), m.group(2), m.group(3).lower()
            body, start = [], i + 1
            prose[i] = ""
            i += 1
            while i < len(lines) and not lines[i].strip().startswith(fence):
                text = lines[i]
                body.append(text[min(indent, len(text) - len(text.lstrip())):])
                prose[i] = ""
                i += 1
            if i < len(lines):
                prose[i] = ""
            blocks.append((start + 1, lang, body))
            i += 1
            continue
        if (lines[i].startswith("    ") and (i == 0 or not lines[i - 1].strip())
                and re.match(r"\s*(\.venv/bin/)?python3? ", lines[i])):
            body, start = [], i
            while i < len(lines) and (lines[i].startswith("    ") or not lines[i].strip()):
                body.append(lines[i][4:])
                prose[i] = ""
                i += 1
            blocks.append((start + 1, "", body))
            continue
        i += 1
    return blocks, prose


def logical_lines(first, body):
    """Backslash-continued lines joined: ``(line number of the first, text)``."""
    out, buf, start = [], "", None
    for n, text in enumerate(body, first):
        if start is None:
            start = n
        if text.rstrip().endswith("\\"):
            buf += text.rstrip()[:-1] + " "
            continue
        out.append((start, buf + text))
        buf, start = "", None
    if buf:
        out.append((start, buf))
    return out


def expand(text, env):
    return re.sub(r"\$\{(\w+)\}|\$(\w+)",
                  lambda m: env.get(m.group(1) or m.group(2), m.group(0)), text)


def shell_commands(doc, first, body):
    """The python invocations of a shell block, as a reader's shell would run them: variables
    (``W=../shared/weights``, ``IKC_FT="..."``) expanded, ``for X in a b; do ... done`` run
    once per value, comments and redirections dropped."""
    env, loops, found = {"PWD": str(ROOT)}, [], []
    lines = logical_lines(first, body)
    if any(t.lstrip().startswith("$ ") for _, t in lines):    # a console transcript
        lines = [(n, t.lstrip()[2:]) for n, t in lines if t.lstrip().startswith("$ ")]
    for n, text in lines:
        raw = text.strip()
        if not raw or raw.startswith("#"):
            continue
        while True:                                   # for V in a b; do [for ...; do] body
            m = re.match(r"for (\w+) in ([^;]*);\s*do\b\s*", raw)
            if not m:
                break
            loops.append((m.group(1), expand(m.group(2), env).split()))
            raw = raw[m.end():]
        ends = len(re.findall(r"(?:^|;)\s*done\b", raw))
        raw = re.sub(r"(?:^|;)\s*done\b;?", "", raw).strip()
        combos = [{}]
        for var, values in loops:
            combos = [{**c, var: v} for c in combos for v in values]
        for combo in combos:
            try:
                tokens = shlex.split(expand(raw, {**env, **combo}), comments=True)
            except ValueError as exc:
                found.append(("error", n, text.strip(), f"does not parse as shell: {exc}"))
                break
            if tokens and tokens[0] == "export":
                tokens = tokens[1:]
            if len(tokens) == 1 and re.match(r"^\w+=", tokens[0]):
                name, _, value = tokens[0].partition("=")
                env[name] = value
                continue
            while tokens and re.match(r"^\w+=", tokens[0]):       # VAR=x python ...
                tokens = tokens[1:]
            cut = next((i for i, t in enumerate(tokens) if t in SHELL_BREAKS), len(tokens))
            tokens = tokens[:cut]
            if tokens and tokens[0] == "cp" and len(tokens) >= 3:
                found.append(("cp", n, text.strip(), tokens[-1]))
            elif tokens and tokens[0] in PYTHONS:
                found.append(("python", n, " ".join(text.split()), tokens[1:]))
        for _ in range(ends):
            if loops:
                loops.pop()
    return found


INLINE = re.compile(r"^(?:(?:\.venv/bin/)?python3?\s+)?(?:train\.py|test\.py)\s|"
                    r"^(?:\.venv/bin/)?python3?\s+(?:-m\s+visionfw(?:\.degradation)?(?:\s|$)|"
                    r"\S+\.py\b)")


def page_commands(doc, page):
    """The commands of one page (markdown text), in page order, each with the paths that
    earlier commands and snippets of the page write."""
    blocks, prose = code_blocks(page.splitlines())
    items = []
    for first, lang, body in blocks:
        if lang not in SHELL_LANGS or (lang == "" and "python" not in "\n".join(body)):
            if lang == "python":
                for m in re.finditer(r"save_(?:dict|model)\([^,]+,\s*[\"']([^\"']+)[\"']",
                                     "\n".join(body)):
                    items.append((first, "made", m.group(1)))
            continue
        for kind, n, text, payload in shell_commands(doc, first, body):
            items.append((n, kind, (text, payload)))
    text = "\n".join(prose)
    for m in re.finditer(r"`([^`]+)`", text):
        span = " ".join(m.group(1).split())
        if INLINE.match(span):
            n = text.count("\n", 0, m.start()) + 1
            argv = [t for t in span.replace("[", " ").replace("]", " ").split() if t != "..."]
            if argv[0] in PYTHONS:
                argv = argv[1:]
            items.append((n, "inline", (span, argv)))
    out, produced = [], set()
    for n, kind, payload in sorted(items, key=lambda x: x[0]):
        if kind == "made":
            produced.add(norm(payload))
        elif kind == "cp":
            produced.add(norm(payload[1]))
        elif kind == "error":
            out.append(Command(doc, n, payload[0], None, True))
        else:
            text, argv = payload
            cmd = Command(doc, n, text, argv, kind == "python", set(produced))
            out.append(cmd)
            produced |= outputs_of(cmd)
    return out


def doc_commands():
    return [c for doc in DOCS
            for c in page_commands(doc, (ROOT / doc).read_text(encoding="utf-8"))]


def norm(path):
    return os.path.normpath(path.rstrip("/"))


# ---------------------------------------------------------------- the click commands

def entry_point(argv):
    """``(label, click command, kind, args)`` of a python invocation, or None when it is not
    one of ours (``-c``, a bench script: checked to exist by :func:`script_problem`)."""
    from visionfw.__main__ import main as vf_main
    from visionfw.cli.evaluate import main as test_main
    from visionfw.cli.train import main as train_main
    from visionfw.degradation.__main__ import cli as degradation_main

    if not argv:
        return None
    if argv[0] == "test.py":
        return "test.py", test_main, "test", argv[1:]
    if argv[0] == "train.py":
        rest = argv[1:]
        if rest and rest[0] in train_main.commands:
            return f"train.py {rest[0]}", train_main.commands[rest[0]], rest[0], rest[1:]
        return "train.py", train_main.commands["train"], "train", rest
    if argv[:2] in (["-m", "visionfw"], ["-m", "visionfw.degradation"]):
        group = vf_main if argv[1] == "visionfw" else degradation_main
        rest = argv[2:]
        if not rest or rest[0] not in group.commands:
            return f"python -m {argv[1]}", group, "group", rest
        command = group.commands[rest[0]]
        if isinstance(command, click.Group) and len(rest) > 1 and rest[1] in command.commands:
            return (f"python -m {argv[1]} {rest[0]} {rest[1]}", command.commands[rest[1]],
                    f"{rest[0]} {rest[1]}", rest[2:])       # a sub-group (redeg transfer)
        return f"python -m {argv[1]} {rest[0]}", command, rest[0], rest[1:]
    return None


def script_problem(argv):
    if argv and argv[0].endswith(".py") and argv[0] not in ("train.py", "test.py"):
        if not (ROOT / argv[0]).is_file() and not is_placeholder(argv[0]):
            return f"no script {argv[0]} in the project folder"
    return None


def owner_of(kind, ctx):
    """What ``extra_options`` reads undeclared options as, for this command."""
    from visionfw.cli.evaluate import _method_params_of
    from visionfw.cli.train import _recipe_params_of, _replayed_settings
    from visionfw.methods.base import is_method

    p = ctx.params
    if kind == "test":
        model = p.get("model")
        return lambda: _method_params_of(model if model and is_method(model) else None)
    if kind == "sr":
        return lambda: _method_params_of(p.get("method")) if p.get("method") else ("sr", set())
    if kind == "train":
        if (p.get("summary") or p.get("save_dict")) and not p.get("config_path"):
            return lambda: ("--summary", set())
        from visionfw.cli.common import parse_params
        from visionfw.train.config import TrainConfig

        def recipe_params():
            model, recipe, scale = p.get("model"), p.get("recipe"), p.get("scale")
            if p.get("config_path"):
                saved, _ = _replayed_settings(p["config_path"])
                model = model or saved.get("model")
                recipe = recipe or saved.get("recipe")
                scale = scale or saved.get("scale")
            return _recipe_params_of(TrainConfig(
                model=model, hparams=parse_params(p.get("params") or ()), scale=scale,
                recipe=recipe))

        return recipe_params
    return None


_PARSED = {}


def parse(cmd):
    """``((kind, click context), None)`` of a command parsed as click parses it, or ``(None,
    reason)``: a one-line reason when it does not parse or names an option that neither its
    command nor its recipe/method takes. Code blocks parse strictly (required options, values);
    an inline span may be a fragment, so only its option names are checked."""
    key = (tuple(cmd.argv), cmd.fenced)
    if key not in _PARSED:
        _PARSED[key] = _parse(cmd)
    return _PARSED[key]


def _parse(cmd):
    from visionfw.cli.common import extra_options
    from visionfw.errors import VisionfwError

    ep = entry_point(cmd.argv)
    if ep is None:
        return None, script_problem(cmd.argv)
    label, command, kind, args = ep
    if kind == "group":
        if not args and not cmd.fenced:
            return None, None
        return None, (f"{label}: no command {args[0] if args else '(none)'!r}; valid: "
                      f"{', '.join(sorted(command.commands))}")
    # strictly: a code block, unless it reads ../shared on a machine without it, or a folder
    # under runs/ that an earlier step of the page (a shell line such as mkdir or ln) makes
    # (click checks some paths while parsing)
    strict = (cmd.fenced and (SHARED.is_dir() or not any("../shared/" in a for a in args))
              and not any(a.startswith("runs/") and not (ROOT / a).exists() for a in args))
    try:
        ctx = command.make_context(label, list(args), resilient_parsing=not strict)
    except click.ClickException as exc:
        return None, f"{label}: {' '.join(exc.format_message().split())}"
    owner = owner_of(kind, ctx)
    try:
        if kind == "sr":                  # INPUTS swallow unknown options; sr hands them back
            from visionfw.cli.sr import _split_options

            try:
                ctx.params["inputs"] = _split_options(ctx, ctx.params.get("inputs") or ())
            except click.UsageError:
                if strict:
                    raise
                ctx.params["inputs"] = []     # `python -m visionfw sr --method X` in prose
        if strict and ctx.args:
            extra_options(ctx, owner or (lambda: (label, set())))
        elif not strict:
            declared = {o for p in command.get_params(ctx) for o in (*p.opts, *p.secondary_opts)}
            unknown = [t.split("=")[0] for t in args
                       if t.startswith("--") and t.split("=")[0] not in declared]
            model = ctx.params.get("model") or ""
            if unknown and owner is None:
                return None, f"{label}: no such option: {unknown[0]}"
            if unknown and not (is_placeholder(model) or is_user_file(model)):
                what, names = owner()
                bad = [u for u in unknown if u[2:].replace("-", "_") not in names]
                if bad:
                    return None, f"{label}: no such option: {bad[0]} (nor one of {what})"
    except click.ClickException as exc:
        return None, f"{label}: {' '.join(exc.format_message().split())}"
    except VisionfwError as exc:
        return None, f"{label}: {exc}"
    return (kind, ctx), None


def outputs_of(cmd):
    parsed = None
    if cmd.argv is not None:
        try:
            parsed, _ = parse(cmd)
        except Exception:                     # reported by the test itself
            parsed = None
    if not parsed:
        return set()
    kind, ctx = parsed
    return {norm(str(ctx.params[k])) for k in OUTPUTS.get(kind, ()) if ctx.params.get(k)}


# ---------------------------------------------------------------- paths

def is_placeholder(path):
    """``RUN/best.weights.h5``, ``FILE``, ``YOUR_IMAGES/``, ``S``: a part in capitals that the
    reader replaces (letters and underscores only, so ``B100`` and ``T91`` are real names)."""
    return any(re.fullmatch(r"[A-Z][A-Z_]*", part.split(".")[0])
               for part in path.replace("=", "/").split("/") if part)


def is_user_file(path):
    return os.path.basename(path.rstrip("/")).startswith("my")


def path_problem(path, produced, what="reads"):
    """Why ``path`` (as the command gives it, relative to the project folder) is not there, or
    None when it is, is made by an earlier command, is a run output or a placeholder."""
    if path in ("...",) or path.endswith("/...") or path.startswith("..."):
        return f"{what} {path!r}, a literal '...' where a real path belongs"
    if path.startswith("../shared/"):
        if not SHARED.is_dir():
            return None
        return None if glob.glob(str(ROOT / path)) else f"{what} {path}, which does not exist"
    if (path.startswith("runs/") or is_placeholder(path) or is_user_file(path)
            or norm(path) in produced or any(norm(path).startswith(p + os.sep) for p in produced)):
        return None
    if glob.glob(str(ROOT / path)):
        return None
    return f"{what} {path}, which is not in the project folder (nor made by an earlier command)"


def repo_paths(tokens):
    """Every token (or part after ``=``) that names something in the repository or ../shared."""
    for token in tokens:
        for part in [token, *token.split("=")[1:]]:
            part = re.sub(r":\d+$", "", part)
            if part.startswith(REPO_PREFIXES) or part.startswith("../shared/"):
                yield part


def input_paths(kind, ctx):
    """``(flag, path)`` of the files and folders the command reads, from its parsed options."""
    p = ctx.params

    def files(key):
        value = p.get(key)
        return [] if value is None else [value] if isinstance(value, str) else list(value)

    out = []
    model = p.get("model")
    if model and model.endswith(".json"):
        out.append(("MODEL", model))
    for key, flag in [("plugins", "--plugin"), ("config_path", "--config"),
                      ("init_weights", "--init-weights"), ("train_dirs", "--train-dir"),
                      ("val_dirs", "--val-dir"), ("lr_dir", "--lr-dir"),
                      ("checkpoint", "CHECKPOINT"), ("items", "REPORT|RUN"),
                      ("inputs", "INPUTS"), ("eval_datasets", "--eval-dataset")]:
        out += [(flag, v) for v in files(key)]
    if kind == "export":
        out += [("WEIGHTS", v) for v in files("weights")]
    if kind in ("test", "sr"):
        for v in files("weights"):
            v = v.split("=", 1)[1] if re.match(r"^[\w+-]+=", v) else v
            if v != "bicubic":
                out.append(("--weights", v))
    if kind == "sr" and p.get("kernel_file"):
        out.append(("--kernel", re.sub(r":\d+$", "", p["kernel_file"])))
    if kind == "rank-datasets":
        out += [("--dataset", v) for v in files("datasets") if v != "embedded"]
    if kind in ("redeg transfer", "redeg evaluate"):
        for key, flag in [("run", "--run"), ("pair", "--pair"), ("targets", "--to"),
                          ("dataset", "--dataset"), ("source", "--source")]:
            out += [(flag, v) for v in files(key)]
    return out


def dataset_problems(ctx):
    """test.py looks a dataset that is not a folder up under --data-root."""
    root = ctx.params.get("data_root")
    for name in ctx.params.get("datasets") or ():
        if (ROOT / name).is_dir() or is_placeholder(name) or name.startswith("runs/"):
            continue
        if name.startswith("../shared/"):       # a folder given as a path: checked as one
            if SHARED.is_dir():
                yield f"--dataset {name}: no such folder"
            continue
        if root is None:
            yield (f"--dataset {name} is not a folder here and the command gives no "
                   "--data-root to look it up under")
        elif "..." in root:
            yield f"--data-root {root!r}, a literal '...' where a real folder belongs"
        elif root.startswith("../shared/") and not SHARED.is_dir():
            continue
        elif not (ROOT / root / name).is_dir():
            yield f"--dataset {name}: no folder {root}/{name}"


def problems(cmd):
    if cmd.argv is None:
        return ["does not parse as shell"]
    found = []
    if cmd.fenced:
        found += [f"a literal {t!r} where a value belongs" for t in cmd.argv
                  if t == "..." or t.endswith("=...")]
        found += [f"{t!r} names a shell variable the page never sets" for t in cmd.argv
                  if re.search(r"\$\{?\w", t)]
    parsed, reason = parse(cmd)
    if reason:
        found.append(reason)
    for path in repo_paths(cmd.argv):
        reason = path_problem(path, cmd.produced, "names")
        if reason:
            found.append(reason)
    if parsed:
        kind, ctx = parsed
        for flag, path in input_paths(kind, ctx):
            reason = path_problem(path, cmd.produced, f"{flag} reads")
            if reason and reason not in found:
                found.append(reason)
        if kind == "test":
            found += list(dataset_problems(ctx))
        found += [f"writes {path}, over files of the repository (write under runs/)"
                  for path in outputs_of(cmd) if path.startswith(REPO_PREFIXES)]
    return list(dict.fromkeys(found))


COMMANDS = doc_commands()


def test_the_docs_have_commands_to_check():
    by_doc = {c.doc for c in COMMANDS if c.argv}
    assert {"README.md", "zoo/README.md", "configs/README.md", "docs/published-weights.md",
            "docs/recipes-and-methods.md", "bench/README.md"} <= by_doc, sorted(by_doc)
    assert sum(c.fenced for c in COMMANDS) > 60


def test_every_doc_command_names_options_and_paths_that_exist():
    failures = [f"{c.where()}\n    -> {p}" for c in COMMANDS for p in problems(c)]
    assert not failures, f"{len(failures)} problem(s):\n" + "\n".join(failures)


def test_rank_datasets_states_its_cost_and_gives_a_cheap_variant():
    ranks = [c for c in COMMANDS if c.fenced and c.doc == "README.md"
             and c.argv[:2] == ["train.py", "rank-datasets"]]
    assert ranks, "the README has no train.py rank-datasets command"
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    before = "\n".join(lines[max(0, ranks[0].line - 16):ranks[0].line])
    assert re.search(r"\bhours\b", before), \
        f"README.md:{ranks[0].line}: rank-datasets trains for hours and the text above it " \
        "does not say so"
    small = [c for c in ranks if any(a.startswith("B=") for a in c.argv) and "--out" in c.argv]
    assert small, "no small rank-datasets variant (a smaller network, in its own --out)"


def commands_of(block):
    return page_commands("example.md", f"```bash\n{block}\n```\n")


@pytest.mark.parametrize("block, expected", [
    # what the docs said before they were fixed
    (".venv/bin/python test.py --weights run/best.weights.h5 --dataset Set5 --per-image",
     ["--weights reads run/best.weights.h5", "gives no --data-root"]),
    (".venv/bin/python test.py bicubic --scale 4 --dataset Set5 --data-root ...",
     ["a literal '...'"]),
    ("python -m visionfw convert vdsr-y model_epoch_50.pth vdsr.weights.h5",
     ["CHECKPOINT reads model_epoch_50.pth"]),
    (".venv/bin/python -m visionfw sr photos/ --weights bicubic --scale 4 --out runs/sr",
     ["INPUTS reads photos/"]),
    (".venv/bin/python test.py --weights zoo/sftmd_nb8_nf32_x4.weights.h5 --dataset Set5 \\\n"
     "    --data-root ../shared/data/benchmark --json zoo/reports/x.json",
     ["writes zoo/reports/x.json, over files of the repository"]),
    # options: the command's, the recipe's or the method's, and nothing else
    (".venv/bin/python train.py ikc --param nf=32 --sftmd-file zoo/sftmd_nb8_nf32_x4.weights.h5",
     ["no such option: --sftmd-file (did you mean --sftmd?)"]),
    (".venv/bin/python test.py bicubic --dataset Set5 --data-root ../shared/data/benchmark "
     "--iterations 7", ["no such option: --iterations"]),
    (".venv/bin/python test.py ikc --weights RUN --dataset Set5 --data-root X --iteration 7",
     ["no such option: --iteration (did you mean --iterations?)"]),
    (".venv/bin/python train.py srresnet --stepz 10", ["no such option: --stepz"]),
    (".venv/bin/python -m visionfw sumary srresnet", ["no command 'sumary'"]),
    (".venv/bin/python test.py --weights RUN --per-image", ["Missing option '--dataset'"]),
    (".venv/bin/python -m visionfw summary model_defs/nope.json", ["model_defs/nope.json"]),
    # variables and loops are expanded as the shell does; outputs of earlier commands count
    ("for s in 2 4; do\n  .venv/bin/python test.py bicubic --scale $s --dataset $ds \\\n"
     "      --data-root ../shared/data/benchmark\ndone", ["'$ds' names a shell variable the page never sets"]),
    ("python -m visionfw convert vdsr-y RUN/v.pth out.weights.h5\n"
     "python test.py --weights out.weights.h5 --dataset RUN/Set5", []),
    ("D=../shared/data\n.venv/bin/python train.py rank-datasets --dataset $D/train/T91 "
     "--eval-dataset $D/benchmark/Set5 --param B=4 --steps 500 --out runs/rank-small", []),
])
def test_the_checker_catches_what_does_not_run(block, expected):
    cmds = commands_of(block)
    assert cmds
    found = " | ".join(p for c in cmds for p in problems(c))
    for text in expected:
        assert text in found, found
    if not expected:
        assert not found


# ---------------------------------------------------------------- run the cheap ones

def cheap(cmd):
    """Commands that need no training and take seconds: listings, layer tables (not the
    papers' configs, which tests/test_configs.py dry-runs), compare, bicubic on Set5 alone,
    a conversion of a published file."""
    parsed, _ = parse(cmd)
    if not parsed or not cmd.fenced:
        return False
    kind, ctx = parsed
    p = ctx.params
    if kind in ("models", "recipes", "methods", "summary", "compare"):
        return not (kind == "summary" and p.get("model", "").endswith(".json"))
    if kind == "train":
        return bool(p.get("summary")) and not p.get("config_path") and \
            not (p.get("model") or "").endswith(".json")
    if kind == "test":
        return p.get("model") == "bicubic" and list(p.get("datasets")) == ["Set5"]
    if kind == "convert":
        return p["checkpoint"].startswith("../shared/")
    return False


CHEAP = {}
for _c in COMMANDS:
    if _c.argv and cheap(_c):
        CHEAP.setdefault(tuple(_c.argv), _c)
SHARED_USE = {k for k, c in CHEAP.items() if any(a.startswith("../shared/") for a in c.argv)}


def test_the_cheap_commands_cover_each_kind():
    kinds = {parse(c)[0][0] for c in CHEAP.values()}
    assert {"models", "recipes", "methods", "summary", "compare", "train", "test",
            "convert"} <= kinds, kinds


@pytest.mark.parametrize("argv", sorted(CHEAP), ids=lambda a: " ".join(a)[:60])
def test_cheap_doc_command_runs(argv, tmp_path, monkeypatch):
    from visionfw.__main__ import main as vf_main
    from visionfw.cli.evaluate import main as test_main
    from visionfw.cli.train import main as train_main

    cmd = CHEAP[argv]
    if argv in SHARED_USE and not SHARED.is_dir():
        pytest.skip("../shared is not present")
    monkeypatch.chdir(ROOT)
    (kind, ctx), _ = parse(cmd)
    args = list(argv)
    for flag in ("--json", "--out", "--save-dict", "--save-dir"):   # outputs into tmp_path
        if flag in args:
            i = args.index(flag) + 1
            args[i] = str(tmp_path / os.path.basename(args[i]))
    if kind == "convert":
        args[args.index(ctx.params["out"])] = str(tmp_path / "converted.weights.h5")
    top, rest = {"train.py": (train_main, args[1:]), "test.py": (test_main, args[1:])}.get(
        args[0], (vf_main, args[2:]))
    result = CliRunner().invoke(top, rest, prog_name=args[0])
    assert result.exit_code == 0, (f"{cmd.where()}\n    exit {result.exit_code}: "
                                   f"{result.output[-2000:]}")


def test_save_model_makes_the_folder(tmp_path):
    from visionfw.errors import CheckpointError

    model = visionfw.build_model("srresnet", B=1, filters=8, scale=2)
    path = visionfw.save_model(model, tmp_path / "run" / "deeper" / "best.weights.h5")
    assert visionfw.load_model(path).count_params() == model.count_params()
    assert sorted(p.name for p in (tmp_path / "run" / "deeper").iterdir()) == ["best.weights.h5"]
    (tmp_path / "file").write_text("")
    with pytest.raises(CheckpointError, match=r"^\S+x\.weights\.h5: cannot make folder \S+file: a "
                                              r"file of that name is in the way$"):
        visionfw.save_model(model, tmp_path / "file" / "x.weights.h5")


# ---------------------------------------------------------------- the README's Python

SKIP_SNIPPETS = {}     # first line of a README snippet -> why it is not run (none today)


def python_snippets(doc):
    lines = (ROOT / doc).read_text(encoding="utf-8").splitlines()
    blocks, _ = code_blocks(lines)
    return [(n, "\n".join(body)) for n, lang, body in blocks if lang == "python"]


def test_readme_python_snippets_run(tmp_path, monkeypatch):
    """Run in order in one namespace (a later snippet uses the names of an earlier one), in a
    temporary folder, so the files they write land there."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(ROOT))
    snippets = python_snippets("README.md")
    everything = "\n".join(code for _, code in snippets)
    assert all(f"visionfw.{name}(" in everything
               for name in ("build", "model_dict", "build_model", "save_model", "load_model"))
    scope = {}
    for n, code in snippets:
        first = code.strip().splitlines()[0]
        if first in SKIP_SNIPPETS:
            continue
        try:
            exec(compile(code, f"README.md:{n}", "exec"), scope)
        except Exception as exc:
            pytest.fail(f"README.md:{n}: the snippet starting {first!r} fails: "
                        f"{type(exc).__name__}: {exc}")
        for path in re.findall(r"save_(?:model|dict)\([^,]+,\s*[\"']([^\"']+)", code):
            assert (tmp_path / path).is_file(), f"README.md:{n}: {path} was not written"


def test_model_table_of_the_dictionary_doc_has_the_registered_defaults():
    """docs/model-dictionary.md's table: every model with exactly its hyperparameters and
    their defaults (tests/test_model_dictionary_doc.py checks the names)."""
    from visionfw import models

    doc = (ROOT / "docs" / "model-dictionary.md").read_text(encoding="utf-8")
    table = doc[doc.index("\n## Registered models\n"):]
    rows = re.findall(r"^\| `([^`]+)` \| (.*?) \|", table, re.M)
    assert sorted(name for name, _ in rows) == visionfw.model_names()
    for name, cell in rows:
        listed = dict(re.findall(r"`(\w+)` \(([^)]*)\)", cell))
        registered = {k: repr(hp.default) for k, hp in models.model_hparams(name).items()}
        assert listed == registered, f"docs/model-dictionary.md, model {name}"
