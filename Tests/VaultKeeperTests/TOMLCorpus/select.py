# SPDX-License-Identifier: Apache-2.0
"""Copies the TOML 1.0 cases of a toml-test checkout (its tests/ directory, listed in
files-toml-1.0.0) into this directory, keeping only those on which Python's tomllib, the
reference parser here, agrees with toml-test: valid documents must load to the expected tree
(compared through toml-test's JSON encoding), invalid ones must be refused.

    python3 select.py /path/to/toml-test/tests
"""
import datetime
import json
import math
import pathlib
import shutil
import sys
import tomllib

HERE = pathlib.Path(__file__).resolve().parent


def tagged(value):
    """tomllib's value in toml-test's JSON encoding."""
    if isinstance(value, dict):
        return {k: tagged(v) for k, v in value.items()}
    if isinstance(value, list):
        return [tagged(v) for v in value]
    if isinstance(value, bool):
        return {"type": "bool", "value": "true" if value else "false"}
    if isinstance(value, int):
        return {"type": "integer", "value": str(value)}
    if isinstance(value, float):
        return {"type": "float", "value": repr(value)}
    if isinstance(value, str):
        return {"type": "string", "value": value}
    if isinstance(value, datetime.datetime):
        return {"type": "datetime" if value.tzinfo else "datetime-local", "value": value}
    if isinstance(value, datetime.date):
        return {"type": "date-local", "value": value}
    if isinstance(value, datetime.time):
        return {"type": "time-local", "value": value}
    raise TypeError(type(value))


def same(ours, expected):
    if isinstance(expected, dict) and set(expected) == {"type", "value"} and not isinstance(expected["value"], (dict, list)):
        if not isinstance(ours, dict) or set(ours) != {"type", "value"} or ours["type"] != expected["type"]:
            return False
        kind, want, got = expected["type"], expected["value"], ours["value"]
        if kind == "float":
            a, b = float(got), float(want)
            return (math.isnan(a) and math.isnan(b)) or a == b
        if kind in ("datetime", "datetime-local"):
            w = datetime.datetime.fromisoformat(want.replace("z", "Z").replace("Z", "+00:00"))
            return got == w
        if kind == "date-local":
            return got == datetime.date.fromisoformat(want)
        if kind == "time-local":
            return got == datetime.time.fromisoformat(want)
        if kind == "integer":
            return int(got) == int(want)
        return got == want
    if isinstance(expected, dict):
        return isinstance(ours, dict) and set(ours) == set(expected) and all(same(ours[k], expected[k]) for k in expected)
    if isinstance(expected, list):
        return isinstance(ours, list) and len(ours) == len(expected) and all(same(a, b) for a, b in zip(ours, expected))
    return False


def main(source):
    source = pathlib.Path(source)
    kept = dropped = 0
    for name in (source / "files-toml-1.0.0").read_text().split():
        if not name.endswith(".toml"):
            continue
        path = source / name
        data = path.read_bytes()
        try:
            loaded = tomllib.loads(data.decode("utf-8"))
            ok = None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError, ValueError) as error:
            loaded, ok = None, error
        if name.startswith("valid/"):
            expected = json.loads(path.with_suffix(".json").read_text())
            agrees = ok is None and same(tagged(loaded), expected)
        else:
            agrees = ok is not None
        if not agrees:
            print("tomllib disagrees, left out:", name)
            dropped += 1
            continue
        target = HERE / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        if name.startswith("valid/"):
            shutil.copyfile(path.with_suffix(".json"), target.with_suffix(".json"))
        kept += 1
    shutil.copyfile(source.parent / "LICENSE", HERE / "LICENSE")
    print(f"kept {kept}, left out {dropped}")


if __name__ == "__main__":
    main(sys.argv[1])
