#!/usr/bin/env python3
"""Validate yocto/kas/*.yml offline, with kas's own schema and loader.

Each file is checked against kas's JSON schema (kas/schema-kas.json, the one
kas validates with) using jsonschema; then each top-level build file is loaded
the way `kas build` loads it (kas.includehandler: schema, header version,
includes, lock files) and the merged configuration is checked: machine,
distro, target, the local layer, and a full commit id and a branch on every
remote repository (`pin_problems`: no exceptions, an unpinned layer fails).
No repository is cloned.

Prints one line per check; exits 1 if any fails.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import logging
import os
import re
import sys
import tempfile
from pathlib import Path

import jsonschema
import yaml

import kas
from kas.context import create_global_context
from kas.includehandler import IncludeHandler

from tally import check, summary  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
KAS_DIR = ROOT / "yocto/kas"
TOPS = {"phare-rpi4.yml": "raspberrypi4-64", "phare-rpi5.yml": "raspberrypi5"}
REMOTES = {"bitbake", "openembedded-core", "meta-openembedded", "meta-raspberrypi", "meta-lts-mixins"}
# The repository that holds the kas files: its layer comes from this tree.
LOCAL = "phare"
COMMIT = re.compile(r"^[0-9a-f]{40}$")


def pin_problems(repos: dict) -> dict[str, str]:
    """Every remote repository of a merged kas configuration that is not
    pinned, with why: each needs a url, a full 40-hex commit and the branch
    that commit is on (kas refuses a commit that is not on it). A branch
    alone follows whatever is pushed to it: a build would not be repeatable."""
    problems = {}
    for name in sorted(set(repos) - {LOCAL}):
        r = repos[name] or {}
        commit = str(r.get("commit") or "")
        if not r.get("url"):
            problems[name] = "no url"
        elif not COMMIT.match(commit):
            problems[name] = f"no full commit id (commit: {commit or 'none'})"
        elif not r.get("branch"):
            problems[name] = f"commit {commit} names no branch"
    return problems


def load(top: Path) -> tuple[dict, list]:
    """The configuration of a top-level kas file as `kas build` merges it
    (includes, lock file), and the repositories it misses."""
    return IncludeHandler([str(top)], use_lock=True).get_config()


def setup_kas() -> None:
    """kas's loader runs git (to find the repository's top) through a kas
    context; give it a throw-away work directory."""
    os.environ["KAS_WORK_DIR"] = tempfile.mkdtemp(prefix="phare-kas-")
    create_global_context(argparse.Namespace(no_color=True))



def main() -> int:
    logging.basicConfig(level=logging.ERROR, format="kas: %(message)s")
    schema_path = Path(kas.__file__).parent / "schema-kas.json"
    schema = json.loads(schema_path.read_text())
    validator_cls = jsonschema.validators.validator_for(schema)
    validator_cls.check_schema(schema)
    validator = validator_cls(schema)
    print(f"kas {kas.__version__}, {schema_path.name}, jsonschema {importlib.metadata.version('jsonschema')}")
    setup_kas()

    files = sorted(KAS_DIR.glob("*.yml"))
    check(bool(files), "yocto/kas has kas files")
    for f in files:
        try:
            doc = yaml.safe_load(f.read_text())
        except yaml.YAMLError as e:
            check(False, f"{f.name} is YAML", str(e))
            continue
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
        check(not errors, f"{f.name} validates against kas's schema",
              "; ".join(f"{'/'.join(map(str, e.path)) or '<root>'}: {e.message}" for e in errors[:5]))

    for top, machine in TOPS.items():
        path = KAS_DIR / top
        if not path.is_file():
            check(False, f"{top} exists")
            continue
        try:
            config, missing = load(path)
        except Exception as e:
            check(False, f"{top} loads with kas (includes, lock file)", f"{type(e).__name__}: {e}")
            continue
        check(not missing, f"{top} loads with kas (includes, lock file)", f"missing repos {missing}")
        check(config.get("machine") == machine, f"{top}: machine {machine}", str(config.get("machine")))
        check(config.get("distro") == "phare", f"{top}: distro phare", str(config.get("distro")))
        check(config.get("target") == "phare-image", f"{top}: target phare-image", str(config.get("target")))
        repos = config.get("repos", {})
        local = repos.get(LOCAL) or {}
        layers = list((local.get("layers") or {}).keys())
        check("url" not in local and layers == ["yocto/meta-phare"]
              and (ROOT / "yocto/meta-phare/conf/layer.conf").is_file(),
              f"{top}: the local repo adds yocto/meta-phare", str(local))
        check(REMOTES <= set(repos), f"{top}: repos {', '.join(sorted(REMOTES))}",
              f"missing {sorted(REMOTES - set(repos))}")
        problems = pin_problems(repos)
        for name in sorted(set(repos) - {LOCAL}):
            r = repos[name] or {}
            check(name not in problems,
                  f"{top}: {name} pinned to {r.get('commit')} on branch {r.get('branch')}",
                  problems.get(name, ""))
        header = "\n".join((config.get("local_conf_header") or {}).values())
        for want in ('VC4DTBO = "vc4-kms-v3d"', 'ENABLE_UART = "1"'):
            check(want in header, f"{top}: local.conf sets {want}")

    return summary("kas")


if __name__ == "__main__":
    sys.exit(main())
