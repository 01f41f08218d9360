"""Reports for people, read from what a run recorded in ML Metadata: the run report
(run_report.py: timings, evaluation, push, pictures) and the statistics page
(statistics_report.py: TFDV's statistics and the anomalies)."""
