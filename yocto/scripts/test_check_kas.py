#!/usr/bin/env python3
"""Tests of check_kas.pin_problems, on the real kas files as kas merges them
and on copies of them with one pin taken away: a layer that follows a
branch, a short commit, a missing url must each fail `make yocto-check`."""

from __future__ import annotations

import copy
import unittest

import check_kas


class PinProblems(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        check_kas.setup_kas()
        cls.configs = {}
        for top in check_kas.TOPS:
            config, missing = check_kas.load(check_kas.KAS_DIR / top)
            assert not missing, missing
            cls.configs[top] = config

    def remotes(self, top: str) -> dict:
        repos = copy.deepcopy(self.configs[top]["repos"])
        self.assertIn("meta-raspberrypi", repos)
        return repos

    def test_the_kas_files_pin_every_remote_layer(self) -> None:
        for top, config in self.configs.items():
            self.assertEqual(check_kas.pin_problems(config["repos"]), {}, top)

    def test_a_layer_that_follows_a_branch_fails(self) -> None:
        for top in self.configs:
            for name in set(self.remotes(top)) - {check_kas.LOCAL}:
                repos = self.remotes(top)
                del repos[name]["commit"]
                problems = check_kas.pin_problems(repos)
                self.assertEqual(set(problems), {name}, f"{top}: {name}")
                self.assertIn("no full commit id", problems[name])

    def test_the_old_unpinned_meta_raspberrypi_fails(self) -> None:
        repos = self.remotes("phare-rpi4.yml")
        repos["meta-raspberrypi"] = {
            "url": "https://github.com/agherzan/meta-raspberrypi",
            "branch": "wrynose",
        }
        self.assertEqual(set(check_kas.pin_problems(repos)), {"meta-raspberrypi"})

    def test_a_short_commit_or_a_tag_fails(self) -> None:
        for commit in ("eed544f1d064", "yocto-6.0.3", "EED544F1D06455940906842AD746F2F0405C2911"):
            repos = self.remotes("phare-rpi4.yml")
            repos["meta-raspberrypi"]["commit"] = commit
            self.assertEqual(set(check_kas.pin_problems(repos)), {"meta-raspberrypi"}, commit)

    def test_a_commit_without_its_branch_fails(self) -> None:
        repos = self.remotes("phare-rpi4.yml")
        del repos["meta-raspberrypi"]["branch"]
        self.assertIn("names no branch", check_kas.pin_problems(repos)["meta-raspberrypi"])

    def test_a_remote_without_url_fails_and_the_local_layer_needs_none(self) -> None:
        repos = self.remotes("phare-rpi4.yml")
        self.assertNotIn("url", repos[check_kas.LOCAL])
        del repos["bitbake"]["url"]
        self.assertEqual(check_kas.pin_problems(repos), {"bitbake": "no url"})


if __name__ == "__main__":
    unittest.main()
