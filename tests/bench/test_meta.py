"""meta.json (bench/harness/meta.py): no absolute paths into the checkout, the compiler flags the
build really used (not the CMake cache's stale default), perf and cgroup facts, tool versions
recorded as "unavailable" instead of failing."""
from __future__ import annotations

import json
import sys
import tempfile
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "bench"))

from harness import meta  # noqa: E402

CACHE = """# This is the CMakeCache file.
CMAKE_BUILD_TYPE:STRING=Release
CMAKE_CXX_COMPILER:FILEPATH=/usr/bin/c++
CMAKE_CXX_FLAGS:STRING=
CMAKE_CXX_FLAGS_RELEASE:STRING=-O3 -DNDEBUG
CMBENCH_WERROR:BOOL=ON
"""
NINJA = """build servers/CMakeFiles/server-epoll.dir/epoll/main.cpp.o: CXX_COMPILER__server-epoll_Release {src}/servers/epoll/main.cpp || x
  DEP_FILE = servers/CMakeFiles/server-epoll.dir/epoll/main.cpp.o.d
  FLAGS = -O2 -DNDEBUG -Wall -Wextra -std=c++20
  INCLUDES = -I{src}/servers/common
"""


class Build(unittest.TestCase):
    def fake_build(self, root: Path, cache: str, ninja: str | None) -> Path:
        b = root / "build"
        (b / "bin").mkdir(parents=True)
        (b / "CMakeCache.txt").write_text(cache)
        if ninja is not None:
            (b / "build.ninja").write_text(ninja.format(src=root))
        return b / "bin"

    def test_records_the_flags_the_build_used_and_a_relative_cache_path(self):
        with tempfile.TemporaryDirectory() as d:
            root = Path(d)
            info = meta.build_info(self.fake_build(root, CACHE, NINJA), root)
            self.assertEqual(info["cmake_cache"], "build/CMakeCache.txt")
            self.assertEqual(info["CMAKE_CXX_FLAGS_RELEASE"], "-O2 -DNDEBUG")
            self.assertEqual(info["CMAKE_CXX_FLAGS_RELEASE_cache"], "-O3 -DNDEBUG")
            self.assertIn("-O3", info["flags_note"])
            self.assertEqual(info["optimization"], "-O2")
            self.assertEqual(info["cxx_flags_used"], "-O2 -DNDEBUG -Wall -Wextra -std=c++20")
            self.assertNotIn(str(root), json.dumps(info))

    def test_cache_that_agrees_gets_no_note(self):
        with tempfile.TemporaryDirectory() as d:
            root = Path(d)
            info = meta.build_info(self.fake_build(root, CACHE.replace("-O3", "-O2"), NINJA), root)
            self.assertEqual(info["CMAKE_CXX_FLAGS_RELEASE"], "-O2 -DNDEBUG")
            self.assertNotIn("flags_note", info)
            self.assertNotIn("CMAKE_CXX_FLAGS_RELEASE_cache", info)

    def test_no_build_ninja_is_unavailable_not_a_failure(self):
        with tempfile.TemporaryDirectory() as d:
            root = Path(d)
            info = meta.build_info(self.fake_build(root, CACHE, None), root)
            self.assertEqual(info["cxx_flags_used"], meta.UNAVAILABLE)
            self.assertEqual(info["CMAKE_CXX_FLAGS_RELEASE"], "-O3 -DNDEBUG")   # all we know


class Collect(unittest.TestCase):
    def test_meta_names_no_checkout_path(self):
        bin_dir = REPO / "build" / "bin"
        m = meta.collect(REPO, bin_dir, 0, 1)
        text = json.dumps(m)
        self.assertNotIn(str(REPO.resolve()) + "/", text)
        self.assertEqual(m["bin_dir"], "build/bin")
        self.assertEqual(m["build"]["cmake_cache"], "build/CMakeCache.txt")
        self.assertEqual(meta.repo_relative(Path("/tmp/elsewhere")), "/tmp/elsewhere")
        self.assertEqual(meta.scrub(f"/usr/bin/python3 {REPO}/bench/run.py --out {REPO}/results/x"),
                         "/usr/bin/python3 bench/run.py --out results/x")

    def test_run_settings_keep_the_bin_dir_relative(self):
        import importlib.util
        spec = importlib.util.spec_from_file_location("cmbench_run", REPO / "bench" / "run.py")
        run = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(run)
        s = run.settings_from_args(run.parse_args(["--bin-dir", str(REPO / "build" / "bin")]))
        self.assertEqual(s["bin_dir"], "build/bin")
        self.assertEqual(REPO / s["bin_dir"], REPO / "build" / "bin")
        s2 = run.settings_from_args(run.parse_args(["--bin-dir", "/opt/elsewhere/bin"]))
        self.assertEqual(s2["bin_dir"], "/opt/elsewhere/bin")
        self.assertEqual(REPO / s2["bin_dir"], Path("/opt/elsewhere/bin"))

    def test_machine_facts_are_values_or_unavailable(self):
        m = meta.collect(REPO, REPO / "build" / "bin", 0, 1)
        self.assertIn(m["cgroup"]["version"], ("v1", "v2", "hybrid", meta.UNAVAILABLE))
        self.assertTrue(m["perf_syscalls"] == "available" or m["perf_syscalls"].startswith("unavailable: "))
        self.assertIsInstance(m["governor"], str)
        for key in ("perf", "python", "matplotlib", "boost", "libuv", "liburing", "gevent", "twisted",
                    "tornado", "uvloop"):
            self.assertIn(key, m["tools"])
            self.assertIsInstance(m["tools"][key], str)
            self.assertTrue(m["tools"][key], key)
        self.assertEqual(meta._dist_version("no-such-distribution-cmbench"), meta.UNAVAILABLE)


if __name__ == "__main__":
    unittest.main()
