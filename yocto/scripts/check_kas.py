#!/usr/bin/env python3
"""Validate yocto/kas/*.yml offline, with kas's own schema and loader.

Each file is checked against kas's JSON schema (kas/schema-kas.json, the one
kas validates with) using jsonschema; then each top-level build file is loaded
the way `kas build` loads it (kas.includehandler: schema, header version,
includes, lock files) and the merged configuration is checked: machine,
distro, target, the local layer, and a full commit id on every remote
repository. No repository is cloned.

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
# Repositories allowed without a commit, each for a reason (see the README).
# Any other remote repository without a full commit id fails the check.
KNOWN_UNPINNED = {
    "meta-raspberrypi": "no commit of its wrynose branch could be verified offline; "
                        "pin it with `kas lock` on a networked host",
}
COMMIT = re.compile(r"^[0-9a-f]{40}$")



def main() -> int:
    logging.basicConfig(level=logging.ERROR, format="kas: %(message)s")
    schema_path = Path(kas.__file__).parent / "schema-kas.json"
    schema = json.loads(schema_path.read_text())
    validator_cls = jsonschema.validators.validator_for(schema)
    validator_cls.check_schema(schema)
    validator = validator_cls(schema)
    print(f"kas {kas.__version__}, {schema_path.name}, jsonschema {importlib.metadata.version('jsonschema')}")
    # kas's loader runs git (to find the repository's top) through a kas
    # context; give it a throw-away work directory.
    os.environ["KAS_WORK_DIR"] = tempfile.mkdtemp(prefix="phare-kas-")
    create_global_context(argparse.Namespace(no_color=True))

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
            config, missing = IncludeHandler([str(path)], use_lock=True).get_config()
        except Exception as e:
            check(False, f"{top} loads with kas (includes, lock file)", f"{type(e).__name__}: {e}")
            continue
        check(not missing, f"{top} loads with kas (includes, lock file)", f"missing repos {missing}")
        check(config.get("machine") == machine, f"{top}: machine {machine}", str(config.get("machine")))
        check(config.get("distro") == "phare", f"{top}: distro phare", str(config.get("distro")))
        check(config.get("target") == "phare-image", f"{top}: target phare-image", str(config.get("target")))
        repos = config.get("repos", {})
        local = repos.get("phare") or {}
        layers = list((local.get("layers") or {}).keys())
        check("url" not in local and layers == ["yocto/meta-phare"]
              and (ROOT / "yocto/meta-phare/conf/layer.conf").is_file(),
              f"{top}: the local repo adds yocto/meta-phare", str(local))
        check(REMOTES <= set(repos), f"{top}: repos {', '.join(sorted(REMOTES))}",
              f"missing {sorted(REMOTES - set(repos))}")
        for name in sorted(set(repos) - {"phare"}):
            r = repos[name] or {}
            if not r.get("url"):
                check(False, f"{top}: {name} has a url")
                continue
            commit = r.get("commit")
            if commit is None and name in KNOWN_UNPINNED:
                print(f"  WARN  {top}: {name} is not pinned to a commit ({KNOWN_UNPINNED[name]})")
                check(bool(r.get("branch")), f"{top}: {name} tracks a named branch", str(r))
                continue
            check(bool(commit) and bool(COMMIT.match(commit)) and bool(r.get("branch")),
                  f"{top}: {name} pinned to a full commit on branch {r.get('branch')}", str(r))
        header = "\n".join((config.get("local_conf_header") or {}).values())
        for want in ('VC4DTBO = "vc4-kms-v3d"', 'ENABLE_UART = "1"'):
            check(want in header, f"{top}: local.conf sets {want}")

    return summary("kas")


if __name__ == "__main__":
    sys.exit(main())
