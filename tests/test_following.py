"""The one way to follow a promoted version (`chatbot.following.Follower`), on a real
pointer file and real version files: what it loads, when it checks, and its failure rule."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from chatbot.errors import ChatbotError
from chatbot.following import Follower


class Versions:
    """A pointer file naming the promoted version, one JSON file per version; `loads`
    counts the loads actually done."""

    def __init__(self, root: Path):
        self.root = root
        self.loads: list[str] = []

    def write(self, name: str, text: str) -> None:
        (self.root / f"{name}.json").write_text(text)

    def promote(self, name: str) -> None:
        (self.root / "CURRENT").write_text(name)

    def promoted(self) -> str:
        pointer = self.root / "CURRENT"
        if not pointer.is_file():
            raise ChatbotError(f"{pointer} is missing")
        return pointer.read_text()

    def load(self, name: str) -> dict[str, object]:
        self.loads.append(name)
        try:
            return json.loads((self.root / f"{name}.json").read_text())
        except (OSError, ValueError) as exc:
            raise ChatbotError(f"version {name} cannot be read: {exc}") from None


@pytest.fixture
def versions(tmp_path):
    v = Versions(tmp_path)
    v.write("v1", '{"answer": 1}')
    v.promote("v1")
    return v


def follow(versions: Versions, **kwargs) -> Follower[str, dict[str, object]]:
    return Follower(versions.promoted, versions.load, what="test model", **kwargs)


def test_loads_the_promoted_version_once_and_swaps_in_a_new_one(versions):
    follower = follow(versions, check_interval=0)
    first = follower.get()
    assert first == {"answer": 1} and follower.key == "v1"
    assert follower.get() is first and versions.loads == ["v1"]  # unchanged: not reloaded
    versions.write("v2", '{"answer": 2}')
    versions.promote("v2")
    assert follower.get() == {"answer": 2} and follower.key == "v2"
    assert versions.loads == ["v1", "v2"] and follower.up_to_date and follower.error is None


def test_checks_at_most_every_interval_unless_forced(versions):
    follower = follow(versions, check_interval=3600)
    assert follower.get() == {"answer": 1}
    versions.write("v2", '{"answer": 2}')
    versions.promote("v2")
    assert follower.get() == {"answer": 1}  # not checked again yet
    assert follower.refresh(force=True) and follower.get() == {"answer": 2}


def test_a_failed_version_keeps_the_last_good_one_logs_once_and_is_retried(versions, caplog):
    follower = follow(versions, check_interval=0)
    good = follower.get()
    versions.write("v2", "{cut sho")
    versions.promote("v2")
    with caplog.at_level(logging.ERROR, logger="chatbot.following"):
        assert follower.get() is good and follower.get() is good
    assert "v2 cannot be read" in follower.error and not follower.up_to_date
    assert versions.loads == ["v1", "v2", "v2"]  # tried again at each check
    assert len(caplog.records) == 1  # the same failure is logged once
    assert "keeping v1" in caplog.records[0].getMessage()

    versions.write("v2", '{"answer": 2}')  # repaired in place, not promoted anew
    assert follower.get() == {"answer": 2} and follower.error is None


def test_a_pointer_that_cannot_be_read_keeps_what_serves(versions):
    follower = follow(versions, check_interval=0)
    good = follower.get()
    (versions.root / "CURRENT").unlink()
    assert follower.get() is good and "CURRENT is missing" in follower.error
    versions.promote("v1")  # the promoted version serves again: the error is cleared
    assert follower.get() is good and follower.error is None and follower.up_to_date


def test_with_nothing_served_yet_the_failure_is_raised_unless_there_is_a_start(versions):
    versions.write("v1", "not json")
    follower = follow(versions, check_interval=3600)
    with pytest.raises(ChatbotError, match="v1 cannot be read"):
        follower.get()
    with pytest.raises(ChatbotError):  # nothing serves: every get checks again
        follower.get()
    assert versions.loads == ["v1", "v1"]

    started = follow(versions, check_interval=0, start=("v0", {"answer": 0}))
    assert started.get() == {"answer": 0} and "v1 cannot be read" in started.error
    versions.write("v1", '{"answer": 1}')
    assert started.get() == {"answer": 1} and started.key == "v1"
