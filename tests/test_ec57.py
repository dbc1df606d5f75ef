"""EC57 scoring (beats matched within 150 ms, episodes, quality flags) and MIT-BIH quality annotations."""

from __future__ import annotations

import numpy as np
import pytest

from jepa_edge.tasks.ec57 import (
    RunCounts,
    aami_class,
    beat_counts,
    ectopic_runs,
    episode_score,
    flag_score,
    match_beats,
    reference_window_flags,
    rhythm_episodes,
    run_counts,
    run_kind,
)

FS = 360.0


def test_beats_match_one_to_one_within_150_ms():
    ref = np.array([1000, 1360, 1720])
    # 50 ms late, 160 ms late (outside), and two candidates near the third: the closer one wins
    test = np.array([1018, 1418, 1700, 1722])
    assert match_beats(ref, test, FS).tolist() == [0, -1, 3]


def test_veb_counts_leave_out_fusion_and_q_and_the_learning_period():
    ref = np.array([100, 200_000, 200_360, 200_720, 201_080, 201_440])
    ref_cls = ["V", "V", "V", "N", "F", "Q"]
    test = np.array([100, 200_000, 200_720, 201_080, 201_440, 205_000])
    test_cls = ["V", "V", "V", "V", "V", "V"]
    c = beat_counts(ref, ref_cls, test, test_cls, FS, "V")
    # beat at 100 is inside the first 5 min; 200_360 missed (FN); N called V (FP); F and Q not scored;
    # the unmatched detection at 205_000 is a FP
    assert (c.tp, c.fn, c.fp) == (1, 1, 2)
    assert c.se == pytest.approx(0.5) and c.ppv == pytest.approx(1 / 3)
    assert np.isnan(beat_counts(ref[:1], ["N"], test[:0], [], FS, "V").se)


def test_aami_classes_follow_the_mitbih_symbols():
    assert [aami_class(s) for s in "NLRAVFQ/~+"] == ["N", "N", "N", "S", "V", "F", "Q", "Q", None, None]


def test_episode_and_duration_statistics():
    ref = [(0, 100), (200, 300), (1000, 1100)]
    test = [(50, 250), (500, 600)]
    s = episode_score(ref, test)
    assert s.se == pytest.approx(2 / 3)  # two of three reference episodes touched
    assert s.ppv == pytest.approx(1 / 2)  # one detection spans two episodes, one is false
    assert s.duration_se == pytest.approx(100 / 300)
    assert s.duration_ppv == pytest.approx(100 / 300)
    gross = s + episode_score([(0, 10)], [(0, 10)])
    assert gross.se == pytest.approx(3 / 4) and gross.duration_se == pytest.approx(110 / 310)
    with pytest.raises(ValueError, match="ends before"):
        episode_score([(10, 5)], [])


def test_rhythm_changes_become_episodes():
    eps = rhythm_episodes([(0, "N"), (500, "VT"), (700, "N"), (900, "VT")], end=1000)
    assert eps == {"N": [(0, 500), (700, 900)], "VT": [(500, 700), (900, 1000)]}


def test_quality_flags_against_reference_windows():
    intervals = [(1000, 3000, "noisy")]
    starts = np.arange(0, 5000, 500)
    ref = reference_window_flags(intervals, starts, length=1000)
    assert ref.tolist() == [False, True, True, True, True, True, False, False, False, False]  # >= half covered
    s = flag_score(ref, np.array([0, 1, 1, 0, 0, 0, 1, 0, 0, 0], dtype=bool))
    assert (s.tp, s.fn, s.fp, s.tn) == (2, 3, 1, 4)
    assert s.se == pytest.approx(2 / 5) and s.sp == pytest.approx(4 / 5)


def test_mitbih_105_noise_annotations_cover_its_noisy_stretch(mitdb_dir):
    from jepa_edge.data.mitdb import read_annotations

    ann = read_annotations(mitdb_dir / "105")
    per_lead = ann.noise_intervals(signals=2, end=650_000)
    noisy_s = [sum(b - a for a, b, _ in iv) / ann.fs for iv in per_lead]
    # the annotators mark the V1 lead noisy for ~458 s and MLII for ~261 s; both unreadable for ~4.5 s
    assert 440 < noisy_s[1] < 475 and 240 < noisy_s[0] < 280
    unreadable = [sum(b - a for a, b, lvl in iv if lvl == "unreadable") / ann.fs for iv in per_lead]
    assert unreadable[0] == pytest.approx(unreadable[1]) and 3 < unreadable[0] < 6


def _beats(classes: str, first: int = 144_000, rr: int = 360) -> tuple[np.ndarray, list[str]]:
    return first + rr * np.arange(len(classes)), list(classes)


def test_runs_are_scored_run_by_run_as_ec57_does():
    """Reference: a couplet, a short run of 4 (a fusion beat inside it extends it), a long run of 8. The test
    calls the couplet as a run of 3, the short run as a couplet only, and 6 of the long run (a withheld beat,
    '-', ends its run); a reference couplet inside the learning period is not scored."""
    ref, ref_cls = _beats("NVVNNVVFVNVVVVVVVVN")
    test, test_cls = _beats("NVVVNVVNNNVVVVVV-VN")
    early = np.array([1000, 1360])
    counts = run_counts(np.concatenate([early, ref]), ["V", "V", *ref_cls],
                        np.concatenate([early, test]), ["V", "V", *test_cls], FS)
    assert counts["couplet"] == RunCounts(tp_se=1, fn=0, tp_ppv=1, fp=0)  # the 3-run covers it; the couplet is real
    assert counts["short run"] == RunCounts(tp_se=0, fn=1, tp_ppv=0, fp=1)  # 4-run seen as 2; the 3-run is only 2
    assert counts["long run"] == RunCounts(tp_se=1, fn=0, tp_ppv=1, fp=0)  # 6 of 8 is a long run
    assert ectopic_runs(test, test_cls) == [(test[1], test[3], 3), (test[5], test[6], 2), (test[10], test[15], 6),
                                            (test[17], test[17], 1)]
    assert run_kind(1) is None and run_kind(5) == "short run" and run_kind(9) == "long run"
    s_ref, s_cls = _beats("NSSNSSSN")
    s_counts = run_counts(s_ref, s_cls, s_ref, list("NSSNNSSN"), FS, "S")
    assert s_counts["couplet"].se == 1.0 and s_counts["short run"].se == 0.0
    total = counts["couplet"] + counts["short run"]
    assert (total.se, total.ppv) == (0.5, 0.5)
    with pytest.raises(ValueError, match="run target"):
        run_counts(ref, ref_cls, test, test_cls, FS, "N")


def test_mitdb_106_runs_against_its_own_reference_and_a_monitor_that_misses_every_run(mitdb_dir):
    """106 holds 95 VEB couplets and one run of 3 (its VT episode, 177 s in, inside the learning period). Its
    reference finds every run of itself; a test that calls each run's beats N but its first one (isolated VEBs
    only) finds none, and confirms none of its own."""
    from jepa_edge.data.mitdb import read_mitdb

    rec, ann = read_mitdb(mitdb_dir / "106", leads=("II",))
    keep = [i for i, s in enumerate(ann.symbols) if aami_class(s) is not None]
    samples, classes = ann.samples[keep], [aami_class(ann.symbols[i]) for i in keep]
    whole = run_counts(samples, classes, samples, classes, ann.fs, start_s=0.0)
    assert (whole["couplet"].tp_se, whole["short run"].tp_se, whole["long run"].tp_se) == (95, 1, 0), whole
    scored = run_counts(samples, classes, samples, classes, ann.fs)  # after the learning period
    assert (scored["couplet"].tp_se, scored["short run"].tp_se) == (75, 0), scored
    assert all(c.fn == 0 and c.fp == 0 and c.tp_ppv == c.tp_se for c in [*whole.values(), *scored.values()])
    isolated = list(classes)
    for i in range(1, len(isolated)):
        if classes[i] in ("V", "F") and classes[i - 1] in ("V", "F"):
            isolated[i] = "N"
    none = run_counts(samples, classes, samples, isolated, ann.fs, start_s=0.0)
    assert all(c.tp_se == 0 and c.fn == whole[k].tp_se and c.tp_ppv + c.fp == 0 for k, c in none.items())
