"""The peer bench's bookkeeping: its schedule, tuning choice, medians and label agreement."""

from pathlib import Path

import pytest

from bench.peer import schedule, summary
from bench.peer_stack import PeerConfig, agreement, loaded_model
from bench.peer_tune import best_of, first_grid, reasons, second_grid


def test_fresh_per_level_alternates_who_goes_first_each_round():
    runs = schedule(2, (1, 8, 32), "level")
    assert runs[:6] == [(0, "spamq", [1]), (0, "BentoML", [1]), (0, "spamq", [8]),
                        (0, "BentoML", [8]), (0, "spamq", [32]), (0, "BentoML", [32])]
    assert runs[6:8] == [(1, "BentoML", [1]), (1, "spamq", [1])]
    assert len(runs) == 12


def test_fresh_per_round_runs_the_levels_ascending_on_one_server():
    assert schedule(2, (1, 8, 32), "round") == [
        (0, "spamq", [1, 8, 32]), (0, "BentoML", [1, 8, 32]),
        (1, "BentoML", [1, 8, 32]), (1, "spamq", [1, 8, 32])]


def _run(system, clients, rps, p50=10.0, p99=20.0, errors=0):
    return {"system": system, "clients": clients, "msgs_per_s": rps, "p50_ms": p50,
            "p99_ms": p99, "errors": errors,
            "cpu_ms_per_request": {"server": rps / 10, "bench clients (this process)": 100.0}}


def test_summary_takes_the_median_of_the_rounds_not_the_mean():
    runs = [_run("spamq", 8, x, p50=x) for x in (10.0, 50.0, 12.0)]
    runs += [_run("BentoML", 8, x, errors=1) for x in (20.0, 21.0, 100.0)]
    (row,) = summary(runs, (8,))
    assert row["spamq"]["msgs_per_s"] == 12.0
    assert row["spamq"]["p50_ms"] == 12.0
    assert row["BentoML"]["msgs_per_s"] == 21.0
    assert row["BentoML"]["errors"] == 3
    assert row["spamq"]["server_cpu_ms"] == pytest.approx(1.2)  # the clients' CPU left out
    assert row["ratio"] == pytest.approx(12.0 / 21.0)
    assert row["spamq_ahead"] is False


def test_first_grid_covers_threads_forward_pass_and_precision():
    grid = first_grid(("fp32", "auto"), (1, 2))
    assert len(grid) == 8
    assert {(c.threads, c.torchscript, c.precision) for c in grid} == {
        (t, ts, p) for t in (1, 2) for ts in (True, False) for p in ("fp32", "auto")}
    assert all(c.workers == 1 for c in grid)


def test_second_grid_tries_one_worker_per_core_with_the_winners_pass():
    best = PeerConfig(threads=2, torchscript=False, precision="auto")
    assert second_grid(best, 2) == [PeerConfig(threads=1, workers=2, torchscript=False,
                                               precision="auto")]
    assert second_grid(best, 1) == []
    assert second_grid(PeerConfig(threads=1, workers=2), 2) == []


def test_best_of_prefers_error_free_rows_then_req_per_s():
    rows = [{"msgs_per_s": 90.0, "errors": 4, "n": 1}, {"msgs_per_s": 50.0, "errors": 0, "n": 2},
            {"msgs_per_s": 60.0, "errors": 0, "n": 3}]
    assert best_of(rows)["n"] == 3
    with pytest.raises(ValueError):
        best_of([])


def test_reasons_compare_the_chosen_config_with_each_one_setting_away():
    chosen = PeerConfig(threads=2, torchscript=True, precision="bf16mm")
    rows = [{"config": c.as_dict(), "msgs_per_s": rps} for c, rps in [
        (chosen, 60.0),
        (PeerConfig(threads=1, torchscript=True, precision="bf16mm"), 40.0),
        (PeerConfig(threads=2, torchscript=False, precision="bf16mm"), 50.0),
        (PeerConfig(threads=2, torchscript=True, precision="fp32"), 30.0),
        (PeerConfig(threads=1, torchscript=False, precision="fp32"), 10.0),  # 3 settings away
    ]]
    why = reasons(rows, chosen)
    assert why == ["threads 1w x 2t over 1w x 1t: 60.0 vs 40.0 req/s (1.50x)",
                   "torchscript TorchScript over eager: 60.0 vs 50.0 req/s (1.20x)",
                   "precision bf16mm over fp32: 60.0 vs 30.0 req/s (2.00x)"]


def test_peer_config_env_is_what_the_service_reads():
    env = PeerConfig(threads=1, torchscript=False, precision="auto", workers=2,
                     max_latency_ms=500).env(Path("/m"))
    assert env == {"PEER_MODEL_DIR": "/m", "PEER_THREADS": "1", "PEER_TORCHSCRIPT": "false",
                   "PEER_PRECISION": "auto", "PEER_WORKERS": "2", "PEER_MAX_BATCH": "32",
                   "PEER_MAX_LATENCY_MS": "500"}
    assert "PEER_MAX_LATENCY_MS" not in PeerConfig().env(Path("/m"))


def test_agreement_counts_equal_labels_and_the_largest_probability_gap():
    ours = [{"label": "spam", "spam_probability": 0.9}, {"label": "ham", "spam_probability": 0.1}]
    theirs = [{"label": "spam", "spam_probability": 0.95},
              {"label": "spam", "spam_probability": 0.6}]
    found = agreement(ours, theirs)
    assert found["n"] == 2
    assert found["same_label"] == 1
    assert found["max_abs_prob_diff"] == pytest.approx(0.5)


def test_loaded_model_reads_the_workers_precision_from_its_log(tmp_path):
    log = tmp_path / "worker.log"
    log.write_text("x\nmodel abc123 loaded from /m on cpu (bf16mm) in 3.10s\n")
    assert loaded_model(log) == {"device": "cpu", "precision": "bf16mm"}
    log.write_text("nothing here\n")
    assert loaded_model(log) == {}


def test_tuning_measures_each_config_in_passes_and_keeps_the_median(monkeypatch, tmp_path):
    import bench.peer_tune as peer_tune

    calls = []
    speeds = iter([10.0, 40.0, 30.0, 20.0, 50.0, 60.0])  # pass 1: a, b, c; pass 2: a, b, c

    def fake(config, model_dir, texts, *, work, **_):
        calls.append(config.threads)
        return {"resolved": {"precision": config.precision}, "msgs_per_s": next(speeds),
                "p50_ms": 1.0, "p99_ms": 2.0, "errors": 0, "cpu_ms_per_request": {}}

    monkeypatch.setattr(peer_tune, "measure", fake)
    configs = [PeerConfig(threads=t) for t in (1, 2, 3)]
    rows = peer_tune.measure_all(configs, tmp_path, [], repeats=2, work=tmp_path)
    assert calls == [1, 2, 3, 1, 2, 3]
    assert [r["msgs_per_s"] for r in rows] == [15.0, 45.0, 45.0]
    assert [len(r["legs"]) for r in rows] == [2, 2, 2]
