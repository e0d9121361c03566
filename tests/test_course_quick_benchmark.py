"""The course benchmark's report: elapsed time with two notebooks at a time, the sum of their times, memory bounds."""

from benchmarks.course_quick import summary_markdown


def _report(**extra):
    notebooks = [
        {"notebook": "00_a", "status": "ok", "wall_time_s": 300.0, "peak_rss_mb": 1000.0},
        {"notebook": "01_b", "status": "ok", "wall_time_s": 360.0, "peak_rss_mb": 3000.0},
        {"notebook": "02_c", "status": "ok", "wall_time_s": 60.0, "peak_rss_mb": 2000.0},
    ]
    return {
        "machine": {
            "hardware": "test CPU",
            "cpu": "x",
            "load_average": [0.1, 0.1, 0.1],
            "versions": {"torch": "2.13.0"},
            "date": "2026-12-03T00:00:00",
        },
        "load_average_end": [0.5, 0.5, 0.5],
        "total_wall_time_s": 720.0,
        "peak_rss_mb": 3000.0,
        "notebooks_ok": 3,
        "notebooks": notebooks,
        "warm_caches": [],
        **extra,
    }


def test_parallel_report_gives_elapsed_sum_and_the_memory_of_the_notebooks_together():
    text = summary_markdown(
        _report(jobs=2, elapsed_s=420.0, meets_target=True, peak_total_rss_mb=3900.4, memory_budget_mb=4000.0)
    )
    assert "**7.0 min** elapsed with 2 notebooks at a time" in text
    assert "used at most **3900 MB** together (sampled, budget 4000 MB)" in text
    assert "meets the target" in text


def test_a_parallel_report_from_before_the_sampling_gives_the_bound():
    text = summary_markdown(_report(jobs=2, elapsed_s=420.0, meets_target=True))
    assert "**7.0 min** elapsed with 2 notebooks at a time" in text
    assert "add up to 12.0 min" in text
    assert "2 at once need at most 5000 MB" in text  # 3000 + 2000, the two largest peaks
    assert "meets the target" in text and "Caches: cold" in text


def test_an_older_sequential_report_reads_as_before():
    text = summary_markdown(_report(meets_target=False))  # written before --jobs: no jobs, no elapsed_s
    assert "**12.0 min** elapsed with 1 notebook at a time" in text and "at once" not in text
    assert "misses the target" in text
