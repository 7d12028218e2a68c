"""tests/scheduling.py: the order pytest-xdist hands files to two workers, driven with stand-in workers
(what the scheduler calls on a worker: send_runtest_some, shutdown) and a made-up collection."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.scheduling import SLOWEST_FILES, FileOrderScheduling

ROOT = Path(__file__).resolve().parents[2]


LIGHT = {"tests/unit/test_x.py": 12, "tests/unit/test_y.py": 15, "tests/unit/test_z.py": 11}


class Worker:
    """Records the files it was given, in order."""

    def __init__(self, name: str):
        self.gateway = SimpleNamespace(id=name)
        self.shutting_down, self.files = False, []
        self.collection: list[str] = []

    def send_runtest_some(self, indexes: list[int]) -> None:
        files = {self.collection[i].split("::")[0] for i in indexes}
        assert len(files) == 1  # one file at a time
        self.files.append(files.pop())

    def shutdown(self) -> None:
        self.shutting_down = True


def collection() -> list[str]:
    """Two slow files (one with a single test), a slow file with three tests and light files with
    more tests each: xdist alone would start the light ones."""
    slow_1, slow_2, slow_3 = SLOWEST_FILES[:3]
    ids = [f"{slow_1}::test_a", f"{slow_2}::test_a", *(f"{slow_3}::test_{i}" for i in range(3))]
    for light, tests in LIGHT.items():
        ids += [f"{light}::test_{i}" for i in range(tests)]
    return ids


def scheduled(ids: list[str]) -> tuple[FileOrderScheduling, Worker, Worker]:
    config = SimpleNamespace(
        getvalue=lambda name: ["2*popen"] if name == "tx" else None,
        option=SimpleNamespace(loadscopereorder=True),
    )
    scheduler = FileOrderScheduling(config)  # type: ignore[arg-type]
    one, two = Worker("gw0"), Worker("gw1")
    for worker in (one, two):
        worker.collection = list(ids)
        scheduler.add_node(worker)  # type: ignore[arg-type]
        scheduler.add_node_collection(worker, ids)  # type: ignore[arg-type]
    scheduler.schedule()
    return scheduler, one, two


def finish(scheduler: FileOrderScheduling, worker: Worker, file: str) -> None:
    for index, nodeid in enumerate(worker.collection):
        if nodeid.startswith(file + "::"):
            scheduler.mark_test_complete(worker, index)  # type: ignore[arg-type]


def test_the_slowest_files_start_first_and_a_light_one_queues_behind_a_slow_one() -> None:
    ids = collection()
    scheduler, one, two = scheduled(ids)
    # each worker starts on a slow file; the worker whose slow file has a single test must know
    # its next test before it runs it: that is a light file, not the next slow one
    assert one.files[0] == SLOWEST_FILES[0] and two.files[0] == SLOWEST_FILES[1]
    assert not set(one.files[1:] + two.files[1:]) & set(SLOWEST_FILES)
    # when a worker has only light work left, and little of it, the next slow file goes to it
    finish(scheduler, one, SLOWEST_FILES[0])
    finish(scheduler, one, one.files[1])
    assert one.files == [SLOWEST_FILES[0], "tests/unit/test_y.py", SLOWEST_FILES[2]]
    # every file is handed out once
    for worker in (one, two):
        for file in worker.files:
            finish(scheduler, worker, file)
    handed = one.files + two.files
    assert sorted(handed) == sorted({i.split("::")[0] for i in ids})


def test_without_the_slow_list_the_order_is_xdists_most_tests_first() -> None:
    light = [i for i in collection() if i.split("::")[0] in LIGHT]
    _, one, two = scheduled(light)
    assert (one.files[0], two.files[0]) == ("tests/unit/test_y.py", "tests/unit/test_x.py")


@pytest.mark.parametrize("file", SLOWEST_FILES)
def test_every_listed_file_exists(file: str) -> None:
    assert (ROOT / file).is_file(), f"tests/scheduling.py lists {file}, which is gone: update SLOWEST_FILES"
