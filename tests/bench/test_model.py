"""bench/model.py's arithmetic on a hand-computed case (a pure function: no I/O, instant)."""

from __future__ import annotations

import pytest

from bench.model import MB, SEGMENTS, WORKLOADS, Assembly, Aws, Traffic, Workload, predict, table, targets

AWS = Aws(
    network_bps=100 * MB,
    vcpus=2,
    cold_start_s=1.0,
    request_s=0.1,
    list_page_s=0.2,
    copy_bps=100 * MB,
    complete_s=1.0,
    transition_s=0.1,
    map_first_child_s=0.5,
    map_children_per_s=10.0,
    step_budget_s=840.0,
    commit_s=0.01,
)
WORKLOAD = Workload("w", 1000 * MB, 100)
TRAFFIC = Traffic(
    read_per_byte=1.0, upload_per_byte=0.5, copied_per_byte=0.0, deflated_per_byte=1.0, requests_per_object=2.0
)


def run(workers: int):
    return predict(
        WORKLOAD,
        TRAFFIC,
        workers,
        aws=AWS,
        assembly=Assembly(requests_per_segment=2.0, bytes_per_segment=1 * MB),
        deflate_bps_per_core=40 * MB,
        concurrency=4,
        assembly_concurrency=1,
        finish_s_per_object=0.001,
    )


def test_two_workers_by_hand():
    p = run(2)
    assert p.start_s == pytest.approx(0.1 + 1.0)  # transition + cold start
    assert p.plan_s == pytest.approx(0.2 + 0.1 + 0.1)  # 1 LIST page + PUT plan.json + transition
    assert p.map_s == pytest.approx(0.5 + 1 / 10 + 1.0)  # first child, 1 more at 10/s, cold start
    # share 500 MB, 50 objects: network 500/100 = 5 s, requests 50*2*0.1/4 = 2.5 s,
    # deflate 500 MB / (40 MB/s * 2 vCPUs) = 6.25 s: deflate bound
    assert p.terms == pytest.approx({"network": 5.0, "requests": 2.5, "deflate": 6.25})
    assert p.bound == "deflate"
    assert p.worker_s == pytest.approx(6.25)  # segments upload into the archive: no Complete of their own
    # no byte copied: 2 segments' states then fragments read one segment at a time (4 reads),
    # 100 x 350 bytes of records and lines in one fragment: 3 commits, 10 ms each;
    # 2 segments * 2 requests * 0.1 s = 0.4 s; 2 MB through the parent: 0.02 s; transition 0.1 s
    assert p.assemble_s == pytest.approx(0.07 + 0.4 + 0.02 + 0.1)
    assert p.finish_s == pytest.approx(100 * (0.001 + 100 / (100 * MB)) + 1.0 + 0.1)
    assert p.total_s == pytest.approx(1.1 + 0.4 + 1.6 + 6.25 + 0.59 + 1.2001)


def test_assembly_concurrency_divides_the_reads():
    p = predict(
        WORKLOAD,
        TRAFFIC,
        2,
        aws=AWS,
        assembly=Assembly(requests_per_segment=2.0, bytes_per_segment=1 * MB),
        assembly_concurrency=4,
    )
    # states and fragments of 4 segments read at once: 2 reads; commits one after the other
    assert p.assemble_s == pytest.approx(0.05 + 0.4 + 0.02 + 0.1)


def test_one_worker_has_no_plan_map_or_assembly():
    p = run(1)
    assert (p.plan_s, p.map_s, p.assemble_s) == (0.0, 0.0, 0.0)
    assert p.terms == pytest.approx({"network": 10.0, "requests": 5.0, "deflate": 12.5})
    assert p.total_s == pytest.approx(1.1 + 12.5 + 1.2001)


def test_long_worker_runs_pay_one_invocation_per_step_and_copies_add():
    traffic = Traffic(
        read_per_byte=0.0, upload_per_byte=0.0, copied_per_byte=1.0, deflated_per_byte=0.0, requests_per_object=0.0
    )
    big = Workload("big", 2_000_000 * MB, 1)  # copy: 2e12 / (100 MB/s * 4) = 5000 s -> 6 steps of <= 840 s
    p = predict(big, traffic, 1, aws=AWS, concurrency=4, finish_s_per_object=0.0)
    assert p.bound == "network + copy"
    assert p.worker_s == pytest.approx(5000 + 5 * (0.1 + 1.0))


def test_table_covers_both_workloads_modes_and_worker_counts():
    rows = table()
    assert {(r["workload"], r["mode"], r["workers"]) for r in rows} == {
        (w, m, n)
        for w in ("15 GB / 3,000 objects", "1 TB / 1 M objects")
        for m in ("stored", "deflate on text")
        for n in (1, 10, 100)
    }
    assert [t["target"] for t in targets(rows)] == [
        "15 GB stored: beat the published 6 s",
        "15 GB deflate on text: within 2x of 6 s",
    ]
    with pytest.raises(ValueError):
        predict(WORKLOAD, TRAFFIC, 0)


def test_parallel_rows_use_the_segments_traffic_where_measured():
    heavy = Traffic(
        read_per_byte=2.0, upload_per_byte=2.0, copied_per_byte=0.0, deflated_per_byte=0.0, requests_per_object=1.0
    )
    light = Traffic(
        read_per_byte=1.0, upload_per_byte=1.0, copied_per_byte=0.0, deflated_per_byte=0.0, requests_per_object=1.0
    )
    rows = {(r["workload"], r["workers"]): r for r in table({"stored": heavy, "stored" + SEGMENTS: light})}
    alone = {(r["workload"], r["workers"]): r for r in table({"stored": heavy})}
    first = WORKLOADS[0].name
    assert rows[(first, 1)] == alone[(first, 1)]  # one worker: its own traffic
    assert rows[(first, 10)]["worker_s"] < alone[(first, 10)]["worker_s"]  # segments: theirs
    assert {r["mode"] for r in rows.values()} == {"stored"}
