#!/usr/bin/env python3
"""Read TensorBoard event files with TensorBoard's own reader and print their scalars.

    python3 tools/check_tfevents.py FILE_OR_DIR       # "tag step value" per scalar, sorted
    python3 tools/check_tfevents.py --make-fixture OUT

--make-fixture writes tests/fixtures/tb_events.bin with TensorBoard's protobufs and
RecordWriter (no wick code), so the C writer's bytes are checked against an independent
encoder. The sequence must match tests/engine/test_tensorboard.c (write_fixture_sequence).

Needs `pip install tensorboard` (no TensorFlow).
"""
import os
import sys

FIXTURE_WALL = 1700000000.5
# (step, wall_time, [(tag, value), ...]) after the file_version record.
FIXTURE_EVENTS = [
    (1, 1700000001.25, [("train/loss", 0.5), ("lr", 0.001)]),
    (2, 1700000002.0, [("val/accuracy", 91.25)]),
    (0, 1700000003.0, [("zero", 0.0)]),
    (300, 1700000004.0, [("train/loss", -1.5e-7)]),
]


def make_fixture(out):
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.record_writer import RecordWriter

    with open(out, "wb") as f:
        w = RecordWriter(f)
        w.write(event_pb2.Event(wall_time=FIXTURE_WALL,
                                file_version="brain.Event:2").SerializeToString())
        for step, wall, values in FIXTURE_EVENTS:
            s = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=t, simple_value=v)
                                           for t, v in values])
            w.write(event_pb2.Event(wall_time=wall, step=step,
                                    summary=s).SerializeToString())
        w.flush()


def dump(path):
    import shutil
    import tempfile

    from tensorboard.backend.event_processing import event_accumulator as ea

    if os.path.isfile(path) and "tfevents" not in os.path.basename(path):
        # TensorBoard takes a file only when its name says "tfevents" (else a folder)
        tmp = tempfile.mkdtemp()
        shutil.copy(path, os.path.join(tmp, "events.out.tfevents.0.check"))
        try:
            return dump(tmp)
        finally:
            shutil.rmtree(tmp)
    acc = ea.EventAccumulator(path, size_guidance={ea.SCALARS: 0})
    acc.Reload()
    rows = []
    for tag in acc.Tags()["scalars"]:
        for e in acc.Scalars(tag):
            rows.append((tag, e.step, e.value, e.wall_time))
    rows.sort(key=lambda r: (r[0], r[1]))
    for tag, step, value, wall in rows:
        print(f"{tag} {step} {value:.6g} {wall:.3f}")
    return rows


def main(argv):
    if len(argv) == 3 and argv[1] == "--make-fixture":
        make_fixture(argv[2])
        return 0
    if len(argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    if not os.path.exists(argv[1]):
        print(f"check_tfevents: no such file or folder: {argv[1]}", file=sys.stderr)
        return 1
    rows = dump(argv[1])
    if not rows:
        print(f"check_tfevents: no scalars in {argv[1]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
