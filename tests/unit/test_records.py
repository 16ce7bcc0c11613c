import json
import subprocess
import sys

from knowtune.records import Chunk, Example, read_jsonl, write_jsonl


def test_jsonl_round_trip_keeps_every_field(tmp_path):
    ex = Example(id="e1", kind="preference", document_id="d1", provenance=["c1"],
                 prompt=[{"role": "user", "content": "q"}], chosen=[{"role": "assistant", "content": "good"}],
                 rejected=[{"role": "assistant", "content": "bad"}])
    ch = Chunk(id="c1", document_id="d1", text="x", n_tokens=1, span=(0, 1))
    write_jsonl(tmp_path / "e.jsonl", [ex])
    write_jsonl(tmp_path / "c.jsonl", [ch])
    assert list(read_jsonl(tmp_path / "e.jsonl", Example)) == [ex]
    assert list(read_jsonl(tmp_path / "c.jsonl", Chunk)) == [ch]
    assert ex.payload() == {"prompt": ex.prompt, "chosen": ex.chosen, "rejected": ex.rejected}


KILLER = """
import os, signal, sys
from knowtune.records import write_jsonl
def records():
    for i in range(100000):
        if i == 5000:
            os.kill(os.getpid(), signal.SIGKILL)  # killed mid-write, no cleanup runs
        yield {"i": i, "pad": "x" * 100}
write_jsonl(sys.argv[1], records())
"""


def test_a_write_killed_midway_leaves_the_old_file(tmp_path):
    target = tmp_path / "data.jsonl"
    write_jsonl(target, [{"old": True}])
    proc = subprocess.run([sys.executable, "-c", KILLER, str(target)])
    assert proc.returncode == -9
    assert [json.loads(line) for line in target.read_text().splitlines()] == [{"old": True}]


def test_a_write_killed_before_any_file_existed_leaves_none(tmp_path):
    target = tmp_path / "fresh.jsonl"
    subprocess.run([sys.executable, "-c", KILLER, str(target)])
    assert not target.exists()


def test_an_exception_during_a_write_keeps_the_old_file_and_no_temp_file(tmp_path):
    target = tmp_path / "data.jsonl"
    write_jsonl(target, [{"old": True}])

    def failing():
        yield {"new": 1}
        raise RuntimeError("boom")

    try:
        write_jsonl(target, failing())
    except RuntimeError:
        pass
    assert target.read_text() == '{"old": true}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["data.jsonl"]
