"""The README as a user reads it: every ```python block runs as written, and every `--flag` it names
for a command is an option of that command's parser."""
from __future__ import annotations

import re
import shlex
import shutil
import traceback
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
EXAMPLE = ROOT / "rlse_fast" / "data" / "example_lr.png"
PHOTO = ROOT.parent / "shared" / "data" / "photos" / "tiny_3faces_128.png"
IMAGE = re.compile(r"""["']([^"'\n]+\.(?:png|jpe?g|webp|gif|bmp|tiff?))["']""", re.IGNORECASE)


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """[(language, code)] of the ``` blocks, in order."""
    return [(m.group(1).strip().lower(), m.group(2)) for m in re.finditer(r"^```([^\n`]*)\n(.*?)^```", text, re.M | re.S)]


def python_blocks() -> list[str]:
    return [code for lang, code in fenced_blocks(README.read_text()) if lang in ("python", "py")]


def _make_inputs(block: str, where: Path) -> None:
    """Every image the block names by a relative path: copied from the repository where it is there
    (e.g. the bundled example face), else made here: a photo when the name says so, else a face of
    the size in its name (face16.png: 16 px), else 8 px, from the bundled example face."""
    for name in IMAGE.findall(block):
        target = where / name
        if Path(name).is_absolute() or target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if (ROOT / name).is_file():
            shutil.copy(ROOT / name, target)
            continue
        face = Image.open(EXAMPLE).convert("RGB")
        if re.search(r"photo|group|family|scan|crowd|party|class", Path(name).stem, re.I):
            img = Image.open(PHOTO).convert("RGB") if PHOTO.is_file() else face.resize((128, 128), Image.BICUBIC)
        else:
            size = re.search(r"(\d+)", Path(name).stem)
            side = int(size.group(1)) if size and 2 <= int(size.group(1)) <= 512 else 8
            img = face.resize((side, side), Image.BICUBIC)
        img.save(target)


def test_readme_has_a_python_example_with_its_imports():
    blocks = python_blocks()
    assert blocks, "README.md shows no ```python block: the Python API must be documented with a runnable example"
    assert any("import" in b and "Restorer" in b for b in blocks), "no README block imports and uses Restorer"


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_readme_python_block_runs_as_written(index, tmp_path, monkeypatch):
    block = python_blocks()[index]
    _make_inputs(block, tmp_path)
    monkeypatch.chdir(tmp_path)
    try:
        exec(compile(block, f"README.md python block {index + 1}", "exec"), {"__name__": "__main__"})
    except BaseException:  # noqa: BLE001 (SystemExit from a block is a failure too)
        pytest.fail(f"README.md python block {index + 1} fails as written:\n{block}\n{traceback.format_exc()}",
                    pytrace=False)


# ----------------------------------------------------------------------------- flags

def _parsers() -> tuple[set[str], dict[str, set[str]]]:
    """(the top-level options, {subcommand: its options})."""
    from rlse_fast.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    top = {s for a in parser._actions for s in a.option_strings}
    return top, {name: {s for a in p._actions for s in a.option_strings} for name, p in sub.choices.items()}


def _words(line: str) -> list[str]:
    line = line.split(" #", 1)[0]
    try:
        return shlex.split(line)
    except ValueError:
        return line.split()


def _command_uses(text: str, commands: set[str]) -> list[tuple[str, str | None, str]]:
    """(the README line, the subcommand or None for the top level, a flag) for every flag given to
    `rlse-fast` (or `-m rlse_fast`) in code: fenced lines and inline spans. An inline span that
    starts with a subcommand (`sr --fit`) counts as that command's."""
    uses = []
    spans = [ln for lang, code in fenced_blocks(text) if lang not in ("python", "py") for ln in code.splitlines()]
    prose = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    spans += re.findall(r"`([^`\n]+)`", prose)
    for span in spans:
        words = _words(span)
        for i, w in enumerate(words):
            starts = w in ("rlse-fast", "rlse_fast") or (i == 0 and w in commands)
            if not starts:
                continue
            rest = words[i:] if w in commands else words[i + 1:]
            command = rest[0] if rest and rest[0] in commands else None
            for word in rest[1:] if command else rest:
                if word in ("|", "&&", ";", ">", "2>&1"):
                    break
                if word.startswith("--"):
                    uses.append((span.strip(), command, word.split("=", 1)[0]))
            break
    return uses


def test_every_flag_the_readme_names_exists():
    top, subs = _parsers()
    text = README.read_text()
    uses = _command_uses(text, set(subs))
    missing = [f"{flag} ({'rlse-fast ' + cmd if cmd else 'rlse-fast'}): {line}" for line, cmd, flag in uses
               if flag not in (subs[cmd] if cmd else top)]
    assert not missing, "README names options its commands lack:\n" + "\n".join(missing)
    # a flag named alone in the prose (`--weights celeba64`) must be some command's, or another tool's
    # shown on a README command line (`pip install --no-build-isolation`)
    others = {w.split("=", 1)[0] for lang, code in fenced_blocks(text) for ln in code.splitlines()
              if "rlse-fast" not in ln and "rlse_fast " not in ln for w in _words(ln) if w.startswith("--")}
    known = top.union(*subs.values()) | others
    prose = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    alone = {m.split()[0].split("=", 1)[0] for m in re.findall(r"`(--[a-z][a-z0-9*<>-]*[^`\n]*)`", prose)}
    # a family written with a wildcard or a placeholder (`--w-*`, `--w-<term>`): some option must start so
    family = re.compile(r"[*<].*$")
    unknown = [f for f in alone - known if not (family.search(f) and any(k.startswith(family.sub("", f)) for k in known))]
    assert not unknown, f"README names options no command has: {sorted(unknown)}"


def test_flag_check_catches_a_flag_a_command_lacks():
    """The checker itself: a made-up flag, and a real flag given to the wrong command, are found."""
    _, subs = _parsers()
    text = "```bash\nrlse-fast sr a.png b.png --no-such-flag\nrlse-fast info celeba64 --fit\n```\nand `photo --upscale 2`"
    found = [(cmd, flag) for _, cmd, flag in _command_uses(text, set(subs)) if flag not in subs[cmd]]
    assert found == [("sr", "--no-such-flag"), ("info", "--fit")]
    assert ("photo", "--upscale") in [(c, f) for _, c, f in _command_uses(text, set(subs))]


def test_inputs_are_made_for_the_names_a_block_reads(tmp_path):
    _make_inputs('r.face(Image.open("face16.png")); r.photo(Image.open("group.jpg"))\n'
                 'Image.open("rlse_fast/data/example_lr.png")', tmp_path)
    assert Image.open(tmp_path / "face16.png").size == (16, 16)
    assert min(Image.open(tmp_path / "group.jpg").size) >= 64
    assert np.array_equal(np.asarray(Image.open(tmp_path / "rlse_fast/data/example_lr.png")),
                          np.asarray(Image.open(EXAMPLE)))
